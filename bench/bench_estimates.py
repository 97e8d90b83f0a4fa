"""Run-time estimates against actual run times, per tab, through the app's HTTP API (gradio_client), quiet and
with a competing process loading the machine.

    python bench/bench_estimates.py [--load quiet spin:1] [--repeats 3] [--steps N] [--out FILE]

Launches the app in-process on the embedded model (threads chosen and the model timed as `python app.py` does),
then, for each load (``quiet``: none of this script's own; ``spin:N`` / ``matmul:N``: N competing processes,
bench/loadgen.py), runs each tab's first demo with the app's defaults (diffdemo.defaults; ``--steps`` overrides
the step counts of Denoise, Generate and the inverse problems) ``repeats`` times in a row. Every result carries
``estimated_seconds`` (what the app predicted before the run; the PSNR-vs-t curve says it in its caption) next to
``seconds`` (what it took): run 1 shows the timing alone, run 2 onwards what the estimates learnt from the runs
before. Prints and writes a markdown table per load, with CPU flags and the load average.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.loadgen import competing_load, cpu_line, load_text  # noqa: E402

IMAGE = "london_006_neutral"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kinds(model: str, steps: int | None = None) -> dict:
    """Each tab's first demo with the app's defaults: name -> (api name, arguments, read (estimated, actual, range))."""
    from diffdemo.defaults import MEASUREMENT, SPECTRUM_START, UI, params_for

    def ui(name):
        return UI[name][2]

    def json_reader(index):
        def read(out):
            rec = out[index]
            return rec["estimated_seconds"], rec["seconds"], rec.get("estimated_range")

        return read

    def curve_reader(out):
        m = re.search(r"done in ([0-9.]+) s \(estimated ([0-9.]+|unavailable) s(?:, range ([^)]*))?\)", out[1])
        if not m or m.group(2) == "unavailable":
            return None, None, None
        return float(m.group(2)), float(m.group(1)), m.group(3)

    op = MEASUREMENT["operator"]
    dps = params_for("dps", op)
    dn_steps = steps or ui("denoise.steps")
    sm_steps = steps or ui("sample.steps")
    rs_steps = steps or int(dps.get("steps", ui("restore.steps")))
    spacing = dps.get("spacing", "uniform")
    restore = [model, IMAGE, None, 0, op, ui("restore.blur_std"), ui("restore.kernel_size"), "center",
               ui("restore.drop"), ui("restore.sigma_y")]  # fmt: skip
    tail = [params_for("sdedit", op)["t0"], params_for("score_ald", op)["zeta"], dps["scale"], rs_steps, None, True,
            int(dps.get("samples", 1)), "auto", spacing]  # fmt: skip
    chains = int(dps.get("samples", 1))
    t, n, points = ui("denoise.t"), ui("sample.n"), ui("denoise.points")
    k, iters = ui("spectrum.k"), ui("spectrum.iters")
    return {
        f"Denoise (t = {t}, {dn_steps} steps)": ("/denoise", [model, IMAGE, None, 0, t, dn_steps], json_reader(4)),
        f"PSNR-vs-t curve ({points} points, {dn_steps} steps)": (
            "/psnr_vs_t",
            [model, IMAGE, None, 0, dn_steps, points],
            curve_reader,
        ),
        f"Generate ({n} samples, {sm_steps} steps)": ("/sample", [model, 0, n, sm_steps], json_reader(3)),
        f"DPS deblurring ({rs_steps} steps, {chains} chains, {spacing})": (
            "/restore",
            [*restore, "dps", *tail],
            json_reader(6),
        ),
        f"Compare all ({rs_steps} steps, {chains} chains)": ("/restore", [*restore, "compare", *tail], json_reader(6)),
        "Sensitivity: one click": (
            "/probe",
            [model, IMAGE, None, 0, ui("probe.t"), 22, 28, "denoiser"],
            json_reader(4),
        ),
        f"Spectrum (t = {', '.join(map(str, SPECTRUM_START))}; k = {k}, {iters} steps)": (
            "/spectrum",
            [model, IMAGE, None, 0, [str(s) for s in SPECTRUM_START], k, iters],
            json_reader(4),
        ),
    }


def _ratio(est, actual) -> str:
    return f"{est / actual:.2f}" if est and actual else "n/a"


def _range_text(rng) -> str:
    if not rng:
        return ""
    if isinstance(rng, str):
        return rng
    return f"{rng[0]:.1f}-{rng[1]:.1f}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "assets" / "models" / "faces64"))
    p.add_argument("--out", default=str(ROOT / "bench" / "RESULTS_estimates_run.md"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=None, help="override the defaults' steps (Denoise, Generate, restore)")
    p.add_argument("--load", nargs="+", default=["quiet", "spin:1"], help="quiet, spin:N or matmul:N, in turn")
    p.add_argument("--only", default="", help="run only the kinds whose name contains this text")
    p.add_argument("--label", default="", help="what code this is (for the table's heading)")
    args = p.parse_args(argv)
    os.environ["DIFFDEMO_MODEL"] = args.model
    from diffdemo import threads

    configure = getattr(threads, "configure", None)  # (older checkouts, for a before/after table, lack it)
    thread_line = configure() if configure else None
    import gradio_client
    import torch

    thread_line = thread_line or f"torch uses {torch.get_num_threads()} threads (not chosen by the app)"

    import app

    app.warm_engine()
    from diffdemo.estimates import measure_cost
    from diffdemo.models import load_model

    startup = measure_cost(load_model(args.model))
    demo = app.build_app()
    demo.queue(default_concurrency_limit=1)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True)
    client = gradio_client.Client(url, verbose=False)
    blocks = []
    try:
        for load in args.load:
            kind, _, count = load.partition(":")
            rows, start = [], load_text()
            with competing_load(kind if kind != "quiet" else "spin", int(count or 0) if kind != "quiet" else 0):
                for name, (api, inputs, read) in kinds(args.model, args.steps).items():
                    if args.only and args.only not in name:
                        continue
                    for run in range(1, args.repeats + 1):
                        out = client.predict(*inputs, api_name=api)
                        est, actual, rng = read(out)
                        rows.append((name, run, est, actual, rng, load_text()))
                        print(
                            f"[{load}] {name} run {run}: estimated {est} s {_range_text(rng)}, actual {actual:.2f} s, "
                            f"ratio {_ratio(est, actual)}; load {load_text()}",
                            flush=True,
                        )
            blocks.append((load, start, load_text(), rows))
    finally:
        demo.close()
    lines = [
        f"## {args.label or 'Estimates against actual run times'}",
        "",
        f"`python bench/bench_estimates.py {' '.join(argv or sys.argv[1:])}` on {Path(args.model).name}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, {cpu_line()}, torch {torch.__version__}; {thread_line}. First timing: "
        f"{startup['forward_s'] * 1000:.0f} ms per network evaluation, {startup['grad_s'] * 1000:.0f} ms with its "
        "gradient.",
        "",
    ]
    for load, start, end, rows in blocks:
        after = [r for r in rows if r[1] >= 2 and r[2] and r[3]]
        within = sum(1 for r in after if 1 / 1.5 <= r[2] / r[3] <= 1.5)
        after_one = [r for r in rows if r[1] == 2 and r[2] and r[3]]
        within_one = sum(1 for r in after_one if 1 / 1.5 <= r[2] / r[3] <= 1.5)
        lines += [
            f"### Competing load: {load} (load average {start} at the start, {end} at the end)",
            "",
            f"After one run of a kind (run 2): **{within_one} of {len(after_one)}** estimates within 1.5x; all runs "
            f"from 2 on: {within} of {len(after)}.",
            "",
            "| run | # | estimated (s) | range shown (s) | actual (s) | ratio | load avg after |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, run, est, actual, rng, load_after in rows:
            shown = "n/a" if est is None else f"{est:.1f}"
            lines.append(
                f"| {name} | {run} | {shown} | {_range_text(rng)} | {actual:.1f} | {_ratio(est, actual)} | "
                f"{load_after} |"
            )
        lines.append("")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(Path(args.out).read_text())


if __name__ == "__main__":
    main()
