"""Energy vs radius of one Jacobian column (poster 4.6, Figure 7): how local one pixel's response is."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from diffdemo.analysis.jacobians import checked_pixel


@dataclass(frozen=True)
class EnergyCurve:
    """Fraction of the squared response within radius r of the probed pixel (poster Figure 7)."""

    radii: np.ndarray  # r = 0, 1, ..., ceil(largest distance in the image), pixels
    fraction: np.ndarray  # sum_{|p - p0| <= r} e_p / sum_p e_p,  e_p = sum_c v_c(p)^2
    r50: float  # smallest pixel distance holding >= 50 % of the energy
    r90: float
    n_eff: float  # effective number of pixels (sum e_p)^2 / sum e_p^2
    total: float  # sum_p e_p that the fractions divide by
    operator: str = "J_D"
    exclude_centre: bool = False
    pixel: tuple[int, int] = (0, 0)
    t: int | None = None
    column: torch.Tensor | None = field(default=None, repr=False)  # the (C, H, W) column it was computed on

    @property
    def label(self) -> str:
        """What the curve was computed on, e.g. "J_D" or "J_s (centre excluded)"."""
        return self.operator + (" (centre excluded)" if self.exclude_centre else "")

    def summary(self) -> dict:
        """JSON-ready scalars."""
        scalars = {k: getattr(self, k) for k in ("operator", "exclude_centre", "r50", "r90", "n_eff")}
        return {"t": self.t, "on": self.label, **scalars, "total_energy": self.total}


def energy_vs_radius(
    column_map,
    pixel: Sequence[int],
    exclude_centre: bool = False,
    operator: str = "J_D",
    t: int | None = None,
) -> EnergyCurve:
    """Energy within radius r of the probed pixel, r50 / r90 and n_eff = (sum v^2)^2 / sum v^4 (poster 4.6).

    ``column_map`` is (C, H, W) or (H, W); channels are summed in energy, e_p = sum_c v_c(p)^2, so n_eff counts pixels.
    """
    v = column_map.detach().double().cpu().numpy() if isinstance(column_map, torch.Tensor) else np.asarray(column_map)
    v = v.astype(np.float64)
    if v.ndim == 2:
        v = v[None]
    if v.ndim != 3:
        raise ValueError(f"column map must be (C, H, W) or (H, W), got shape {v.shape}")
    x0, y0 = checked_pixel(v.shape, pixel, None)
    e = (v**2).sum(0)
    if exclude_centre:
        e[y0, x0] = 0.0
    h, w = e.shape
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.hypot(xx - x0, yy - y0).ravel()
    order = np.argsort(dist, kind="stable")
    d_sorted, cum = dist[order], np.cumsum(e.ravel()[order])
    total = float(cum[-1])
    radii = np.arange(int(math.ceil(dist.max())) + 1, dtype=np.float64)
    if total <= 0:
        return EnergyCurve(
            radii, np.zeros_like(radii), math.nan, math.nan, 0.0, 0.0, operator, exclude_centre, (x0, y0), t
        )
    # cumulative energy at integer radii: everything with distance <= r (a tiny slack for float hypot)
    upto = np.searchsorted(d_sorted, radii + 1e-9, side="right")
    fraction = np.where(upto > 0, cum[np.maximum(upto - 1, 0)], 0.0) / total

    def quantile_radius(q: float) -> float:
        return float(d_sorted[min(int(np.searchsorted(cum, q * total * (1 - 1e-12))), len(cum) - 1)])

    n_eff = total**2 / float((e**2).sum())
    return EnergyCurve(
        radii,
        fraction,
        quantile_radius(0.5),
        quantile_radius(0.9),
        n_eff,
        total,
        operator,
        bool(exclude_centre),
        (x0, y0),
        t,
        torch.from_numpy(v).float(),
    )
