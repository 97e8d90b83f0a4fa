"""Measurable stand-ins for Fig. 9's "understandable" singular vectors (spatial smoothness, correlation with the
image), and when a singular vector is determined well enough to be scored at all."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

VECTOR_GAP = 0.1  # a singular vector counts when its residual is under this fraction of the gap to its neighbours


def smoothness(v: np.ndarray) -> float:
    """1 - E/4 with E = sum |grad v|^2 / sum v^2 (forward differences, both axes, every channel): about 0 for white
    noise (E ~ 4) and near 1 for a smooth, face-scale pattern."""
    v = np.asarray(v, dtype=np.float64)
    v = v - v.mean(axis=(-2, -1), keepdims=True)
    dx, dy = np.diff(v, axis=-1), np.diff(v, axis=-2)
    energy = float((v**2).sum())
    if energy == 0:
        return math.nan
    return 1.0 - float((dx**2).sum() + (dy**2).sum()) / energy / 4.0


def image_correlation(v: np.ndarray, image: np.ndarray) -> float:
    """|Pearson correlation| between the singular vector and the (mean-removed) image, pixels and channels pooled."""
    a, b = np.asarray(v, dtype=np.float64).ravel(), np.asarray(image, dtype=np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return abs(float(a @ b) / den) if den > 0 else math.nan


def vectors_converged(values: Sequence[float], residuals: Sequence[float]) -> list[bool]:
    """A singular vector is determined when its residual ||J^T u - sigma v|| = r sigma is under VECTOR_GAP times the
    gap to the nearest other singular value shown (a residual larger than the gap mixes the two vectors)."""
    s, r = np.asarray(values, dtype=np.float64), np.asarray(residuals, dtype=np.float64)
    out = []
    for i in range(s.size):
        gaps = np.abs(np.delete(s, i) - s[i])
        gap = float(gaps.min()) if gaps.size else float(s[i])
        out.append(bool(r[i] * s[i] <= VECTOR_GAP * gap))
    return out
