"""Figure 1: one denoising run (``denoising``) and the PSNR / LPIPS-vs-t curve (``psnr_lpips_vs_t``).

The noisy input is scored as the observation x_t / sqrt(abar_t) = x0 + sigma_t z with
sigma_t = sqrt((1 - abar_t) / abar_t) (eq. 3 divided by sqrt(abar_t)): the image plus noise, at the image's own
scale. Scoring x_t itself would also count the shrinking of the image by sqrt(abar_t) as an error.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from diffdemo import metrics
from diffdemo.defaults import SPACING
from diffdemo.experiments.resolve import network
from diffdemo.experiments.restore_runs import Row, Step
from diffdemo.models import DiffusionModel
from diffdemo.restore import timesteps_for
from diffdemo.samplers import denoise


# --- denoising (Figure 1) ------------------------------------------------------------------------------------
def noisy_metrics(model: DiffusionModel, x_t: torch.Tensor, x0: torch.Tensor, t: int) -> dict:
    """psnr, ssim, lpips of the noisy input at t, scored as the observation x_t / sqrt(abar_t) (module doc)."""
    observation = x_t.detach().cpu() / model.schedule.abar(int(t)) ** 0.5
    return metrics.all_metrics(observation, x0)


def denoising(
    model: DiffusionModel,
    x0: torch.Tensor,
    t: int,
    *,
    steps: int | None,
    seed: int,
    every: int | None = 1,
    spacing: str = SPACING,
    precision: str = "auto",
) -> Iterator[Step | Row]:
    """Figure 1's single run: x_t = schedule.noise_image(x0, t, seed) (eq. 3), then reverse diffusion to 0 (eq. 24).

    Yields first a Row ``noisy`` (reconstruction: x_t itself; metrics: of x_t / sqrt(abar_t), the module's
    definition), then a Step per streamed frame, then the Row ``denoise`` of the result."""
    model = network(model, "denoise", precision)
    x_t = model.schedule.noise_image(x0, int(t), seed, model.device)
    quality = noisy_metrics(model, x_t, x0, t)
    yield Row("noisy", **quality, residual=None, seconds=0.0, nfe=0, precision=None,
              params={"t": int(t)}, spacing=None, reconstruction=x_t.cpu())  # fmt: skip
    tick = time.perf_counter()
    spent, frame = 0.0, None
    ts = timesteps_for(model, steps, int(t), spacing)
    for frame in denoise(model, x_t, timesteps=ts, seed=seed, every=every):
        spent += time.perf_counter() - tick
        yield Step("denoise", frame, metrics.mean_psnr(frame.x0_hat, x0), None)
        tick = time.perf_counter()
    x_hat = frame.x_t.cpu()
    yield Row("denoise", **metrics.all_metrics(x_hat, x0), residual=None, seconds=spent, nfe=frame.nfe,
              precision=model.precision, params={"t": int(t), "steps": frame.total}, spacing=spacing,
              reconstruction=x_hat)  # fmt: skip


def psnr_lpips_vs_t(
    model: DiffusionModel,
    x0: torch.Tensor,
    timesteps: Iterable[int],
    *,
    steps: int,
    seed: int,
    spacing: str = SPACING,
    precision: str = "auto",
) -> Iterator[dict]:
    """Figure 1's curve: for each t, the metrics of the noisy input (as x_t / sqrt(abar_t), the module's one
    definition) and of its reverse-diffusion denoising with ``steps`` strided steps (min(steps, t + 1)).

    Yields per t: t, sigma (= sqrt((1 - abar_t) / abar_t), the observation's noise std), noisy (x_t),
    denoised (the picture: the identity is seen going before the PSNR says so), psnr/ssim/lpips_noisy and
    psnr/ssim/lpips_denoised (lpips None when unavailable), nfe and seconds of the denoising."""
    for t in timesteps:
        run = denoising(model, x0, int(t), steps=steps, seed=seed, every=None, spacing=spacing, precision=precision)
        rows = [r for r in run if isinstance(r, Row)]
        noisy, done = rows
        abar = model.schedule.abar(int(t))
        yield {
            "t": int(t),
            "sigma": ((1 - abar) / abar) ** 0.5,
            "noisy": noisy.reconstruction,
            "denoised": done.reconstruction,
            **{f"{k}_noisy": getattr(noisy, k) for k in ("psnr", "ssim", "lpips")},
            **{f"{k}_denoised": getattr(done, k) for k in ("psnr", "ssim", "lpips")},
            "nfe": done.nfe,
            "seconds": done.seconds,
        }


def log_timesteps(T: int, n: int, low: int = 10) -> list[int]:
    """n distinct timesteps from ``low`` to T-1, spaced evenly in log t (fine where the image is still visible)."""
    values = np.unique(np.round(np.geomspace(max(low, 1), T - 1, n)).astype(int))
    return [int(v) for v in values]
