"""Figures 1 and 2: what the prior alone does. Fig. 1, reverse diffusion from a noised face at several starting
timesteps (experiments.psnr_lpips_vs_t, the app's definition); Fig. 2, unconditional DDPM samples."""

from __future__ import annotations

import time

from diffdemo import metrics
from diffdemo.experiments import psnr_lpips_vs_t, run_sampling
from diffdemo.imaging import to_uint8
from diffdemo.models import DiffusionModel
from diffdemo.reproduce.reproduction import Reproduction, units
from diffdemo.reproduce.specs import FIGURES


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
    row = {
        key: dict(zip(("mean", "std"), metrics.mean_sd(v))) for key, v in per.items() if any(x is not None for x in v)
    }
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
    done = run_sampling(run.model, n=b.n_samples, steps=b.sample_steps, seed=run.seed, spacing="uniform",
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
