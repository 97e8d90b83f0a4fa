"""Pictures as uint8 arrays (no plotting library): a diverging colour map for signed responses, Jacobian columns
and singular vectors as images, the probed pixel outlined, the chains' spread; and the line colours every chart
shares. Saved through ``diffdemo.imaging.save_png``; the charts are ``diffdemo.charts`` (PNG, matplotlib) and
``diffdemo.plots`` (interactive, plotly)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

# --- numpy colour maps ------------------------------------------------------------------------------
# blue - white - red, the usual diverging map for signed responses (RdBu reversed: negative blue, positive red)
_DIVERGING = np.array(
    [[33, 102, 172], [103, 169, 207], [209, 229, 240], [247, 247, 247], [253, 219, 199], [239, 138, 98], [178, 24, 43]],
    dtype=np.float64,
)
MARK_RGB = (0, 200, 0)
LINE_COLOURS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]
PALETTE = tuple("#{:02x}{:02x}{:02x}".format(*c) for c in LINE_COLOURS)  # the same colours for matplotlib and plotly


def as_numpy(x) -> np.ndarray:
    return x.detach().double().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


def column_map(column, reduce: str = "sum") -> np.ndarray:
    """(C, H, W) Jacobian column or vector -> signed (H, W) map: summed over output channels (or one channel)."""
    v = as_numpy(column)
    if v.ndim == 2:
        return v
    if reduce == "sum":
        return v.sum(0)
    return v[int(reduce)]


OFF_CENTRE_QUANTILE = 0.99


def off_centre_scale(values: np.ndarray, pixel: Sequence[int] | None, quantile: float = OFF_CENTRE_QUANTILE) -> float:
    """A symmetric colour limit set by the pixels away from the probed one: the ``quantile`` of |value| with the
    probed pixel left out. The probed pixel's own response (the identity term of J_f and J_D) and its nearest
    neighbours are far larger than the structure further out (bench/RESULTS_analysis.md), so a limit at the maximum
    leaves the map white; the few pixels above the limit saturate instead."""
    a = np.abs(np.asarray(values, dtype=np.float64))
    if pixel is not None:
        mask = np.ones(a.shape, bool)
        mask[int(pixel[1]), int(pixel[0])] = False
        a = a[mask]
    scale = float(np.quantile(a, quantile, method="lower")) if a.size else 0.0
    return scale if scale > 0 else float(np.abs(values).max()) or 1.0


def diverging_rgb(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """Signed (H, W) values -> uint8 (H, W, 3), white at zero, saturating at +-vmax (default max |value|)."""
    v = np.asarray(values, dtype=np.float64)
    vmax = float(np.abs(v).max()) if vmax is None else float(vmax)
    u = np.clip(v / vmax, -1, 1) if vmax > 0 else np.zeros_like(v)
    pos = (u + 1) / 2 * (len(_DIVERGING) - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, len(_DIVERGING) - 2)
    frac = (pos - lo)[..., None]
    rgb = _DIVERGING[lo] * (1 - frac) + _DIVERGING[lo + 1] * frac
    return np.round(rgb).astype(np.uint8)


def _upscale(img: np.ndarray, min_side: int) -> tuple[np.ndarray, int]:
    f = max(1, int(np.ceil(min_side / max(img.shape[:2]))))
    return np.repeat(np.repeat(img, f, axis=0), f, axis=1), f


def mark_pixel(img: np.ndarray, pixel: Sequence[int], factor: int = 1, colour=MARK_RGB) -> np.ndarray:
    """Draw a square outline around pixel (x, y) of an image upscaled by ``factor`` (nearest neighbour)."""
    out = img.copy()
    h, w = out.shape[:2]
    x, y = int(pixel[0]) * factor, int(pixel[1]) * factor
    pad = max(1, factor // 2)
    x0, x1 = max(0, x - pad), min(w - 1, x + factor - 1 + pad)
    y0, y1 = max(0, y - pad), min(h - 1, y + factor - 1 + pad)
    thick = max(1, factor // 4)
    out[y0 : y0 + thick, x0 : x1 + 1] = colour
    out[y1 - thick + 1 : y1 + 1, x0 : x1 + 1] = colour
    out[y0 : y1 + 1, x0 : x0 + thick] = colour
    out[y0 : y1 + 1, x1 - thick + 1 : x1 + 1] = colour
    return out


def column_image(
    column, pixel: Sequence[int] | None = None, vmax: float | None = None, min_side: int = 256
) -> np.ndarray:
    """A Jacobian column as a uint8 picture: diverging map centred on zero, upscaled, the probed pixel outlined."""
    m = column_map(column)
    scale = off_centre_scale(m, pixel) if vmax is None else vmax
    img, f = _upscale(diverging_rgb(m, scale), min_side)
    return mark_pixel(img, pixel, f) if pixel is not None else img


def vector_image(vector, min_side: int = 128) -> np.ndarray:
    """A (C, H, W) direction (e.g. a singular vector) as RGB: v / max|v| mapped from [-1, 1] to [0, 255]."""
    v = as_numpy(vector)
    if v.ndim == 2:
        v = v[None]
    v = v / (np.abs(v).max() or 1.0)
    rgb = np.round((np.clip(v, -1, 1) + 1) * 127.5).astype(np.uint8).transpose(1, 2, 0)
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    return _upscale(rgb, min_side)[0]


def spread_picture(x_std: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The chains' per-pixel spread (std across chains, mean over colour) as a grey picture in [-1, 1], white at
    its largest value; and that value (the picture's scale)."""
    spread = x_std.mean(1, keepdim=True).expand_as(x_std)
    top = float(spread.max())
    return spread / max(top, 1e-8) * 2 - 1, top
