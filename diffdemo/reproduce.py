"""Regenerate the poster's Figures 1-9 and its methods table from seeded runs (``python -m diffdemo reproduce``).

Every figure is written twice: a PNG (matplotlib; plotly's static export needs kaleido, which is not a
dependency) and an interactive plotly HTML page sharing one ``plotly.min.js`` in the output folder, so the
folder opens offline. ``metrics.json`` holds every number behind the figures; ``report.md`` and ``report.html``
show the figures in the poster's order with one sentence each.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from diffdemo import baselines, metrics
from diffdemo.defaults import params_for
from diffdemo.figures import Figures, write_report_pages
from diffdemo.imaging import bundled_images, load_image, to_tensor, to_uint8
from diffdemo.jsonio import write_json
from diffdemo.labels import METHOD_TITLES
from diffdemo.models import DiffusionModel
from diffdemo.operators import make_operator
from diffdemo.precision import check_precision, resolve_precision
from diffdemo.restore import DIFFUSION_METHODS, make_problem, model_for, restore
from diffdemo.samplers import denoise, last_frame, noise_image, sample
from diffdemo.threads import auto_threads

DEFAULT_IMAGE = "london_006_neutral"
TASKS = {  # the poster's two inverse problems, as at 64 px (DESIGN.md section 4)
    "deblur": ("gaussian_blur", {}),
    "inpaint": ("box_inpaint", {"preset": "center"}),
}
TASK_TITLES = {"deblur": "Gaussian deblurring", "inpaint": "box inpainting"}
DPS_COST = 3  # one DPS step = forward + backward through the UNet: about 3 forward evaluations (bench_engine.py)


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


BUDGETS = {
    # for the test suite on a 16 px model: every code path, a handful of network calls each
    "tiny": Budget(
        name="tiny",
        steps=3,
        table_images=2,
        sweep_images=1,
        denoise_ts=(50, 400),
        denoise_steps=3,
        denoise_images=1,
        n_samples=2,
        sample_steps=3,
        sdedit_t0s=(100, 300),
        ald_zetas=(0.5, 1.0),
        dps_scales=(1.0, 3.0),
        probe_t=250,
        probe_pixels=2,
        energy_ts=(50, 500),
        spectrum_ts=(50, 500),
        spectrum_k=2,
        spectrum_iters=2,
        table_steps=3,
        claim_images=2,
        schedule_nfes=(2, 3),
    ),
    # every figure in a few minutes on a 2-core CPU
    "quick": Budget(
        name="quick",
        steps=10,
        table_images=2,
        sweep_images=1,
        denoise_ts=(50, 200, 500),
        denoise_steps=10,
        denoise_images=1,
        n_samples=4,
        sample_steps=10,
        sdedit_t0s=(100, 300, 600),
        ald_zetas=(0.5, 1.0, 2.0),
        dps_scales=(1.0, 3.0, 6.0),
        probe_t=250,
        probe_pixels=2,
        energy_ts=(50, 250, 500, 900),
        spectrum_ts=(50, 400, 900),
        spectrum_k=2,
        spectrum_iters=3,
        table_steps=10,
        claim_images=2,
        schedule_nfes=(10, 20),
    ),
    # the poster's figures; well under 30 minutes on a 2-core CPU
    "full": Budget(
        name="full",
        steps=40,
        table_images=0,
        sweep_images=1,
        denoise_ts=(25, 50, 100, 200, 400, 600, 800),
        denoise_steps=25,
        denoise_images=2,
        n_samples=6,
        sample_steps=40,
        sdedit_t0s=(100, 200, 300, 500, 700),
        ald_zetas=(0.25, 0.5, 1.0, 2.0, 4.0),
        dps_scales=(0.5, 1.0, 2.0, 3.0, 5.0),
        probe_t=250,
        probe_pixels=3,
        energy_ts=(10, 50, 100, 200, 300, 500, 700, 900),
        spectrum_ts=(20, 100, 250, 500, 900),
        spectrum_k=3,
        spectrum_iters=6,
        claim_images=3,
        schedule_nfes=(20, 50),
    ),
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
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def _vector_structure(vectors: torch.Tensor, image: torch.Tensor) -> dict:
    """The claims table's stand-in for 'interpretable' singular vectors (Fig. 9): smoothness and image correlation."""
    from diffdemo.claims import image_correlation, smoothness

    img = image[0].numpy()
    sm = [smoothness(v.numpy()) for v in vectors]
    co = [image_correlation(v.numpy(), img) for v in vectors]
    return {"smoothness": sm, "image_correlation": co, "smoothness_mean": float(np.mean(sm)),
            "image_correlation_mean": float(np.mean(co))}  # fmt: skip


# --- the run ----------------------------------------------------------------------------------------------------
class Reproduction:
    """One seeded reproduction: model, budget, images, problems, a cache of restorations and the progress bar."""

    def __init__(
        self,
        model: DiffusionModel,
        budget: Budget,
        out: Path,
        seed: int = 0,
        progress: bool = True,
        precision: str = "auto",
    ):
        from tqdm import tqdm

        self.model, self.budget, self.out, self.seed = model, budget, out, int(seed)
        self.precision = check_precision(precision)
        self.size = model.size
        self.sigma_y = 0.05
        out.mkdir(parents=True, exist_ok=True)
        self.figures = Figures(out)
        names = sorted(bundled_images(), key=lambda n: (n != DEFAULT_IMAGE, n))
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
        self.results: dict[tuple, dict] = {}
        self.metrics: dict = {}
        self.bar = tqdm(
            total=self._planned_units(), desc="reproduce", unit="nfe", file=sys.stderr, disable=not progress
        )

    # cost accounting (network-evaluation equivalents) for the progress bar
    def _run_units(self, method: str, **overrides) -> int:
        if method not in DIFFUSION_METHODS:
            return 1
        p = params_for(method, **{"steps": self.budget.steps, **overrides})
        steps = min(int(p["steps"]), int(p["t0"]) + 1) if method == "sdedit" else int(p["steps"])
        return steps * (DPS_COST if method == "dps" else 1)

    def _planned_units(self) -> int:
        b = self.budget
        units = sum(min(b.denoise_steps, t + 1) for t in b.denoise_ts) * b.denoise_images
        units += b.n_samples * b.sample_steps
        for key in self._restoration_plan():
            units += self._run_units(key[0], **dict(key[3]))
        units += sum(nfe * DPS_COST * b.sweep_images for _, nfe in self._fig10_plan())
        units += self._analysis_units()
        return units

    def _analysis_units(self) -> int:
        b = self.budget
        # a probe: one JVP (~3 forwards) + a central difference check; energy: one batched JVP per pixel
        energy = b.probe_pixels * 3 * len(b.energy_ts) * max(1, min(b.claim_images, len(self.image_names)))
        return b.probe_pixels * 4 + energy + self._spectrum_units()

    def _restoration_plan(self) -> list[tuple]:
        """Every (method, task, image, overrides) this run restores, sweeps first, without duplicates."""
        b = self.budget
        plan: list[tuple] = []
        sweep_names = self.image_names[: b.sweep_images]
        for task in TASKS:
            for n in sweep_names:
                plan += [("sdedit", task, n, (("t0", int(t0)),)) for t0 in b.sdedit_t0s]
                plan += [("score_ald", task, n, (("zeta", float(z)),)) for z in b.ald_zetas]
                plan += [("dps", task, n, (("scale", float(s)),)) for s in b.dps_scales]
        for task in TASKS:
            for n in self.table_names:
                plan += [
                    (m, task, n, tuple(sorted(self._table_params(m, task).items()))) for m in self.table_methods(task)
                ]
        seen, unique = set(), []
        for key in plan:
            if key not in seen:
                seen.add(key)
                unique.append(key)
        return unique

    def _table_params(self, method: str, task: str) -> dict:
        return _table_params(method, self.ops[task].name, self.budget.table_steps)

    def table_methods(self, task: str) -> list[str]:
        return list(DIFFUSION_METHODS) + list(baselines.applicable(self.ops[task]))

    def restoration(self, method: str, task: str, name: str, **overrides) -> dict:
        """restore() of one method on one problem (cached: sweeps and the table share their runs)."""
        key = (method, task, name, tuple(sorted(overrides.items())))
        if key not in self.results:
            self.bar.set_postfix_str(f"{method} {task} {name}", refresh=False)
            # one chain per run: the poster's figures show single posterior draws (and the budget counts one)
            extra = {"steps": self.budget.steps, "samples": 1} if method in DIFFUSION_METHODS else {}
            res = restore(
                self.model if method in DIFFUSION_METHODS else None,
                method,
                self.problems[(task, name)],
                precision=self.precision,
                **{**extra, **overrides},
            )
            self.results[key] = res
            self.bar.update(self._run_units(method, **overrides))
        return self.results[key]

    # --- Fig. 1 -------------------------------------------------------------------------------------------------
    def fig1_denoising(self) -> None:
        b, model = self.budget, model_for(self.model, "denoise", self.precision)
        names = self.image_names[: b.denoise_images]
        rows: dict[int, dict] = {}
        strip_noisy, strip_out = [], []
        for t in b.denoise_ts:
            per = {"psnr": [], "ssim": [], "lpips": [], "psnr_noisy": []}
            for k, n in enumerate(names):
                x0 = self.images[n]
                x_t = noise_image(model, x0, t, seed=self.seed + k).cpu()
                self.bar.set_postfix_str(f"denoise t={t} {n}", refresh=False)
                frame = last_frame(denoise(model, x_t, t, steps=b.denoise_steps, seed=self.seed))
                x_hat = frame.x_t.cpu()
                scores = metrics.all_metrics(x_hat, x0)
                rescaled = x_t / model.schedule.abar(t) ** 0.5  # y = x0 + sigma z: the noisy observation
                for key in ("psnr", "ssim", "lpips"):
                    per[key].append(scores[key])
                per["psnr_noisy"].append(metrics.psnr(rescaled, x0))
                self.bar.update(min(b.denoise_steps, t + 1))
                if k == 0:
                    strip_noisy.append((f"t={t}", to_uint8(x_t)))
                    strip_out.append((f"{scores['psnr']:.1f} dB", to_uint8(x_hat)))
            rows[t] = {
                key: dict(zip(("mean", "std"), _mean_std(v))) for key, v in per.items() if any(x is not None for x in v)
            }
            rows[t]["lpips"] = rows[t].get("lpips")  # None when LPIPS is unavailable
            rows[t]["sigma"] = ((1 - model.schedule.abar(t)) / model.schedule.abar(t)) ** 0.5
        ts = list(b.denoise_ts)
        lp_status = metrics.lpips_status(size=self.size)
        panels = [
            {
                "ylabel": "PSNR (dB)",
                "series": [
                    {
                        "name": "denoised",
                        "x": ts,
                        "y": [rows[t]["psnr"]["mean"] for t in ts],
                        "err": [rows[t]["psnr"]["std"] for t in ts],
                    },
                    {"name": "noisy input x_t/sqrt(abar_t)", "x": ts, "y": [rows[t]["psnr_noisy"]["mean"] for t in ts]},
                ],
            },
            {
                "ylabel": "SSIM",
                "series": [
                    {
                        "name": "denoised",
                        "x": ts,
                        "y": [rows[t]["ssim"]["mean"] for t in ts],
                        "err": [rows[t]["ssim"]["std"] for t in ts],
                    }
                ],
            },
        ]
        if lp_status == "available":
            panels.append(
                {
                    "ylabel": "LPIPS (lower is better)",
                    "series": [
                        {
                            "name": "denoised",
                            "x": ts,
                            "y": [rows[t]["lpips"]["mean"] for t in ts],
                            "err": [rows[t]["lpips"]["std"] for t in ts],
                        }
                    ],
                }
            )
        else:
            panels[1]["note"] = lp_status
        chart = self.figures.line_chart(
            "fig1_denoising",
            "Fig. 1 - diffusion denoising quality vs starting t",
            "starting timestep t (log scale)",
            panels,
            log_x=True,
        )
        strip = self.figures.image_table(
            "fig1_denoising_images",
            "Fig. 1 - noisy x_t and the reverse-diffusion result",
            [("noisy x_t", strip_noisy), ("denoised", strip_out)],
        )
        first, last = rows[ts[0]]["psnr"]["mean"], rows[ts[-1]]["psnr"]["mean"]
        sentence = (
            f"Reverse diffusion from a noised face (no data term, {b.denoise_steps} strided steps, "
            f"{len(names)} image(s)): PSNR goes from {first:.1f} dB when starting at t={ts[0]} to {last:.1f} dB "
            f"at t={ts[-1]}, as the prior replaces more of the image; "
            + (
                f"LPIPS goes from {rows[ts[0]]['lpips']['mean']:.3f} to {rows[ts[-1]]['lpips']['mean']:.3f}."
                if lp_status == "available"
                else f"LPIPS is not reported ({lp_status})."
            )
        )
        self.figures.add(
            "fig1_denoising", "Fig. 1 - Diffusion denoising quality vs starting t", sentence, [chart, strip]
        )
        self.metrics["fig1_denoising"] = {
            "steps": b.denoise_steps,
            "images": names,
            "by_t": {str(t): rows[t] for t in ts},
            "lpips_status": lp_status,
        }

    # --- Fig. 2 -------------------------------------------------------------------------------------------------
    def fig2_samples(self) -> None:
        b = self.budget
        self.bar.set_postfix_str("unconditional samples", refresh=False)
        start = time.perf_counter()
        model = model_for(self.model, "sample", self.precision)
        frame = last_frame(sample(model, n=b.n_samples, steps=b.sample_steps, seed=self.seed, every=b.sample_steps))
        seconds = time.perf_counter() - start
        self.bar.update(b.n_samples * b.sample_steps)
        x = frame.x_t.cpu()
        cells = [(f"seed {self.seed} #{i}", to_uint8(x[i : i + 1])) for i in range(x.shape[0])]
        files = self.figures.image_table("fig2_samples", "Fig. 2 - unconditional DDPM samples", [("samples", cells)])
        sentence = (
            f"{b.n_samples} unconditional DDPM samples (ancestral sampling from N(0, I), {b.sample_steps} strided "
            f"steps, seed {self.seed}) show what the prior alone generates."
        )
        self.figures.add("fig2_samples", "Fig. 2 - Unconditional generation", sentence, [files])
        self.metrics["fig2_samples"] = {
            "n": b.n_samples,
            "steps": b.sample_steps,
            "seed": self.seed,
            "seconds": seconds,
            "pixel_mean": float(x.mean()),
            "pixel_std": float(x.std()),
        }

    # --- Figs. 3-5 ----------------------------------------------------------------------------------------------
    def _sweep(self, key: str, method: str, param: str, values, title: str, xlabel: str, fig_no: int) -> None:
        b = self.budget
        names = self.image_names[: b.sweep_images]
        data: dict = {}
        psnr_panel, ssim_panel = {"ylabel": "PSNR (dB)", "series": [], "hlines": []}, {"ylabel": "SSIM", "series": []}
        rows = []
        for task in TASKS:
            per_value = []
            for v in values:
                runs = [self.restoration(method, task, n, **{param: v}) for n in names]
                per_value.append(
                    {
                        param: v,
                        "psnr": _mean_std([r["psnr"] for r in runs])[0],
                        "ssim": _mean_std([r["ssim"] for r in runs])[0],
                        "lpips": _mean_std([r["lpips"] for r in runs])[0] if runs[0]["lpips"] is not None else None,
                        "seconds": _mean_std([r["seconds"] for r in runs])[0],
                        "nfe": runs[0]["nfe"],
                    }
                )
            meas = _mean_std(
                [self.restoration(method, task, n, **{param: values[0]})["psnr_measurement"] for n in names]
            )[0]
            data[task] = {"runs": per_value, "psnr_measurement": meas}
            xs = list(values)
            psnr_panel["series"].append({"name": TASK_TITLES[task], "x": xs, "y": [r["psnr"] for r in per_value]})
            psnr_panel["hlines"].append({"name": f"measurement ({TASK_TITLES[task]})", "y": meas})
            ssim_panel["series"].append({"name": TASK_TITLES[task], "x": xs, "y": [r["ssim"] for r in per_value]})
            n0 = names[0]
            prob = self.problems[(task, n0)]
            cells = [("truth", to_uint8(prob.x0)), (f"y: {metrics.psnr(prob.y, prob.x0):.1f} dB", to_uint8(prob.y))]
            for v in values:
                r = self.restoration(method, task, n0, **{param: v})
                cells.append((f"{param}={v:g}: {r['psnr']:.1f} dB", to_uint8(r["reconstruction"])))
            rows.append((TASK_TITLES[task], cells))
        chart = self.figures.line_chart(key, f"Fig. {fig_no} - {title}", xlabel, [psnr_panel, ssim_panel])
        strip = self.figures.image_table(f"{key}_images", f"Fig. {fig_no} - {title}: reconstructions", rows)
        parts = []
        for task in TASKS:
            runs = data[task]["runs"]
            best = max(runs, key=lambda r: r["psnr"])
            parts.append(
                f"{TASK_TITLES[task]} {runs[0]['psnr']:.1f} dB at {param}={runs[0][param]:g} to "
                f"{runs[-1]['psnr']:.1f} dB at {param}={runs[-1][param]:g} (best {best['psnr']:.1f} dB at "
                f"{param}={best[param]:g}; measurement {data[task]['psnr_measurement']:.1f} dB)"
            )
        sentence = (
            f"{METHOD_TITLES[method]} ({b.steps} strided steps, {len(names)} image(s)), PSNR: " + "; ".join(parts) + "."
        )
        self.figures.add(key, f"Fig. {fig_no} - {title}", sentence, [chart, strip])
        self.metrics[key] = {"param": param, "values": list(values), "steps": b.steps, "images": names, **data}

    def fig3_sdedit(self) -> None:
        self._sweep("fig3_sdedit", "sdedit", "t0", self.budget.sdedit_t0s, "SDEdit vs t0", "starting timestep t0", 3)

    def fig4_score_ald(self) -> None:
        self._sweep("fig4_score_ald", "score_ald", "zeta", self.budget.ald_zetas, "Score-ALD vs zeta", "zeta", 4)

    def fig5_dps(self) -> None:
        self._sweep("fig5_dps", "dps", "scale", self.budget.dps_scales, "DPS vs scale", "scale lambda", 5)

    # --- methods table ------------------------------------------------------------------------------------------
    def methods_table(self) -> None:
        table = []
        for task in TASKS:
            for method in self.table_methods(task):
                runs = [self.restoration(method, task, n, **self._table_params(method, task)) for n in self.table_names]
                row = {"task": task, "method": method, "images": len(runs), "nfe": runs[0]["nfe"]}
                for m in ("psnr", "ssim", "lpips", "seconds"):
                    vals = [r[m] for r in runs]
                    mean, std = _mean_std(vals) if all(v is not None for v in vals) else (None, None)
                    row[m] = {"mean": mean, "std": std}
                row["params"] = {k: v for k, v in runs[0]["params"].items()}
                table.append(row)
        measurement = {
            task: dict(
                zip(
                    ("mean", "std"),
                    _mean_std([metrics.psnr(self.problems[(task, n)].y, self.images[n]) for n in self.table_names]),
                )
            )
            for task in TASKS
        }
        self.metrics["methods_table"] = {"images": self.table_names, "rows": table, "psnr_measurement": measurement}
        best = {task: max((r for r in table if r["task"] == task), key=lambda r: r["psnr"]["mean"]) for task in TASKS}
        self.table_sentence = (
            f"All methods on {len(self.table_names)} of the {len(bundled_images())} bundled test images at {self.size} px (sigma_y={self.sigma_y}, "
            f"diffusion methods {self._table_steps_text()} with their default parameters, one posterior draw "
            "each): best mean PSNR "
            + "; ".join(
                f"{TASK_TITLES[t]} {METHOD_TITLES[best[t]['method']]} {best[t]['psnr']['mean']:.1f} dB "
                f"(measurement {measurement[t]['mean']:.1f} dB)"
                for t in TASKS
            )
            + "."
        )

    def _table_steps_text(self) -> str:
        if self.budget.table_steps is not None:
            return f"{self.budget.table_steps} strided steps"
        return (
            "their default strided steps ("
            + ", ".join(f"{METHOD_TITLES[m]} {params_for(m)['steps']}" for m in DIFFUSION_METHODS if m != "denoise")
            + "; SDEdit from t0)"
        )

    def table_markdown(self) -> str:
        lines = [
            "| task | method | PSNR (dB) mean ± sd | SSIM mean ± sd | LPIPS | NFE | seconds/image |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in self.metrics["methods_table"]["rows"]:
            lp = "n/a" if r["lpips"]["mean"] is None else f"{r['lpips']['mean']:.3f} ± {r['lpips']['std']:.3f}"
            lines.append(
                f"| {TASK_TITLES[r['task']]} | {METHOD_TITLES[r['method']]} | {r['psnr']['mean']:.2f} ± "
                f"{r['psnr']['std']:.2f} | {r['ssim']['mean']:.3f} ± {r['ssim']['std']:.3f} | {lp} | {r['nfe']} | "
                f"{r['seconds']['mean']:.2f} |"
            )
        for task, m in self.metrics["methods_table"]["psnr_measurement"].items():
            lines.append(f"| {TASK_TITLES[task]} | *measurement y* | {m['mean']:.2f} ± {m['std']:.2f} | | | | |")
        return "\n".join(lines)

    # --- Figs. 6-9 (analysis module) ----------------------------------------------------------------------------
    def _probe_pixels(self) -> list[tuple[str, tuple[int, int]]]:
        n = self.budget.probe_pixels
        return [(name, (int(fx * self.size), int(fy * self.size))) for name, (fx, fy) in PROBE_PIXELS[:n]]

    def fig6_sensitivity(self) -> None:
        from diffdemo import analysis, plots

        b, model = self.budget, self.model
        t = min(b.probe_t, model.schedule.T - 1)
        x0 = self.images[self.image_names[0]]
        x_t = analysis.state_at(model, x0, t, self.seed)
        results, rows = [], []
        for name, pixel in self._probe_pixels():
            self.bar.set_postfix_str(f"probe {name} t={t}", refresh=False)
            r = analysis.probe(model, x_t, t, pixel, method="jvp", compare=True, energy_on="denoiser")
            self.bar.update(4)
            results.append((name, r))
            factor = max(1, 128 // self.size)
            big = np.repeat(np.repeat(to_uint8(x_t), factor, axis=0), factor, axis=1)
            cells = [(f"x_t, t={t}", plots.mark_pixel(big, pixel, factor))]
            cells += [
                (f"{analysis.LABELS[k]} column", plots.column_image(r.columns[k], pixel, min_side=128))
                for k in analysis.KINDS
            ]
            rows.append((f"{name} {pixel}", cells))
        png = self.figures.image_table(
            "fig6_sensitivity", f"Fig. 6 - sensitivity maps (Jacobian columns) at t={t}", rows, html=False
        )
        html_name = self.figures.html_page(
            "fig6_sensitivity", "Fig. 6 - sensitivity maps", [plots.probe_figure(r) for _, r in results]
        )
        errs = [r.fd_vs_jvp_rel_err for _, r in results if r.fd_vs_jvp_rel_err is not None]
        r90 = [r.energy.r90 for _, r in results]
        sentence = (
            f"Columns J e_i of the score Jacobian J_s, the reverse step J_f (eq. 34) and the denoiser J_D at t={t} for "
            f"{len(results)} pixels of a noised face, exact by forward-mode AD (central differences differ by "
            f"{max(errs):.1e} relative at most): a one-pixel nudge moves the denoised image within r90 = "
            + ", ".join(f"{v:.1f}" for v in r90)
            + " px (blue/red: negative/positive response, colour scale set away from the probed pixel)."
        )
        self.figures.add(
            "fig6_sensitivity", "Fig. 6 - Sensitivity analysis", sentence, [{"png": png["png"], "html": html_name}]
        )
        self.metrics["fig6_sensitivity"] = {
            "t": t,
            "image": self.image_names[0],
            "probes": [{"name": name, **r.summary()} for name, r in results],
        }

    def fig7_energy(self) -> None:
        from diffdemo import analysis, plots

        b, model = self.budget, self.model
        x0 = self.images[self.image_names[0]]
        ts = [t for t in b.energy_ts if t < model.schedule.T]
        per_pixel = {}
        for name, pixel in self._probe_pixels():
            self.bar.set_postfix_str(f"energy sweep {name}", refresh=False)
            per_pixel[name] = (pixel, analysis.energy_sweep(model, x0, pixel, ts, seed=self.seed, energy_on="denoiser"))
            self.bar.update(3 * len(ts))
        first_name, (first_pixel, curves) = next(iter(per_pixel.items()))
        label = curves[0].label
        panels = [
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
        chart = self.figures.line_chart(
            "fig7_energy",
            f"Fig. 7 - energy vs radius on {label} across t",
            "timestep t",
            panels,
            html=False,
        )
        html_name = self.figures.html_page(
            "fig7_energy",
            "Fig. 7 - energy vs radius across t",
            [plots.energy_figure(curves)] + [plots.energy_summary_figure(cs) for _, cs in per_pixel.values()],
        )
        lo, hi = curves[0], curves[-1]
        sentence = (
            f"Fraction of the squared response of {label} within radius r of the {first_name} pixel {first_pixel}, "
            f"for t = {ts[0]}..{ts[-1]}: r50 goes from {lo.r50:.1f} px at t={lo.t} to {hi.r50:.1f} px at t={hi.t} "
            f"and r90 from {lo.r90:.1f} to {hi.r90:.1f} px (right panels: every probed pixel)."
        )
        self.figures.add(
            "fig7_energy",
            "Fig. 7 - Radius of effect of one pixel",
            sentence,
            [{"png": chart["png"], "html": html_name}],
        )
        others = {}
        for n in self.image_names[1 : max(1, b.claim_images)]:  # more faces for the claims table's spread
            self.bar.set_postfix_str(f"energy sweeps {n}", refresh=False)
            others[n] = {
                name: {
                    "pixel": list(pixel),
                    "curves": [
                        c.summary()
                        for c in analysis.energy_sweep(
                            model, self.images[n], pixel, ts, seed=self.seed, energy_on="denoiser"
                        )
                    ],
                }
                for name, pixel in self._probe_pixels()
            }
            self.bar.update(3 * len(ts) * len(self._probe_pixels()))
        self.metrics["fig7_energy"] = {
            "on": label,
            "image": self.image_names[0],
            "other_images": others,
            "timesteps": ts,
            "pixels": {
                n: {"pixel": list(p), "curves": [{**c.summary(), "fraction": c.fraction.tolist()} for c in cs]}
                for n, (p, cs) in per_pixel.items()
            },
        }

    def fig8_fig9_spectra(self) -> None:
        from diffdemo import analysis, plots

        b, model = self.budget, self.model
        x0 = self.images[self.image_names[0]]
        ts = [t for t in b.spectrum_ts if t < model.schedule.T]
        self.bar.set_postfix_str("spectra (subspace + Arnoldi iteration)", refresh=False)
        results = analysis.spectrum_sweep(
            model, x0, ts, k=b.spectrum_k, iters=b.spectrum_iters, seed=self.seed, steps=b.steps, max_batch=16
        )
        self.bar.update(self._spectrum_units())
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
        chart = self.figures.line_chart(
            "fig8_spectrum", "Fig. 8 - spectra of J_s and J_f vs t", "timestep t", panels, html=False, log_y=(0,)
        )
        html8 = self.figures.html_page(
            "fig8_spectrum", "Fig. 8 - spectra vs t", [plots.spectrum_figure(results), plots.step_limit_figure(results)]
        )
        js = [r.sigma_max_Js for r in results]
        rho = [r.rho_Jf for r in results]
        sentence8 = (
            f"Top singular value of J_s from {js[0]:.3g} at t={ts[0]} to {js[-1]:.3g} at t={ts[-1]} and spectral "
            f"radius of the one-step reverse map rho(J_f) from {rho[0]:.4g} to {rho[-1]:.4g} ({b.spectrum_iters} "
            f"subspace / Arnoldi iterations, JVP + VJP only, no Jacobian materialised)."
        )
        self.figures.add(
            "fig8_spectrum",
            "Fig. 8 - Spectral radius and top singular value vs t",
            sentence8,
            [{"png": chart["png"], "html": html8}],
        )
        rows = []
        for r in results:
            sv = r.singular_Jf
            rows.append(
                (
                    f"t={r.t}",
                    [
                        (f"v{i + 1}, sigma={float(sv.values[i]):.3g}", plots.vector_image(sv.right[i], 64))
                        for i in range(len(sv.values))
                    ],
                )
            )
        png9 = self.figures.image_table(
            "fig9_singular_vectors", "Fig. 9 - dominant right singular vectors of J_f", rows, html=False
        )
        html9 = self.figures.html_page(
            "fig9_singular_vectors",
            "Fig. 9 - dominant singular vectors over t",
            [plots.singular_vectors_figure(results, "Jf"), plots.singular_vectors_figure(results, "Js")],
        )
        res = max(float(r.singular_Jf.residual.max()) for r in results)
        sentence9 = (
            f"The top {b.spectrum_k} right singular vectors of J_f at each t (RGB, zero = grey), from "
            f"{b.spectrum_iters} subspace iterations (largest residual ||J^T u - sigma v|| / sigma = {res:.2g}; "
            "more iterations sharpen them)."
        )
        self.figures.add(
            "fig9_singular_vectors",
            "Fig. 9 - Dominant singular vectors over time",
            sentence9,
            [{"png": png9["png"], "html": html9}],
        )
        self.metrics["fig8_spectrum"] = {"timesteps": ts, "results": [r.summary() for r in results]}
        self.metrics["fig9_singular_vectors"] = {
            "operator": "J_f",
            "timesteps": ts,
            "singular_values": [r.singular_Jf.values.tolist() for r in results],
            "residuals": [r.singular_Jf.residual.tolist() for r in results],
            "structure": [_vector_structure(r.singular_Jf.right, x0) for r in results],
        }

    def _spectrum_units(self) -> int:
        b = self.budget
        n = len([t for t in b.spectrum_ts if t < self.model.schedule.T])
        # per iteration: a JVP (~3 forwards) and a VJP (~2) over 2k rows per t; Arnoldi: one JVP per t
        return n * b.spectrum_iters * (2 * b.spectrum_k * 5 + 3)

    def analysis_figures(self) -> None:
        self.fig6_sensitivity()
        self.fig7_energy()
        self.fig8_fig9_spectra()

    # --- Fig. 10: step allocation (poster section 6, future work) ------------------------------------------------
    def _profile(self) -> dict | None:
        from diffdemo.stability import load_profile

        try:
            return load_profile(self.model.name)
        except ValueError:
            return None

    def _fig10_plan(self) -> list[tuple[str, int]]:
        from diffdemo.schedule import SCHEDULES

        scheds = [s for s in SCHEDULES if s != "spectral" or self._profile() is not None]
        return [(s, int(n)) for s in scheds for n in self.budget.schedule_nfes]

    @staticmethod
    def _schedule_overrides(sched: str, nfe: int) -> dict:
        return {"steps": nfe} if sched == "uniform" else {"steps": nfe, "schedule": sched}

    def fig10_schedules(self) -> None:
        """DPS deblurring quality vs network evaluations per timestep schedule, and where each schedule puts its
        steps over the measured stability profile rho(J_s)(t)."""
        from diffdemo.stability import model_timesteps

        b = self.budget
        if not b.schedule_nfes:
            return
        profile = self._profile()
        names = self.image_names[: b.sweep_images]
        data: dict[str, list] = {}
        for sched, nfe in self._fig10_plan():
            runs = [self.restoration("dps", "deblur", n, **self._schedule_overrides(sched, nfe)) for n in names]
            psnr, sd = _mean_std([r["psnr"] for r in runs])
            data.setdefault(sched, []).append(
                {"nfe": nfe, "psnr": psnr, "psnr_sd": sd, "ssim": _mean_std([r["ssim"] for r in runs])[0]}
            )
        top = max(b.schedule_nfes)
        positions = {s: model_timesteps(self.model, top, None, s) for s in data}
        panels = [
            {
                "ylabel": "PSNR (dB), DPS deblurring",
                "series": [
                    {"name": s, "x": [r["nfe"] for r in rows], "y": [r["psnr"] for r in rows]}
                    for s, rows in data.items()
                ],  # fmt: skip
            }
        ]
        if profile is not None:
            rho_at = lambda ts: np.exp(np.interp(ts, profile["t"], np.log(profile["rho_Js"]))).tolist()  # noqa: E731
            series = [{"name": "rho(J_s)(t), measured", "x": profile["t"], "y": profile["rho_Js"]}]
            series += [{"name": f"{s}: its {top} steps", "x": ts, "y": rho_at(ts)} for s, ts in positions.items()]
            panels.append({"ylabel": "rho(J_s) at each step", "xlabel": "timestep t", "series": series})
        chart = self.figures.line_chart(
            "fig10_schedules", "Fig. 10 - step allocation at equal NFE", "network evaluations (NFE)", panels,
            log_y=(1,) if profile is not None else (),
        )  # fmt: skip
        best = {s: max(rows, key=lambda r: r["nfe"]) for s, rows in data.items()}
        sentence = (
            f"DPS Gaussian deblurring ({len(names)} image(s)) with four timestep lists at equal network evaluations "
            f"{list(b.schedule_nfes)}: at {top} NFE "
            + ", ".join(f"{s} {r['psnr']:.2f} dB" for s, r in best.items())
            + (
                ". Right: each schedule's steps on the model's stability profile (spectral: equal h rho(J_s) per step)."
                if profile is not None
                else "; no stability profile for this model, so no spectral schedule "
                f"(python -m diffdemo profile --model {self.model.name})."
            )
        )
        self.figures.add("fig10_schedules", "Fig. 10 - Step allocation (section 6)", sentence, [chart])
        self.metrics["fig10_schedules"] = {
            "task": "deblur",
            "method": "dps",
            "images": names,
            "nfe": list(b.schedule_nfes),
            "by_schedule": data,
            "timesteps_at_max_nfe": positions,
            "profile": None if profile is None else {k: profile[k] for k in ("t", "rho_Js")},
        }

    # --- the claims table ----------------------------------------------------------------------------------------
    def claims(self) -> None:
        from diffdemo.claims import evaluate_claims

        profile = self._profile()
        if profile is not None:
            self.metrics["stability_profile"] = {
                k: profile[k] for k in ("t", "rho_Js", "rho_Jf", "rho_Jf_per_image") if k in profile
            }
        self.metrics["claims"] = evaluate_claims(self.metrics)

    # --- report -------------------------------------------------------------------------------------------------
    def write_report(self, seconds: float) -> dict:
        out = self.out
        lp_status = metrics.lpips_status(size=self.size)
        self.metrics.update(
            model=self.model.name,
            budget=asdict(self.budget),
            seed=self.seed,
            size=self.size,
            sigma_y=self.sigma_y,
            operators={task: op.describe() for task, op in self.ops.items()},
            lpips_status=lp_status,
            # the network's number format per method; the analysis figures always differentiate in fp32
            precision={
                "requested": self.precision,
                **{m: resolve_precision(self.precision, self.model.device, m) for m in (*DIFFUSION_METHODS, "sample")},
                "analysis": "fp32",
            },
            figures=[{"key": e["key"], "files": e["files"]} for e in self.figures.entries],
            seconds=seconds,
        )
        write_json(out / "metrics.json", self.metrics)
        head = (
            f"Model `{self.model.name}`, budget `{self.budget.name}`, seed {self.seed}, {self.size} px, "
            f"sigma_y = {self.sigma_y} ([-1, 1] units), {seconds / 60:.1f} min. LPIPS: {lp_status}."
        )
        table = None
        if "methods_table" in self.metrics:
            table = ("fig5_dps", "Methods table", self.table_sentence, self.table_markdown())
        write_report_pages(out, "diffdemo - the poster's figures, regenerated", head, self.figures.entries, table)
        if "claims" in self.metrics:
            from diffdemo.claims import CLAIMS_NAME, append_claims_section, write_claims_file

            append_claims_section(out, self.metrics["claims"], lp_status)
            write_claims_file(out / CLAIMS_NAME, self.metrics["claims"], model=self.model.name,
                              budget=self.budget.name, seed=self.seed, lpips_status=lp_status)  # fmt: skip
        return {
            "report": str(out / "report.html"),
            "report_md": str(out / "report.md"),
            "metrics": str(out / "metrics.json"),
            "claims": str(out / "claims.json"),
        }


def reproduce(
    model: DiffusionModel,
    out: str | Path,
    budget: str | Budget = "full",
    seed: int = 0,
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
        return _reproduce(model, Path(out), budget, seed, progress, threads, precision)
    finally:
        torch.set_num_threads(previous_threads)


def _reproduce(
    model: DiffusionModel, out: Path, budget: Budget, seed: int, progress: bool, threads: int, precision: str = "auto"
) -> dict:
    start = time.perf_counter()
    run = Reproduction(model, budget, Path(out), seed=seed, progress=progress, precision=precision)
    try:
        run.fig1_denoising()
        run.fig2_samples()
        run.fig3_sdedit()
        run.fig4_score_ald()
        run.fig5_dps()
        run.methods_table()
        run.analysis_figures()
        run.fig10_schedules()
        run.claims()
    finally:
        run.bar.close()
    seconds = time.perf_counter() - start
    where = run.write_report(seconds)
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
