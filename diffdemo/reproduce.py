"""Regenerate the poster's Figures 1-9 and its methods table from seeded runs (``python -m diffdemo reproduce``).

Every figure is written twice: a PNG (matplotlib; plotly's static export needs kaleido, which is not a
dependency) and an interactive plotly HTML page sharing one ``plotly.min.js`` in the output folder, so the
folder opens offline. ``metrics.json`` holds every number behind the figures; ``report.md`` and ``report.html``
show the figures in the poster's order with one sentence each.

What each figure shows (its titles, axis, method and swept parameter) is data, ``FIGURES``; how much work a run
does is data, ``BUDGETS``; the code that runs them is one function per figure over a ``Reproduction`` (the run's
model, images, problems and cache of restorations). Every restoration goes through
``diffdemo.experiments.run_restoration`` and Figure 1 through ``experiments.psnr_lpips_vs_t``, as in the app.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from diffdemo import baselines, defaults, metrics
from diffdemo.defaults import params_for
from diffdemo.estimates import evaluations, image_evaluations
from diffdemo.experiments import (
    Row,
    compared,
    energy_curves,
    network,
    probing,
    psnr_lpips_vs_t,
    run_restoration,
    run_sampling,
    timesteps_for,
)
from diffdemo.experiments import (
    spectra as spectrum_results,
)
from diffdemo.figures import Figures, write_report_pages
from diffdemo.imaging import bundled_images, load_image, to_tensor, to_uint8
from diffdemo.jsonio import write_json
from diffdemo.labels import METHOD_TITLES
from diffdemo.models import DiffusionModel
from diffdemo.operators import make_operator
from diffdemo.precision import check_precision
from diffdemo.restore import DIFFUSION_METHODS, make_problem
from diffdemo.spacing import profile_stiffness
from diffdemo.threads import auto_threads

TASKS = {  # the poster's two inverse problems, as at 64 px (DESIGN.md section 4)
    "deblur": ("gaussian_blur", {}),
    "inpaint": ("box_inpaint", {"preset": "center"}),
}
TASK_TITLES = {"deblur": "Gaussian deblurring", "inpaint": "box inpainting"}


@dataclass(frozen=True)
class Budget:
    """How much work a run does; the sweeps use ``steps`` reverse steps (strided), the methods table
    ``table_steps`` (None: each method's tuned default, diffdemo/defaults.py)."""

    name: str
    steps: int  # reverse steps of the Fig. 3-5 sweeps and the spectra (SDEdit: min(steps, t0 + 1))
    table_images: int  # bundled test images in the methods table (0 = all)
    sweep_images: int  # images in the Fig. 3-5 sweeps
    denoise_ts: tuple[int, ...]  # Fig. 1 starting timesteps
    denoise_steps: int
    denoise_images: int
    n_samples: int  # Fig. 2
    sample_steps: int
    sdedit_t0s: tuple[int, ...]  # Fig. 3
    ald_zetas: tuple[float, ...]  # Fig. 4
    dps_scales: tuple[float, ...]  # Fig. 5
    probe_t: int  # Fig. 6: the timestep of the sensitivity maps
    probe_pixels: int  # Figs. 6-7: how many of PROBE_PIXELS
    energy_ts: tuple[int, ...]  # Fig. 7
    spectrum_ts: tuple[int, ...]  # Figs. 8-9
    spectrum_k: int  # singular triplets per timestep
    spectrum_iters: int  # subspace / Arnoldi iterations
    table_steps: int | None = None  # reverse steps in the methods table (None: the methods' default steps)
    claim_images: int = 1  # images probed for the Fig. 7 claim (the figure shows the first)
    schedule_nfes: tuple[int, ...] = ()  # Fig. 10: DPS deblurring at these NFE per timestep schedule
    spectrum_tol: float = 0.0  # Figs. 8-9: iterate until the values shown meet this relative residual (0: run the cap)


# The three budgets side by side, one row per Budget field: (tiny, quick, full). tiny: every code path for the
# test suite on a 16 px model, a handful of network calls each; quick: every figure in a few minutes on a 2-core
# CPU (a smoke run: every verdict says so); full: the poster's figures and the claims table the app ships, every
# trend on >= 8 timesteps (claims.MIN_POINTS), converged spectra, all test images in the table.
BUDGET_TABLE: dict[str, tuple] = {
    "steps": (3, 10, 40),
    "table_images": (2, 2, 0),
    "sweep_images": (1, 1, 2),
    "denoise_ts": ((50, 400), (50, 200, 500), (25, 50, 100, 200, 300, 400, 600, 800)),
    "denoise_steps": (3, 10, 25),
    "denoise_images": (1, 1, 3),
    "n_samples": (2, 4, 6),
    "sample_steps": (3, 10, 40),
    "sdedit_t0s": ((100, 300), (100, 300, 600), (50, 100, 200, 300, 400, 500, 600, 700)),
    "ald_zetas": ((0.5, 1.0), (0.5, 1.0, 2.0), (0.25, 0.5, 1.0, 2.0, 4.0)),
    "dps_scales": ((1.0, 3.0), (1.0, 3.0, 6.0), (0.5, 1.0, 2.0, 3.0, 5.0)),
    "probe_t": (250, 250, 250),
    "probe_pixels": (2, 2, 3),
    "energy_ts": ((50, 500), (50, 250, 500, 900), (10, 50, 100, 200, 300, 500, 700, 900)),
    "spectrum_ts": ((50, 500), (50, 400, 900), (20, 50, 100, 250, 400, 500, 700, 900)),
    "spectrum_k": (2, 2, 3),
    "spectrum_iters": (2, 3, 60),  # full: a cap; the run stops where spectrum_tol is met
    "table_steps": (3, 10, None),
    "claim_images": (2, 2, 3),
    "schedule_nfes": ((2, 3), (10, 20), (20, 50)),
    "spectrum_tol": (0.0, 0.0, 1e-3),  # analysis.RESIDUAL_TOL
}
BUDGETS = {
    name: Budget(name=name, **{field: values[i] for field, values in BUDGET_TABLE.items()})
    for i, name in enumerate(("tiny", "quick", "full"))
}
# (x, y) as fractions of the side on an aligned face crop: nose tip, left eyelid, right cheek
PROBE_PIXELS = (("nose", (0.50, 0.60)), ("left eyelid", (0.36, 0.42)), ("right cheek", (0.68, 0.64)))


def _table_params(method: str, operator: str, steps: int | None) -> dict:
    """A method's parameters in the methods table: its swept parameter at the task's default, and ``steps``
    (None: the method's default steps). Sweeps and table share runs when these match."""
    params = {}
    if method in DIFFUSION_METHODS:
        params["steps"] = int(steps if steps is not None else params_for(method, operator)["steps"])
    swept = {"sdedit": ("t0", int), "score_ald": ("zeta", float), "dps": ("scale", float)}
    if method in swept:
        name, kind = swept[method]
        params[name] = kind(params_for(method, operator)[name])
    return params


def _mean_std(values) -> tuple[float, float]:
    return metrics.mean_sd(values)  # the one aggregate over images (metrics.MEAN_SD)


def _vector_structure(vectors: torch.Tensor, image: torch.Tensor) -> dict:
    """The claims table's stand-in for 'interpretable' singular vectors (Fig. 9): smoothness and image correlation."""
    from diffdemo.claims import image_correlation, smoothness

    img = image[0].numpy()
    sm = [smoothness(v.numpy()) for v in vectors]
    co = [image_correlation(v.numpy(), img) for v in vectors]
    return {"smoothness": sm, "image_correlation": co, "smoothness_mean": float(np.mean(sm)),
            "image_correlation_mean": float(np.mean(co))}  # fmt: skip


# --- what each figure shows -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FigureSpec:
    """One figure: its key (file stem and metrics.json key), report heading, chart title and x axis; for a
    restoration sweep the method, the parameter swept and the Budget field holding its values."""

    key: str
    heading: str
    chart: str
    xlabel: str = "timestep t"
    method: str | None = None
    param: str | None = None
    values: str | None = None  # a Budget field


FIGURES = {
    spec.key: spec
    for spec in (
        FigureSpec("fig1_denoising", "Fig. 1 - Diffusion denoising quality vs starting t",
                   "Fig. 1 - diffusion denoising quality vs starting t", "starting timestep t (log scale)",
                   values="denoise_ts"),
        FigureSpec("fig2_samples", "Fig. 2 - Unconditional generation", "Fig. 2 - unconditional DDPM samples"),
        FigureSpec("fig3_sdedit", "Fig. 3 - SDEdit vs t0", "Fig. 3 - SDEdit vs t0", "starting timestep t0",
                   "sdedit", "t0", "sdedit_t0s"),
        FigureSpec("fig4_score_ald", "Fig. 4 - Score-ALD vs zeta", "Fig. 4 - Score-ALD vs zeta", "zeta",
                   "score_ald", "zeta", "ald_zetas"),
        FigureSpec("fig5_dps", "Fig. 5 - DPS vs scale", "Fig. 5 - DPS vs scale", "scale lambda", "dps", "scale",
                   "dps_scales"),
        FigureSpec("fig6_sensitivity", "Fig. 6 - Sensitivity analysis", "Fig. 6 - sensitivity maps"),
        FigureSpec("fig7_energy", "Fig. 7 - Radius of effect of one pixel", "Fig. 7 - energy vs radius across t",
                   values="energy_ts"),
        FigureSpec("fig8_spectrum", "Fig. 8 - Spectral radius and top singular value vs t",
                   "Fig. 8 - spectra of J_s and J_f vs t", values="spectrum_ts"),
        FigureSpec("fig9_singular_vectors", "Fig. 9 - Dominant singular vectors over time",
                   "Fig. 9 - dominant right singular vectors of J_f", values="spectrum_ts"),
        FigureSpec("fig10_schedules", "Fig. 10 - Step allocation (section 6)", "Fig. 10 - step allocation at equal NFE",
                   "network evaluations (NFE)", "dps", "steps", "schedule_nfes"),
    )
}  # fmt: skip
SWEEPS = ("fig3_sdedit", "fig4_score_ald", "fig5_dps")


# --- the run ----------------------------------------------------------------------------------------------------
class Reproduction:
    """One seeded reproduction: model, budget, images, problems, a cache of restorations and the progress bar."""

    def __init__(
        self, model: DiffusionModel, budget: Budget, out: Path, seed: int = 0, progress: bool = True,
        precision: str = "auto",
    ):  # fmt: skip
        from tqdm import tqdm

        self.model, self.budget, self.out, self.seed = model, budget, out, int(seed)
        self.precision = check_precision(precision)
        self.size = model.size
        self.sigma_y = defaults.SIGMA_Y
        out.mkdir(parents=True, exist_ok=True)
        self.figures = Figures(out)
        names = sorted(bundled_images(), key=lambda n: (n != defaults.IMAGE, n))
        n_table = budget.table_images or len(names)
        self.image_names = names[: max(n_table, budget.sweep_images, budget.denoise_images)]
        self.images = {n: to_tensor(load_image(bundled_images()[n], self.size)) for n in self.image_names}
        self.table_names = names[:n_table]
        self.ops = {task: make_operator(name, self.size, **params) for task, (name, params) in TASKS.items()}
        self.problems = {
            (task, n): make_problem(self.images[n], self.ops[task], self.sigma_y, self.seed)
            for task in TASKS
            for n in self.image_names
        }
        self.results: dict[tuple, Row] = {}
        self.metrics: dict = {}
        self.table_sentence = ""
        self.bar = tqdm(total=planned_units(self), desc="reproduce", unit="nfe", file=sys.stderr, disable=not progress)

    def restoration(self, method: str, task: str, name: str, **overrides) -> Row:
        """One method on one problem (experiments.run_restoration; cached: sweeps and the table share runs)."""
        key = (method, task, name, tuple(sorted(overrides.items())))
        if key not in self.results:
            self.bar.set_postfix_str(f"{method} {task} {name}", refresh=False)
            # one chain per run: the poster's figures show single posterior draws (and the budget counts one)
            extra = {"steps": self.budget.steps, "samples": 1} if method in DIFFUSION_METHODS else {}
            model = self.model if method in DIFFUSION_METHODS else None
            problem = self.problems[(task, name)]
            (row,) = run_restoration(
                model, problem, [method], overrides={**extra, **overrides}, precision=self.precision
            )
            self.results[key] = row
            self.bar.update(run_units(self.budget, method, **overrides))
        return self.results[key]

    def table_params(self, method: str, task: str) -> dict:
        return _table_params(method, self.ops[task].name, self.budget.table_steps)

    def table_methods(self, task: str) -> list[str]:
        return compared(self.ops[task].name) + list(baselines.applicable(self.ops[task]))

    def probe_pixels(self) -> list[tuple[str, tuple[int, int]]]:
        n = self.budget.probe_pixels
        return [(name, (int(fx * self.size), int(fy * self.size))) for name, (fx, fy) in PROBE_PIXELS[:n]]

    def timesteps(self, field: str) -> list[int]:
        """The Budget's timesteps ``field`` that this model has (t < T)."""
        return [t for t in getattr(self.budget, field) if t < self.model.schedule.T]

    def profile(self) -> dict | None:
        from diffdemo.profiles import load_profile

        try:
            return load_profile(self.model.name)
        except ValueError:
            return None

    def fig10_plan(self) -> list[tuple[str, int]]:
        from diffdemo.spacing import SCHEDULES

        scheds = [s for s in SCHEDULES if s != "spectral" or self.profile() is not None]
        return [(s, int(n)) for s in scheds for n in self.budget.schedule_nfes]


# --- cost accounting for the progress bar: the one cost model's image evaluations (diffdemo/estimates.py) ---------
def units(task: str, **params) -> int:
    """Network evaluations of one run counted per image (``estimates.evaluations``, ``image_evaluations``)."""
    return image_evaluations(evaluations(task, **params))


def run_units(budget: Budget, method: str, **overrides) -> int:
    if method not in DIFFUSION_METHODS:
        return 1  # a classical baseline: no network, one tick
    p = params_for(method, **{"steps": budget.steps, "samples": 1, **overrides})
    kind = "denoise_restore" if method == "denoise" else method  # the estimates' name of restoration's denoising
    return units(kind, steps=int(p["steps"]), t0=p.get("t0"), samples=1)


def planned_units(run: Reproduction) -> int:
    b = run.budget
    total = sum(units("denoise", t=t, steps=b.denoise_steps) for t in b.denoise_ts) * b.denoise_images
    total += units("sample", n=b.n_samples, steps=b.sample_steps)
    total += sum(run_units(b, key[0], **dict(key[3])) for key in restoration_plan(run))
    total += sum(run_units(b, "dps", steps=nfe) * b.sweep_images for _, nfe in run.fig10_plan())
    sweeps = b.probe_pixels * max(1, min(b.claim_images, len(run.image_names)))
    total += sweeps * units("energy", n_t=len(run.timesteps("energy_ts")))
    return total + b.probe_pixels * units("probe", sweep=0) + spectrum_units(run)


def spectrum_units(run: Reproduction) -> int:
    b = run.budget
    return units("spectrum", k=b.spectrum_k, iters=b.spectrum_iters, n_t=len(run.timesteps("spectrum_ts")))


def restoration_plan(run: Reproduction) -> list[tuple]:
    """Every (method, task, image, overrides) this run restores, sweeps first, without duplicates."""
    b = run.budget
    plan: list[tuple] = []
    for task in TASKS:
        for n in run.image_names[: b.sweep_images]:
            for spec in (FIGURES[k] for k in SWEEPS):
                kind = type(getattr(b, spec.values)[0])
                plan += [(spec.method, task, n, ((spec.param, kind(v)),)) for v in getattr(b, spec.values)]
    for task in TASKS:
        for n in run.table_names:
            plan += [(m, task, n, tuple(sorted(run.table_params(m, task).items()))) for m in run.table_methods(task)]
    return list(dict.fromkeys(plan))


# --- Fig. 1 -----------------------------------------------------------------------------------------------------
def fig1_denoising(run: Reproduction) -> None:
    """Figure 1 by experiments.psnr_lpips_vs_t (the app's definition): per t, mean and sd over the images."""
    b, spec = run.budget, FIGURES["fig1_denoising"]
    names, ts = run.image_names[: b.denoise_images], list(b.denoise_ts)
    per = {t: {"psnr": [], "ssim": [], "lpips": [], "psnr_noisy": []} for t in ts}
    strip_noisy, strip_out = [], []
    for k, n in enumerate(names):  # image k's noise is drawn from seed + k
        run.bar.set_postfix_str(f"denoise {n}", refresh=False)
        for r in psnr_lpips_vs_t(
            run.model, run.images[n], ts, steps=b.denoise_steps, seed=run.seed + k, precision=run.precision
        ):
            for key in ("psnr", "ssim", "lpips"):
                per[r["t"]][key].append(r[f"{key}_denoised"])
            per[r["t"]]["psnr_noisy"].append(r["psnr_noisy"])
            run.bar.update(r["nfe"])
            if k == 0:
                strip_noisy.append((f"t={r['t']}", to_uint8(r["noisy"])))
                strip_out.append((f"{r['psnr_denoised']:.1f} dB", to_uint8(r["denoised"])))
    rows = {t: _fig1_row(run.model, t, per[t]) for t in ts}
    lp_status = metrics.lpips_status(size=run.size)
    chart = run.figures.line_chart(spec.key, spec.chart, spec.xlabel, _fig1_panels(rows, ts, lp_status), log_x=True)
    strip = run.figures.image_table(
        "fig1_denoising_images",
        "Fig. 1 - noisy x_t and the reverse-diffusion result",
        [("noisy x_t", strip_noisy), ("denoised", strip_out)],
    )
    first, last = rows[ts[0]], rows[ts[-1]]
    sentence = (
        f"Reverse diffusion from a noised face (no data term, {b.denoise_steps} strided steps, "
        f"{len(names)} image(s)): PSNR goes from {first['psnr']['mean']:.1f} dB when starting at t={ts[0]} to "
        f"{last['psnr']['mean']:.1f} dB at t={ts[-1]}, as the prior replaces more of the image; "
        + (
            f"LPIPS goes from {first['lpips']['mean']:.3f} to {last['lpips']['mean']:.3f}."
            if lp_status == "available"
            else f"LPIPS is not reported ({lp_status})."
        )
    )
    run.figures.add(spec.key, spec.heading, sentence, [chart, strip])
    run.metrics[spec.key] = {
        "steps": b.denoise_steps,
        "images": names,
        "by_t": {str(t): rows[t] for t in ts},
        # per t, one value per image (in ``images`` order): the claims' trend rules pool images by these
        "per_image": {key: {str(t): per[t][key] for t in ts} for key in ("psnr", "lpips")},
        "lpips_status": lp_status,
    }


def _fig1_row(model: DiffusionModel, t: int, per: dict) -> dict:
    """Mean and sd over the images of each score at t (lpips None when unavailable) and the noise level sigma."""
    row = {key: dict(zip(("mean", "std"), _mean_std(v))) for key, v in per.items() if any(x is not None for x in v)}
    row["lpips"] = row.get("lpips")
    row["sigma"] = ((1 - model.schedule.abar(t)) / model.schedule.abar(t)) ** 0.5
    return row


def _fig1_panels(rows: dict, ts: list[int], lp_status: str) -> list[dict]:
    def denoised(key: str) -> dict:
        return {"name": "denoised", "x": ts, "y": [rows[t][key]["mean"] for t in ts],
                "err": [rows[t][key]["std"] for t in ts]}  # fmt: skip

    noisy = {"name": "noisy input x_t/sqrt(abar_t)", "x": ts, "y": [rows[t]["psnr_noisy"]["mean"] for t in ts]}
    panels = [
        {"ylabel": "PSNR (dB)", "series": [denoised("psnr"), noisy]},
        {"ylabel": "SSIM", "series": [denoised("ssim")]},
    ]
    if lp_status == "available":
        panels.append({"ylabel": "LPIPS (lower is better)", "series": [denoised("lpips")]})
    else:
        panels[1]["note"] = lp_status
    return panels


# --- Fig. 2 -----------------------------------------------------------------------------------------------------
def fig2_samples(run: Reproduction) -> None:
    b, spec = run.budget, FIGURES["fig2_samples"]
    run.bar.set_postfix_str("unconditional samples", refresh=False)
    start = time.perf_counter()
    done = run_sampling(run.model, n=b.n_samples, steps=b.sample_steps, seed=run.seed, schedule="uniform",
                        precision=run.precision)  # fmt: skip
    frame = done.frame
    seconds = time.perf_counter() - start
    run.bar.update(units("sample", n=b.n_samples, steps=b.sample_steps))
    x = frame.x_t.cpu()
    cells = [(f"seed {run.seed} #{i}", to_uint8(x[i : i + 1])) for i in range(x.shape[0])]
    files = run.figures.image_table(spec.key, spec.chart, [("samples", cells)])
    sentence = (
        f"{b.n_samples} unconditional DDPM samples (ancestral sampling from N(0, I), {b.sample_steps} strided "
        f"steps, seed {run.seed}) show what the prior alone generates."
    )
    run.figures.add(spec.key, spec.heading, sentence, [files])
    run.metrics[spec.key] = {
        "n": b.n_samples,
        "steps": b.sample_steps,
        "seed": run.seed,
        "seconds": seconds,
        "pixel_mean": float(x.mean()),
        "pixel_std": float(x.std()),
    }


# --- Figs. 3-5 --------------------------------------------------------------------------------------------------
def sweep(run: Reproduction, key: str) -> None:
    """A restoration method against its parameter on both tasks (FIGURES[key]): PSNR / SSIM chart and pictures."""
    spec, b = FIGURES[key], run.budget
    names, values = run.image_names[: b.sweep_images], list(getattr(b, spec.values))
    data = {task: _sweep_task(run, spec, task, names, values) for task in TASKS}
    psnr_panel = {"ylabel": "PSNR (dB)", "series": [], "hlines": []}
    ssim_panel = {"ylabel": "SSIM", "series": []}
    rows = []
    for task, d in data.items():
        psnr_panel["series"].append({"name": TASK_TITLES[task], "x": values, "y": [r["psnr"] for r in d["runs"]]})
        psnr_panel["hlines"].append({"name": f"measurement ({TASK_TITLES[task]})", "y": d["psnr_measurement"]})
        ssim_panel["series"].append({"name": TASK_TITLES[task], "x": values, "y": [r["ssim"] for r in d["runs"]]})
        prob = run.problems[(task, names[0])]
        cells = [("truth", to_uint8(prob.x0)), (f"y: {metrics.psnr(prob.y, prob.x0):.1f} dB", to_uint8(prob.y))]
        for v in values:
            r = run.restoration(spec.method, task, names[0], **{spec.param: v})
            cells.append((f"{spec.param}={v:g}: {r.psnr:.1f} dB", to_uint8(r.reconstruction)))
        rows.append((TASK_TITLES[task], cells))
    chart = run.figures.line_chart(key, spec.chart, spec.xlabel, [psnr_panel, ssim_panel])
    strip = run.figures.image_table(f"{key}_images", f"{spec.chart}: reconstructions", rows)
    parts = []
    for task, d in data.items():
        runs, p = d["runs"], spec.param
        best = max(runs, key=lambda r: r["psnr"])
        parts.append(
            f"{TASK_TITLES[task]} {runs[0]['psnr']:.1f} dB at {p}={runs[0][p]:g} to {runs[-1]['psnr']:.1f} dB at "
            f"{p}={runs[-1][p]:g} (best {best['psnr']:.1f} dB at {p}={best[p]:g}; measurement "
            f"{d['psnr_measurement']:.1f} dB)"
        )
    method = METHOD_TITLES[spec.method]
    sentence = f"{method} ({b.steps} strided steps, {len(names)} image(s)), PSNR: " + "; ".join(parts) + "."
    run.figures.add(key, spec.heading, sentence, [chart, strip])
    run.metrics[key] = {"param": spec.param, "values": values, "steps": b.steps, "images": names, **data}


def _sweep_task(run: Reproduction, spec: FigureSpec, task: str, names: list[str], values: list) -> dict:
    """Mean scores over the images at each swept value, and the measurement's mean PSNR."""
    per_value = []
    for v in values:
        runs = [run.restoration(spec.method, task, n, **{spec.param: v}) for n in names]
        per_value.append(
            {
                spec.param: v,
                "psnr": _mean_std([r.psnr for r in runs])[0],
                "psnr_per_image": [r.psnr for r in runs],
                "ssim": _mean_std([r.ssim for r in runs])[0],
                "lpips": _mean_std([r.lpips for r in runs])[0] if runs[0].lpips is not None else None,
                "seconds": _mean_std([r.seconds for r in runs])[0],
                "nfe": runs[0].nfe,
            }
        )
    measured = [metrics.psnr(run.problems[(task, n)].y, run.problems[(task, n)].x0) for n in names]
    return {"runs": per_value, "psnr_measurement": _mean_std(measured)[0], "psnr_measurement_per_image": measured}


# --- methods table ----------------------------------------------------------------------------------------------
def methods_table(run: Reproduction) -> None:
    table = []
    for task in TASKS:
        for method in run.table_methods(task):
            runs = [run.restoration(method, task, n, **run.table_params(method, task)) for n in run.table_names]
            row = {"task": task, "method": method, "images": len(runs), "nfe": runs[0].nfe}
            for m in ("psnr", "ssim", "lpips", "seconds"):
                vals = [getattr(r, m) for r in runs]
                mean, std = _mean_std(vals) if all(v is not None for v in vals) else (None, None)
                row[m] = {"mean": mean, "std": std}
            row["params"] = dict(runs[0].params)
            row["psnr_per_image"] = [r.psnr for r in runs]  # paired over images by the claims' rules
            table.append(row)
    measurement = {}
    for task in TASKS:
        measured = [metrics.psnr(run.problems[(task, n)].y, run.images[n]) for n in run.table_names]
        measurement[task] = {**dict(zip(("mean", "std"), _mean_std(measured))), "per_image": measured}
    run.metrics["methods_table"] = {"images": run.table_names, "rows": table, "psnr_measurement": measurement}
    best = {task: max((r for r in table if r["task"] == task), key=lambda r: r["psnr"]["mean"]) for task in TASKS}
    run.table_sentence = (
        f"All methods on {len(run.table_names)} of the {len(bundled_images())} bundled test images at {run.size} px "
        f"(sigma_y={run.sigma_y}, diffusion methods {_table_steps_text(run)} with their default parameters, one "
        "posterior draw each): best mean PSNR "
        + "; ".join(
            f"{TASK_TITLES[t]} {METHOD_TITLES[best[t]['method']]} {best[t]['psnr']['mean']:.1f} dB "
            f"(measurement {measurement[t]['mean']:.1f} dB)"
            for t in TASKS
        )
        + "."
    )


def _table_steps_text(run: Reproduction) -> str:
    if run.budget.table_steps is not None:
        return f"{run.budget.table_steps} strided steps"
    return (
        "their default strided steps ("
        + ", ".join(f"{METHOD_TITLES[m]} {params_for(m)['steps']}" for m in DIFFUSION_METHODS if m != "denoise")
        + "; SDEdit from t0)"
    )


def table_markdown(table: dict) -> str:
    """The methods table (metrics.json's ``methods_table``) as markdown."""
    lines = [
        "| task | method | PSNR (dB) mean ± sd | SSIM mean ± sd | LPIPS | NFE | seconds/image |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table["rows"]:
        lp = "n/a" if r["lpips"]["mean"] is None else f"{r['lpips']['mean']:.3f} ± {r['lpips']['std']:.3f}"
        lines.append(
            f"| {TASK_TITLES[r['task']]} | {METHOD_TITLES[r['method']]} | {r['psnr']['mean']:.2f} ± "
            f"{r['psnr']['std']:.2f} | {r['ssim']['mean']:.3f} ± {r['ssim']['std']:.3f} | {lp} | {r['nfe']} | "
            f"{r['seconds']['mean']:.2f} |"
        )
    for task, m in table["psnr_measurement"].items():
        lines.append(f"| {TASK_TITLES[task]} | *measurement y* | {m['mean']:.2f} ± {m['std']:.2f} | | | | |")
    lines.append(f"\n± : {metrics.MEAN_SD}.")
    return "\n".join(lines)


# --- Figs. 6-9 (analysis module) --------------------------------------------------------------------------------
def fig6_sensitivity(run: Reproduction) -> None:
    from diffdemo import analysis, pictures, plots

    b, model, spec = run.budget, run.model, FIGURES["fig6_sensitivity"]
    t = min(b.probe_t, model.schedule.T - 1)
    x_t = analysis.state_at(model, run.images[run.image_names[0]], t, run.seed)
    factor = max(1, 128 // run.size)
    big = np.repeat(np.repeat(to_uint8(x_t), factor, axis=0), factor, axis=1)
    results, rows = [], []
    for name, pixel in run.probe_pixels():
        run.bar.set_postfix_str(f"probe {name} t={t}", refresh=False)
        r = next(probing(model, run.images[run.image_names[0]], t, pixel, seed=run.seed, energy_on="denoiser"))
        run.bar.update(units("probe", sweep=0))
        results.append((name, r))
        cells = [(f"x_t, t={t}", pictures.mark_pixel(big, pixel, factor))]
        cells += [
            (f"{analysis.LABELS[k]} column", pictures.column_image(r.columns[k], pixel, min_side=128))
            for k in analysis.KINDS
        ]
        rows.append((f"{name} {pixel}", cells))
    png = run.figures.image_table(spec.key, f"{spec.chart} (Jacobian columns) at t={t}", rows, html=False)
    html_name = run.figures.html_page(spec.key, spec.chart, [plots.probe_figure(r) for _, r in results])
    errs = [r.fd_vs_jvp_rel_err for _, r in results if r.fd_vs_jvp_rel_err is not None]
    r90 = [r.energy.r90 for _, r in results]
    sentence = (
        f"Columns J e_i of the score Jacobian J_s, the reverse step J_f (eq. 34) and the denoiser J_D at t={t} for "
        f"{len(results)} pixels of a noised face, exact by forward-mode AD (central differences differ by "
        f"{max(errs):.1e} relative at most): a one-pixel nudge moves the denoised image within r90 = "
        + ", ".join(f"{v:.1f}" for v in r90)
        + " px (blue/red: negative/positive response, colour scale set away from the probed pixel)."
    )
    run.figures.add(spec.key, spec.heading, sentence, [{"png": png["png"], "html": html_name}])
    run.metrics[spec.key] = {
        "t": t,
        "image": run.image_names[0],
        "probes": [{"name": name, **r.summary()} for name, r in results],
    }


def _energy_curves(run: Reproduction, name: str, pixel: tuple[int, int], ts: list[int]) -> tuple[list, list]:
    """One pixel's energy curves on image ``name``, centre pixel excluded as the claim says: on J_D and on J_s.

    Both come from one central-difference sweep: J_D = a I + b J_s (Tweedie, eq. 11) differs from b J_s only at the
    centre pixel, so with the centre excluded their fractions agree (kept both, the claim text names both).
    """
    from diffdemo import analysis

    jd = energy_curves(run.model, run.images[name], pixel, ts, seed=run.seed, energy_on="denoiser", exclude_centre=True)
    js = []
    for c in jd:
        a, b = analysis.affine_coefficients(run.model, "denoiser", c.t)
        col = (c.column - a * analysis.pixel_basis(c.column.shape, pixel)[0]) / b
        js.append(analysis.energy_vs_radius(col, pixel, True, "J_s", c.t))
    return jd, js


def fig7_energy(run: Reproduction) -> None:
    from diffdemo import plots

    spec, ts = FIGURES["fig7_energy"], run.timesteps("energy_ts")
    per_pixel, js_curves = {}, {}
    for name, pixel in run.probe_pixels():
        run.bar.set_postfix_str(f"energy sweep {name}", refresh=False)
        curves, js_curves[name] = _energy_curves(run, run.image_names[0], pixel, ts)
        per_pixel[name] = (pixel, curves)
        run.bar.update(units("energy", n_t=len(ts)))
    first_name, (first_pixel, curves) = next(iter(per_pixel.items()))
    label = curves[0].label
    title = spec.chart.replace("energy vs radius", f"energy vs radius on {label}")
    chart = run.figures.line_chart(spec.key, title, spec.xlabel, _energy_panels(per_pixel, ts), html=False)
    figs = [plots.energy_figure(curves)] + [plots.energy_summary_figure(cs) for _, cs in per_pixel.values()]
    html_name = run.figures.html_page(spec.key, spec.chart, figs)
    r50 = ", ".join(f"{c.r50:.0f}" for c in curves)
    r90 = ", ".join(f"{c.r90:.0f}" for c in curves)
    sentence = (
        f"Fraction of the squared response of {label} within radius r of the {first_name} pixel {first_pixel}, "
        f"for t = {', '.join(map(str, ts))}: r50 = {r50} px and r90 = {r90} px (J_s with the centre excluded gives "
        "the same fractions: J_D differs from it only at the centre; right panels: every probed pixel)."
    )
    run.figures.add(spec.key, spec.heading, sentence, [{"png": chart["png"], "html": html_name}])
    run.metrics[spec.key] = {
        "on": label,
        "also_on": js_curves[first_name][0].label,
        "image": run.image_names[0],
        "other_images": _energy_other_images(run, ts),
        "timesteps": ts,
        "pixels": {
            n: {
                "pixel": list(p),
                "curves": [{**c.summary(), "fraction": c.fraction.tolist()} for c in cs],
                "curves_Js": [c.summary() for c in js_curves[n]],
            }
            for n, (p, cs) in per_pixel.items()
        },
    }


def _energy_panels(per_pixel: dict, ts: list[int]) -> list[dict]:
    first_name, (_, curves) = next(iter(per_pixel.items()))
    return [
        {
            "ylabel": f"energy fraction within r ({first_name})",
            "xlabel": "radius r (px)",
            "ylim": (0.0, 1.02),
            "series": [{"name": f"t={c.t}", "x": c.radii.tolist(), "y": c.fraction.tolist()} for c in curves],
        },
        {
            "ylabel": "r50 / r90 (px)",
            "xlabel": "timestep t",
            "series": [
                {"name": f"{q} {n}", "x": ts, "y": [getattr(c, q) for c in cs]}
                for n, (_, cs) in per_pixel.items()
                for q in ("r50", "r90")
            ],
        },
        {
            "ylabel": "effective pixels n_eff",
            "xlabel": "timestep t",
            "series": [{"name": n, "x": ts, "y": [c.n_eff for c in cs]} for n, (_, cs) in per_pixel.items()],
        },
    ]


def _energy_other_images(run: Reproduction, ts: list[int]) -> dict:
    """The energy sweeps of the claims table's further faces (the figure shows the first)."""
    others = {}
    for n in run.image_names[1 : max(1, run.budget.claim_images)]:
        run.bar.set_postfix_str(f"energy sweeps {n}", refresh=False)
        others[n] = {}
        for name, pixel in run.probe_pixels():
            jd, js = _energy_curves(run, n, pixel, ts)
            others[n][name] = {"pixel": list(pixel), "curves": [c.summary() for c in jd],
                               "curves_Js": [c.summary() for c in js]}  # fmt: skip
        run.bar.update(units("energy", n_t=len(ts)) * len(run.probe_pixels()))
    return others


def spectra(run: Reproduction) -> None:
    """Figs. 8 and 9 from one spectrum sweep (subspace + Arnoldi iteration on J_s and J_f)."""

    b, ts = run.budget, run.timesteps("spectrum_ts")
    run.bar.set_postfix_str("spectra (subspace + Arnoldi iteration)", refresh=False)
    results = list(spectrum_results(
        run.model, run.images[run.image_names[0]], ts, k=b.spectrum_k, iters=b.spectrum_iters, seed=run.seed,
        steps=b.steps, max_batch=16, tol=b.spectrum_tol,
    ))  # fmt: skip
    run.bar.update(spectrum_units(run))
    fig8_spectrum(run, results, ts)
    fig9_singular_vectors(run, results, ts)


def fig8_spectrum(run: Reproduction, results: list, ts: list[int]) -> None:
    from diffdemo import plots

    b, spec = run.budget, FIGURES["fig8_spectrum"]
    panels = [
        {
            "ylabel": "singular values of J_s",
            "series": [
                {"name": f"sigma_{i + 1}(J_s)", "x": ts, "y": [float(r.singular_Js.values[i]) for r in results]}
                for i in range(b.spectrum_k)
            ],
        },
        {
            "ylabel": "J_f: sigma_max and spectral radius",
            "series": [
                {"name": "sigma_max(J_f)", "x": ts, "y": [r.sigma_max_Jf for r in results]},
                {"name": "rho(J_f)", "x": ts, "y": [r.rho_Jf for r in results]},
            ],
            "hlines": [{"name": "1 (stability boundary)", "y": 1.0}],
        },
    ]
    chart = run.figures.line_chart(spec.key, spec.chart, spec.xlabel, panels, html=False, log_y=(0,))
    figs = [plots.spectrum_figure(results), plots.step_limit_figure(results)]
    html = run.figures.html_page(spec.key, "Fig. 8 - spectra vs t", figs)
    js, rho = [r.sigma_max_Js for r in results], [r.rho_Jf for r in results]
    sentence = (
        f"Top singular value of J_s from {js[0]:.3g} at t={ts[0]} to {js[-1]:.3g} at t={ts[-1]} and spectral "
        f"radius of the one-step reverse map rho(J_f) from {rho[0]:.4g} to {rho[-1]:.4g} ("
        f"{results[0].singular_Js.iters} Lanczos / {results[0].eig.iters} Arnoldi iterations, JVP + VJP only, no "
        f"Jacobian materialised; {sum(r.all_converged for r in results)} of {len(results)} timesteps with every value "
        "shown converged)."
    )
    run.figures.add(spec.key, spec.heading, sentence, [{"png": chart["png"], "html": html}])
    run.metrics[spec.key] = {"timesteps": ts, "results": [r.summary() for r in results]}


def fig9_singular_vectors(run: Reproduction, results: list, ts: list[int]) -> None:
    from diffdemo import pictures, plots

    b, spec = run.budget, FIGURES["fig9_singular_vectors"]
    rows = [
        (
            f"t={r.t}",
            [
                (f"v{i + 1}, sigma={float(sv.values[i]):.3g}", pictures.vector_image(sv.right[i], 64))
                for i in range(len(sv.values))
            ],
        )
        for r in results
        for sv in (r.singular_Jf,)
    ]
    png = run.figures.image_table(spec.key, spec.chart, rows, html=False)
    figs = [plots.singular_vectors_figure(results, "Jf"), plots.singular_vectors_figure(results, "Js")]
    html = run.figures.html_page(spec.key, "Fig. 9 - dominant singular vectors over t", figs)
    res = max(float(r.singular_Jf.residual.max()) for r in results)
    sentence = (
        f"The top {b.spectrum_k} right singular vectors of J_f at each t (RGB, zero = grey), from "
        f"{results[0].singular_Jf.iters} Lanczos iterations (largest residual ||J^T u - sigma v|| / sigma = "
        f"{res:.2g}; more iterations sharpen them)."
    )
    run.figures.add(spec.key, spec.heading, sentence, [{"png": png["png"], "html": html}])
    x0 = run.images[run.image_names[0]]
    run.metrics[spec.key] = {
        "operator": "J_f",
        "timesteps": ts,
        "singular_values": [r.singular_Jf.values.tolist() for r in results],
        "residuals": [r.singular_Jf.residual.tolist() for r in results],
        "iters": [r.singular_Jf.iters for r in results],
        "structure": [_vector_structure(r.singular_Jf.right, x0) for r in results],
    }


# --- Fig. 10: step allocation (poster section 6, future work) ---------------------------------------------------
def fig10_schedules(run: Reproduction) -> None:
    """DPS deblurring quality vs network evaluations per timestep schedule, and where each schedule puts its
    steps over the measured stability profile rho(J_s)(t)."""
    b, spec = run.budget, FIGURES["fig10_schedules"]
    if not b.schedule_nfes:
        return
    profile, names = run.profile(), run.image_names[: b.sweep_images]
    data: dict[str, list] = {}
    for sched, nfe in run.fig10_plan():
        overrides = {"steps": nfe, "schedule": sched}  # always named: the default list is not uniform (issue 22)
        runs = [run.restoration(spec.method, "deblur", n, **overrides) for n in names]
        psnr, sd = _mean_std([r.psnr for r in runs])
        ssim = _mean_std([r.ssim for r in runs])[0]
        data.setdefault(sched, []).append(
            {"nfe": nfe, "psnr": psnr, "psnr_sd": sd, "ssim": ssim, "psnr_per_image": [r.psnr for r in runs]}
        )
    top = max(b.schedule_nfes)
    positions = {s: timesteps_for(run.model, top, None, s) for s in data}
    chart = run.figures.line_chart(
        spec.key, spec.chart, spec.xlabel, fig10_panels({"DPS deblurring": data}, positions, profile, top),
        log_y=(1,) if profile is not None else (),
    )  # fmt: skip
    best = {s: max(rows, key=lambda r: r["nfe"]) for s, rows in data.items()}
    sentence = (
        f"DPS Gaussian deblurring ({len(names)} image(s)) with {len(data)} timestep lists at equal network evaluations "
        f"{list(b.schedule_nfes)}: at {top} NFE "
        + ", ".join(f"{s} {r['psnr']:.2f} dB" for s, r in best.items())
        + (
            ". Right: each schedule's steps on the model's measured stiffness (spectral: equal h stiff(J_s) per step; "
            "logsnr: the same rule on 1/(1 - abar_t))."
            if profile is not None
            else "; no stability profile for this model, so no spectral schedule "
            f"(python -m diffdemo profile --model {run.model.name})."
        )
    )
    run.figures.add(spec.key, spec.heading, sentence, [chart])
    run.metrics[spec.key] = {
        "task": "deblur",
        "method": spec.method,
        "images": names,
        "nfe": list(b.schedule_nfes),
        "by_schedule": data,
        "timesteps_at_max_nfe": positions,
        "profile": None if profile is None else {"t": profile["t"], "stiff_Js": profile_stiffness(profile)},
    }


def fig10_panels(curves: dict[str, dict[str, list[dict]]], positions: dict, profile: dict | None, top: int) -> list:
    """Fig. 10, the one drawing (``reproduce`` draws it with ``charts.line_chart_png``):
    for each problem (``curves``: its title -> schedule -> rows of nfe, psnr and psnr_sd) PSNR against network
    evaluations, mean ± sd over the images (``metrics.MEAN_SD``); then, with a stability profile, where each
    schedule puts its ``top`` steps (``positions``) on the measured rho(J_s)(t) (log y: the last panel)."""
    panels = []
    for title, data in curves.items():
        series = [
            {"name": s, "x": [r["nfe"] for r in rows], "y": [r["psnr"] for r in rows],
             "err": [r.get("psnr_sd") or 0.0 for r in rows]}
            for s, rows in data.items()
        ]  # fmt: skip
        panels.append({"ylabel": "PSNR (dB), mean ± sd", "xlabel": f"network evaluations: {title}", "series": series})
    if profile is not None:
        stiff = profile_stiffness(profile)
        rho_at = lambda ts: np.exp(np.interp(ts, profile["t"], np.log(stiff))).tolist()  # noqa: E731
        measured = [{"name": "stiff(J_s)(t), measured (largest |lambda|, Re < 0)", "x": profile["t"], "y": stiff}]
        steps = [{"name": f"{s}: its {top} steps", "x": ts, "y": rho_at(ts)} for s, ts in positions.items()]
        panels.append({"ylabel": "stiff(J_s) at each step", "xlabel": "timestep t", "series": measured + steps})
    return panels


# --- the claims table and the report ----------------------------------------------------------------------------
def claims(run: Reproduction) -> None:
    from diffdemo.claims import evaluate_claims

    profile = run.profile()
    if profile is not None:
        keys = ("t", "rho_Js", "stiff_Js", "rho_Jf", "rho_Jf_per_image", "residual_Jf_per_image")
        run.metrics["stability_profile"] = {k: profile[k] for k in keys if k in profile}
    run.metrics["claims"] = evaluate_claims(run.metrics, budget=run.budget.name)


def command_line(model: str, budget: str, seed: int, out) -> str:
    """The command that makes a run of this budget (what the app shows under the claims table)."""
    flag = {"full": "", "quick": " --quick", "tiny": " --tiny"}[budget]
    seed_text = "" if seed == defaults.SEED else f" --seed {seed}"
    return f"python -m diffdemo reproduce{flag} --model {model}{seed_text} --out {out}"


def _write_claims(out: Path, metrics_: dict, lp_status: str, date: str) -> None:
    from diffdemo.claims import CLAIMS_NAME, write_claims_file

    budget = metrics_["budget"]["name"]
    write_claims_file(out / CLAIMS_NAME, metrics_["claims"], model=metrics_["model"], budget=budget,
                      seed=metrics_["seed"], lpips_status=lp_status, date=date, seconds=metrics_.get("seconds"),
                      command=command_line(metrics_["model"], budget, metrics_["seed"], out))  # fmt: skip


def refresh_claims(out: str | Path) -> dict:
    """Re-evaluate the claims of a finished run from its metrics.json (the rules changed, the numbers did not):
    rewrites metrics.json's claims, claims.json and the report's claims section; no network evaluation."""
    import json

    from diffdemo.claims import append_claims_section, evaluate_claims

    out = Path(out)
    data = json.loads((out / "metrics.json").read_text())
    data["claims"] = evaluate_claims(data, budget=data["budget"]["name"])
    write_json(out / "metrics.json", data)
    heading = "\n## The poster's claims on this model"
    md = (out / "report.md").read_text()
    (out / "report.md").write_text(md.split(heading)[0])
    page = (out / "report.html").read_text()
    cut = page.find("<h2>The poster&#x27;s claims on this model</h2>")
    (out / "report.html").write_text(page[:cut] + "</body></html>" if cut >= 0 else page)
    append_claims_section(out, data["claims"], data["lpips_status"])
    _write_claims(out, data, data["lpips_status"], data.get("date") or "an unrecorded date")
    return {"claims": str(out / "claims.json"), "verdicts": {r["key"]: r["verdict"] for r in data["claims"]}}


def write_report(run: Reproduction, seconds: float) -> dict:
    out, lp_status = run.out, metrics.lpips_status(size=run.size)
    run.metrics.update(
        model=run.model.name,
        budget=asdict(run.budget),
        seed=run.seed,
        size=run.size,
        sigma_y=run.sigma_y,
        operators={task: op.describe() for task, op in run.ops.items()},
        lpips_status=lp_status,
        # the network's number format per method; the analysis figures always differentiate in fp32
        precision={
            "requested": run.precision,
            **{m: network(run.model, m, run.precision).precision for m in (*DIFFUSION_METHODS, "sample")},
            "analysis": "fp32",
        },
        figures=[{"key": e["key"], "files": e["files"]} for e in run.figures.entries],
        seconds=seconds,
        date=time.strftime("%Y-%m-%d", time.gmtime()),
    )
    write_json(out / "metrics.json", run.metrics)
    head = (
        f"Model `{run.model.name}`, budget `{run.budget.name}`, seed {run.seed}, {run.size} px, "
        f"sigma_y = {run.sigma_y} ([-1, 1] units), {seconds / 60:.1f} min. LPIPS: {lp_status}."
    )
    table = None
    if "methods_table" in run.metrics:
        table = ("fig5_dps", "Methods table", run.table_sentence, table_markdown(run.metrics["methods_table"]))
    write_report_pages(out, "diffdemo - the poster's figures, regenerated", head, run.figures.entries, table)
    if "claims" in run.metrics:
        from diffdemo.claims import append_claims_section

        append_claims_section(out, run.metrics["claims"], lp_status)
        _write_claims(out, run.metrics, lp_status, run.metrics["date"])
    return {
        "report": str(out / "report.html"),
        "report_md": str(out / "report.md"),
        "metrics": str(out / "metrics.json"),
        "claims": str(out / "claims.json"),
    }


# the poster's order: Figs. 1-5, the methods table (shown after Fig. 5), the analysis, Fig. 10, the claims
STAGES = (
    fig1_denoising,
    fig2_samples,
    *(lambda run, key=key: sweep(run, key) for key in SWEEPS),
    methods_table,
    fig6_sensitivity,
    fig7_energy,
    spectra,
    fig10_schedules,
    claims,
)


def reproduce(
    model: DiffusionModel,
    out: str | Path,
    budget: str | Budget = "full",
    seed: int = defaults.SEED,
    progress: bool = True,
    threads: int | None = None,
    precision: str = "auto",
) -> dict:
    """Run every figure of the poster and write the report; returns where it is plus the run's summary.

    ``precision`` (auto, fp32, bf16) is the network's number format for the sampling figures (diffdemo/precision.py).
    """
    budget = BUDGETS[budget] if isinstance(budget, str) else budget
    threads = int(threads) if threads else auto_threads()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        run = Reproduction(model, budget, Path(out), seed=seed, progress=progress, precision=precision)
        try:
            for stage in STAGES:
                stage(run)
        finally:
            run.bar.close()
        seconds = time.perf_counter() - start
        where = write_report(run, seconds)
    finally:
        torch.set_num_threads(previous_threads)
    return {
        **where,
        "out": str(Path(out)),
        "budget": budget.name,
        "model": model.name,
        "seed": seed,
        "seconds": round(seconds, 1),
        "threads": threads,
        "precision": run.metrics["precision"],
        "figures": [e["key"] for e in run.figures.entries],
    }
