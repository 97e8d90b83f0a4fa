"""Running experiments: several frame generators side by side, the PSNR-vs-t sweep of Figure 1 and its timesteps.

(Held here until ``diffdemo/experiments.py`` takes them over; they came out of the former ``ui_helpers``.)
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from diffdemo import metrics
from diffdemo.models import DiffusionModel
from diffdemo.samplers import Frame, denoise, last_frame, noise_image


def interleave(runs: dict[str, Iterator[Frame]]) -> Iterator[tuple[str, Frame]]:
    """Advance several frame generators together, always the one furthest behind (by step / total).

    Yields (name, frame); closing this generator closes every run (so a Stop stops them all)."""
    alive = dict(runs)
    progress = dict.fromkeys(alive, 0.0)
    try:
        while alive:
            name = min(alive, key=lambda k: progress[k])
            try:
                frame = next(alive[name])
            except StopIteration:
                del alive[name]
                continue
            progress[name] = frame.step / max(frame.total, 1)
            yield name, frame
    finally:
        for gen in runs.values():
            close = getattr(gen, "close", None)
            if close:
                close()


def psnr_vs_t(
    model: DiffusionModel, x0: torch.Tensor, timesteps: list[int], steps: int = 50, seed: int = 0
) -> Iterator[dict]:
    """Figure 1: for each t, PSNR and LPIPS of the noised image x_t (eq. 3) and of its reverse-diffusion denoising."""
    for t in timesteps:
        x_t = noise_image(model, x0, int(t), seed)
        result = last_frame(denoise(model, x_t, int(t), steps=steps, seed=seed, every=10**9)).x_t.cpu()
        yield {
            "t": int(t),
            "psnr_noisy": metrics.psnr(x_t.cpu(), x0),
            "psnr_denoised": metrics.psnr(result, x0),
            "denoised": result,  # the picture itself: the identity is seen going before the PSNR says so
            "lpips_noisy": metrics.lpips(x_t.cpu(), x0),  # None when LPIPS is unavailable
            "lpips_denoised": metrics.lpips(result, x0),
        }


def log_timesteps(T: int, n: int, low: int = 10) -> list[int]:
    """n distinct timesteps from ``low`` to T-1, spaced evenly in log t (fine where the image is still visible)."""
    values = np.unique(np.round(np.geomspace(max(low, 1), T - 1, n)).astype(int))
    return [int(v) for v in values]
