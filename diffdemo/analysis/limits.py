"""Stability numbers from a spectrum: the explicit-Euler step-size limit of J_s's eigenvalues and the largest
stride of the reverse process that stays within it."""

from __future__ import annotations

import math

import numpy as np

from diffdemo.models import DiffusionModel


def euler_step_limit(eigenvalues: np.ndarray) -> float:
    """Largest h with |1 + h lambda| <= 1 for every given eigenvalue lambda of J_s (explicit-Euler stability, [11]).

    The reverse step (eq. 17) for a jump with alpha = abar_t / abar_t' is x' = (x + h s(x)) / sqrt(1 - h), h = 1 - alpha:
    an explicit-Euler step of size h on dx/dtau = s(x) followed by the non-stiff rescale 1/sqrt(1 - h) (the VP drift's
    x/2 term). |1 + h lambda|^2 = 1 + 2 h Re(lambda) + h^2 |lambda|^2 <= 1  <=>  h <= -2 Re(lambda) / |lambda|^2.
    Modes with Re(lambda) >= 0 grow under the exact flow as well and set no limit (inf if no mode does).
    """
    lam = np.asarray(eigenvalues, dtype=np.complex128)
    neg = lam[lam.real < 0]
    if neg.size == 0:
        return math.inf
    return float(np.min(-2 * neg.real / np.abs(neg) ** 2))


def max_stable_stride(model: DiffusionModel, t: int, h_max: float) -> int:
    """Largest stride k >= 1 whose jump t -> t-k has h = 1 - abar_t / abar_{t-k} <= h_max (0 if even k = 1 fails)."""
    s = model.schedule
    best = 0
    for k in range(1, t + 2):  # t - k = -1 is the clean end
        if 1 - s.step_alpha(t, t - k) <= h_max:
            best = k
        else:
            break
    return best
