"""Step allocation at equal network evaluations: uniform, quadratic, Karras and spectral timestep lists.

    python bench/bench_schedules.py [--nfe 20,50,100] [--extra uniform@250,spectral@250] [--tasks ...]

Five problems on the six bundled test faces at 64 px with faces64 (all six in one batch, one chain each, seed 0,
sigma_y = 0.05): DPS Gaussian deblurring, DPS box inpainting, Score-ALD deblurring (tuned defaults otherwise), and
plain reverse diffusion from a face noised to t = 300 (``denoise``, deterministic); and DPS deblurring again with
scale 2.5 instead of the tuned 1 (to separate the schedule from the guidance that fewer steps leave out). Every (task, schedule, NFE)
result is cached in bench/results/schedules.json, so a killed run resumes; the markdown table
(bench/RESULTS_schedules.md) and the figure (bench/fig10_schedules.png) are rewritten after every run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffdemo import metrics  # noqa: E402
from diffdemo.defaults import SIGMA_Y  # noqa: E402
from diffdemo.experiments import run_restoration, timesteps_for  # noqa: E402
from diffdemo.imaging import bundled_images, load_image, to_tensor  # noqa: E402
from diffdemo.models import load_model  # noqa: E402
from diffdemo.operators import make_operator  # noqa: E402
from diffdemo.profiles import load_profile  # noqa: E402
from diffdemo.restore import make_problem  # noqa: E402
from diffdemo.schedule import noise_levels  # noqa: E402
from diffdemo.spacing import SCHEDULES  # noqa: E402

CACHE = ROOT / "bench" / "results" / "schedules.json"
DENOISE_T = 300
# task: (method, operator, operator params, sigma_y (None: the noise level of t = DENOISE_T), overrides)
TASKS = {
    "dps_deblur": ("dps", "gaussian_blur", {}, SIGMA_Y, {}),
    "dps_inpaint": ("dps", "box_inpaint", {"preset": "center"}, SIGMA_Y, {}),
    "ald_deblur": ("score_ald", "gaussian_blur", {}, SIGMA_Y, {}),
    "denoise_t300": ("denoise", "noise", {}, None, {"t0": DENOISE_T}),
    # the step size tuned at 250 steps (scale 1) gives 50 steps a fifth of the pull toward y: the same problem with
    # scale 2.5 asks how much of the gap at few NFE is the schedule and how much the guidance left out
    "dps_deblur_scale2.5": ("dps", "gaussian_blur", {}, SIGMA_Y, {"scale": 2.5}),
}
TITLES = {
    "dps_deblur": "DPS, Gaussian deblurring",
    "dps_inpaint": "DPS, box inpainting",
    "ald_deblur": "Score-ALD, Gaussian deblurring",
    "denoise_t300": f"reverse diffusion from t = {DENOISE_T}",
    "dps_deblur_scale2.5": "DPS, Gaussian deblurring, scale 2.5",
}


def run_one(model, x0: torch.Tensor, task: str, schedule: str, nfe: int) -> dict:
    method, op_name, op_params, sigma_y, extra = TASKS[task]
    op = make_operator(op_name, model.size, **op_params)
    sigma = float(noise_levels(model.schedule)[DENOISE_T]) if sigma_y is None else sigma_y
    problem = make_problem(x0, op, sigma, seed=0)
    overrides = {"steps": nfe, "samples": 1, "schedule": schedule, **extra}
    (row,) = run_restoration(model, problem, [method], overrides=overrides)
    per = metrics.per_image(metrics.all_metrics, row.reconstruction, x0)
    out = {"nfe": row.nfe, "seconds": row.seconds, "images": x0.shape[0]}
    for key in ("psnr", "ssim", "lpips"):
        vals = [p[key] for p in per]
        if any(v is None for v in vals):
            out[key] = None
            continue
        mean, sd = metrics.mean_sd(vals)
        out[key] = {"mean": mean, "sd": sd, "values": vals}
    start_t = DENOISE_T if method == "denoise" else None
    out["timesteps"] = timesteps_for(model, min(nfe, (start_t or 999) + 1), start_t, schedule)
    return out


def fmt(r: dict | None, key: str) -> str:
    if r is None:
        return "—"
    v = r.get(key)
    if v is None:
        return "n/a"
    digits = 2 if key == "psnr" else 3
    return f"{v['mean']:.{digits}f} ± {v['sd']:.{digits}f}"


def write_results(results: dict, meta: dict, path: Path) -> None:
    nfes = sorted({int(k.split("@")[1]) for task in results.values() for k in task})
    lines = [
        "# Step allocation at equal network evaluations (bench/bench_schedules.py)",
        "",
        f"faces64, the six bundled test faces at 64 px in one batch, one chain each, seed 0, sigma_y = 0.05 (denoise: "
        f"the face noised to t = {DENOISE_T}). Tuned defaults otherwise (DPS scale 1, Score-ALD zeta 4 on deblurring). "
        f"NFE = reverse steps (a DPS step is one forward + one backward pass). ± : {metrics.MEAN_SD}. "
        f"LPIPS: {meta['lpips']}. {meta['machine']}; seconds are wall clock on a machine that was at times shared "
        "with other jobs, so they are not compared. Schedules: uniform stride; quadratic (DDIM); karras (rho = 7, nearest discrete noise level); "
        "spectral (equal explicit-Euler stability number h rho(J_s) per step, from "
        "assets/models/faces64/stability_profile.json). '—': not run (time).",
        "",
    ]
    for task in [t for t in TASKS if t in results]:  # the problems in TASKS' order, whatever the caches' order
        rows = results[task]
        lines += [f"## {TITLES[task]}", "", "| schedule | " + " | ".join(f"NFE {n}" for n in nfes) + " |"]
        lines.append("|---|" + "---:|" * len(nfes))
        for sched in SCHEDULES:
            cells = []
            for n in nfes:
                r = rows.get(f"{sched}@{n}")
                cells.append(
                    "—" if r is None else f"{fmt(r, 'psnr')} dB, SSIM {fmt(r, 'ssim')}, LPIPS {fmt(r, 'lpips')}"
                )
            lines.append(f"| {sched} | " + " | ".join(cells) + " |")
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def write_figure(results: dict, profile: dict, model, path: Path) -> None:
    """Fig. 10 by the one drawing (``reproduce.fig10_panels``): PSNR vs NFE per schedule for each task, mean ± sd
    over the images, and where each schedule puts 50 steps over rho(J_s)(t)."""
    from diffdemo.plots import line_chart_png, pyplot
    from diffdemo.reproduce import fig10_panels

    curves = {}
    for task in (t for t in TASKS if t in results):
        by_schedule = {}
        for sched in SCHEDULES:
            pts = sorted((int(k.split("@")[1]), v) for k, v in results[task].items() if k.startswith(sched + "@"))
            rows = [{"nfe": n, "psnr": v["psnr"]["mean"], "psnr_sd": v["psnr"]["sd"]} for n, v in pts]
            if rows:
                by_schedule[sched] = rows
        curves[TITLES[task]] = by_schedule
    # the spectral list reads the stored profile: without one, no spectral positions
    scheds = [s for s in SCHEDULES if s != "spectral" or profile is not None]
    positions = {s: timesteps_for(model, 50, None, s) for s in scheds}
    panels = fig10_panels(curves, positions, profile, 50)
    log_y = (len(curves),) if profile is not None else ()
    fig = line_chart_png(panels, "Fig. 10 - step allocation at equal NFE", "network evaluations", log_y=log_y)
    fig.savefig(path, dpi=90)
    pyplot().close(fig)


def _profile() -> dict | None:
    try:
        return load_profile("faces64")
    except ValueError:
        return None


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nfe", default="20,50,100", help="NFE run for every schedule")
    p.add_argument("--extra", default="uniform@250", help="further schedule@NFE runs, comma-separated")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--results", default=str(ROOT / "bench" / "RESULTS_schedules.md"))
    p.add_argument("--figure", default=str(ROOT / "bench" / "fig10_schedules.png"))
    p.add_argument("--cache", default=str(CACHE), help="this process's cache (several processes: one each)")
    p.add_argument("--order", default="", help="schedules in run order (default: uniform, quadratic, karras, spectral)")
    p.add_argument("--report-only", action="store_true", help="merge every cache and rewrite the table and figure")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    model = load_model("faces64")
    profile = _profile()
    names = sorted(bundled_images())
    x0 = torch.cat([to_tensor(load_image(bundled_images()[n], model.size)) for n in names])
    cache = Path(args.cache)
    results = json.loads(cache.read_text()) if cache.exists() else {}
    meta = {
        "lpips": metrics.lpips_status(),
        "machine": f"{platform.machine()} CPU, torch {torch.__version__}, {torch.get_num_threads()} threads",
    }
    if args.report_only:
        merged: dict = {}
        for f in sorted(CACHE.parent.glob("schedules*.json")):
            for task, rows in json.loads(f.read_text()).items():
                merged.setdefault(task, {}).update(rows)
        write_results(merged, meta, Path(args.results))
        write_figure(merged, profile, model, Path(args.figure))
        return
    order = args.order.split(",") if args.order else list(SCHEDULES)
    nfes = [int(n) for n in args.nfe.split(",")]
    plan = []
    for task in args.tasks.split(","):
        # the comparison the goal names comes first: uniform@250 vs spectral@50 on DPS deblurring
        plan += [(task, *e.split("@")) for e in args.extra.split(",") if e]
        plan += [(task, s, str(n)) for n in nfes for s in order]
    deferred = 0
    while plan:
        task, sched, nfe = plan.pop(0)
        key = f"{sched}@{nfe}"
        if key in results.get(task, {}):
            continue
        if sched == "spectral" and profile is None:
            profile = _profile()
            if profile is None:  # still being measured: run the others first
                deferred += 1
                if deferred > 200:
                    print(f"{task} {key}: skipped, no stability profile", flush=True)
                    continue
                plan.append((task, sched, nfe))
                if all(s == "spectral" for _, s, _ in plan):
                    time.sleep(30)
                continue
        r = run_one(model, x0, task, sched, int(nfe))
        results.setdefault(task, {})[key] = r
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(results, indent=1, allow_nan=False))
        write_results(results, meta, Path(args.results))
        write_figure(results, profile, model, Path(args.figure))
        print(f"{task} {key}: {fmt(r, 'psnr')} dB, {r['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
