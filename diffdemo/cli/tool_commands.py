"""The commands that drive a whole batch or a tool: reproduce (the poster's figures, diffdemo.reproduce), study
(a grid of runs into a database, diffdemo.study) and lpips (the distance between two images)."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffdemo import defaults
from diffdemo.cli.options import UsageError, add_precision, check_args, positive, subcommand
from diffdemo.models import DEFAULT_MODEL


# --- reproduce -------------------------------------------------------------------------------------
def add_reproduce(sub) -> None:
    """regenerate the poster's figures 1-9 and the methods table (PNG + HTML, metrics.json, report)

    Seeded runs of every figure; writes PNG + interactive HTML per figure, metrics.json, report.md, report.html and
    claims.json into --out. The full budget (the claims table the app ships) takes about half an hour on a 2-core
    CPU; --quick (few steps, few images) is a smoke run of a few minutes, and its verdicts say so.
    """
    p = subcommand(sub, "reproduce", add_reproduce)
    p.add_argument("--out", required=True, help="output folder (created; files in it are overwritten)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="embedded name, local diffusers folder or hub id")
    p.add_argument("--quick", action="store_true", help="few steps, few images: a smoke run of every figure")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # the test suite's budget
    p.add_argument("--seed", type=int, default=defaults.SEED)
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument(
        "--threads", type=int, default=0, help="torch threads (default 0: the rule of diffdemo/threads.py, cores - 1)"
    )
    p.add_argument(
        "--claims-only",
        action="store_true",
        help="re-evaluate the claims of the finished run in --out from its metrics.json (no new computation)",
    )
    add_precision(p)
    p.set_defaults(run=run_reproduce)


def run_reproduce(args) -> dict:
    from diffdemo.models import load_model
    from diffdemo.reproduce import refresh_claims, reproduce

    if args.quick and args.tiny:
        raise UsageError("--quick and --tiny are exclusive")
    out = Path(args.out)
    if args.claims_only:
        if not (out / "metrics.json").is_file():
            raise UsageError("--claims-only needs a finished run in --out (its metrics.json)")
        return refresh_claims(out)
    check_args(args, "seed", "threads")
    model = load_model(args.model)
    budget = "tiny" if args.tiny else "quick" if args.quick else "full"
    result = reproduce(
        model,
        out,
        budget=budget,
        seed=args.seed,
        progress=not args.no_progress,
        threads=args.threads,
        precision=args.precision,
    )
    print(f"report: {result['report']}")
    return result


# --- lpips ---------------------------------------------------------------------------------------
def add_lpips(sub) -> None:
    """LPIPS distance between two images (offline, shipped v0.1 weights)

    Learned perceptual distance (Zhang et al. 2018, v0.1) between two images read as RGB in [-1, 1], centre-cropped
    to a square of --size (default: the first image's shorter side).
    """
    p = subcommand(sub, "lpips", add_lpips)
    p.add_argument("image_a")
    p.add_argument("image_b")
    p.add_argument("--net", default="alex", choices=["alex", "vgg"])
    p.add_argument("--weights", help="a safetensors file from python -m diffdemo.lpips_weights (default: shipped)")
    p.add_argument("--size", type=positive(int), help="side of the centre crop both images are compared at")
    p.set_defaults(run=run_lpips)


def run_lpips(args) -> dict:
    from diffdemo import metrics
    from diffdemo.imaging import image_side, load_image, to_tensor

    status = metrics.lpips_status(args.net, args.weights)
    if status != "available":
        raise UsageError(status)
    size = args.size or image_side(args.image_a)
    a, b = (to_tensor(load_image(path, size)) for path in (args.image_a, args.image_b))
    return {"lpips": metrics.lpips(a, b, args.net, args.weights), "net": args.net, "size": size}


# --- study ---------------------------------------------------------------------------------------
def add_study(sub) -> None:
    """run a grid of experiments from a study file (TOML) into a database; --report writes its tables

    Every run goes through the same path as the restore command; rows are stored in DIR/study.sqlite as they
    finish, so running the same command again resumes. Local by default (one run after another, or --workers
    processes); --ray (or RAY_ADDRESS set) sends one Ray task per run. --report writes DIR/report.md and a figure
    from the database alone; --results FILE also puts the tables into FILE between this study's markers.
    """
    p = subcommand(sub, "study", add_study)
    p.add_argument("file", help="the study file (TOML; see studies/)")
    p.add_argument("--out", required=True, help="output folder: its study.sqlite holds the rows")
    p.add_argument("--report", action="store_true", help="write the tables and figure from the database; no runs")
    p.add_argument("--results", help="with --report: also write the tables into this markdown file (its section)")
    p.add_argument("--ray", action="store_true", help="run on Ray (RAY_ADDRESS, else a local Ray)")
    p.add_argument("--workers", type=positive(int), default=1, help="local processes (default 1: one at a time)")
    p.add_argument("--limit", type=positive(int), help="run at most this many of the runs still to do")
    p.add_argument("--dry-run", action="store_true", help="print the plan only")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(run=run_study)


def run_study(args) -> dict:
    import os

    from diffdemo import study

    spec = study.load_study(args.file)
    out = Path(args.out)
    if args.report or args.results:
        figure = out / f"fig_study_{spec.name}.png"
        text = study.report(spec, out, figure)
        result = {"study": spec.name, "report": str(study.write_section(out / "report.md", spec.name, text))}
        if args.results:
            target = Path(args.results)
            shown = target.parent / f"fig_study_{spec.name}.png"
            if figure.exists():
                shown.write_bytes(figure.read_bytes())
            result["results"] = str(study.write_section(target, spec.name, text))
        return result
    executor = "ray" if args.ray or os.environ.get("RAY_ADDRESS") else "local"
    if executor == "ray" and args.workers > 1:
        raise UsageError("--workers is for the local executor; Ray places its own tasks")
    return study.run_study(spec, out, executor=executor, workers=args.workers, limit=args.limit,
                           progress=not args.no_progress, dry_run=args.dry_run)  # fmt: skip
