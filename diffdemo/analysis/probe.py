"""A probe at one pixel (poster 3.7, 4.6; eqs. 31-34): the three Jacobian columns, their energy curve and the
finite-difference error against the exact JVP, and the energy curve swept over many timesteps in batched calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from diffdemo.analysis.energy import EnergyCurve, energy_vs_radius
from diffdemo.analysis.jacobians import (
    LABELS,
    affine_coefficients,
    checked_pixel,
    checked_timestep,
    jacobian_columns,
    operator_kind,
    pixel_basis,
    state_at,
)
from diffdemo.analysis.products import Progress, score_jvp
from diffdemo.checkpoint import checkpoint
from diffdemo.models import DiffusionModel


@dataclass(frozen=True)
class ProbeResult:
    """A click on pixel (x, y) at timestep t: the three Jacobian columns, the energy curve, the FD error."""

    t: int
    pixel: tuple[int, int]
    channel: int | None
    method: str
    eps: float
    columns: dict  # {"score", "reverse", "denoiser"} -> (C, H, W) float32 on the CPU, computed by ``method``
    energy: EnergyCurve
    fd_vs_jvp_rel_err: float | None  # ||J_s e_i (finite difference) - J_s e_i (jvp)|| / ||J_s e_i (jvp)||
    x_t: torch.Tensor = field(repr=False)
    t_prev: int = -1

    def summary(self) -> dict:
        """JSON-ready scalars."""
        return dict(
            t=self.t,
            t_prev=self.t_prev,
            pixel=list(self.pixel),
            channel=self.channel,
            method=self.method,
            eps=self.eps,
            fd_vs_jvp_rel_err=self.fd_vs_jvp_rel_err,
            **{k: v for k, v in self.energy.summary().items() if k != "t"},
        )


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    """||approx - exact||_2 / ||exact||_2."""
    num = (approx.double() - exact.double()).norm()
    den = exact.double().norm()
    return float(num / den) if den > 0 else float(num)


def probe(
    model: DiffusionModel,
    x_t: torch.Tensor,
    t: int,
    pixel: Sequence[int],
    channel: int | None = None,
    method: str = "jvp",
    eps: float = 1e-2,
    energy_on: str = "denoiser",
    exclude_centre: bool = False,
    compare: bool = True,
    t_prev: int | None = None,
) -> ProbeResult:
    """Columns of J_s, J_f, J_D at a pixel (eqs. 31-34), their energy curve, and FD-vs-JVP error when ``compare``.

    With ``compare`` a second column is computed by the other kind of method (central differences for ``jvp``,
    the exact JVP for a difference method) so the finite-difference error is always on show.
    """
    t = checked_timestep(model, t)
    t_prev = t - 1 if t_prev is None else int(t_prev)
    columns = jacobian_columns(model, x_t, t, pixel, channel, method, eps, t_prev)
    err = None
    if compare:
        other = jacobian_columns(model, x_t, t, pixel, channel, "central" if method == "jvp" else "jvp", eps, t_prev)
        fd, exact = (other, columns) if method == "jvp" else (columns, other)
        err = relative_error(fd["score"], exact["score"])  # on J_s: J_f / J_D would hide it behind the identity
    kind = operator_kind(energy_on)
    curve = energy_vs_radius(columns[kind], pixel, exclude_centre, LABELS[kind], t)
    x, y = checked_pixel(x_t.shape, pixel, channel)
    return ProbeResult(t, (x, y), channel, method, float(eps), columns, curve, err, x_t.detach().cpu(), t_prev)


def energy_sweep(
    model: DiffusionModel,
    x0: torch.Tensor,
    pixel: Sequence[int],
    timesteps: Sequence[int],
    seed: int = 0,
    channel: int | None = None,
    energy_on: str = "denoiser",
    exclude_centre: bool = False,
    method: str = "central",
    eps: float = 1e-2,
    max_batch: int | None = None,
    progress: Progress = None,
) -> list[EnergyCurve]:
    """Energy vs radius at many timesteps (poster Figure 7), timesteps batched into as few network calls as allowed.

    Each state is ``state_at(model, x0, t, seed)``; ``max_batch`` bounds the states per call (default: all at once).
    Central differences by default: one batch-2n forward, cheaper than the batched forward-mode JVP (timings:
    bench/RESULTS_analysis.md), at a small relative error (``probe`` reports it for each click).
    J_f uses the single step t -> t-1. Each curve keeps its column in ``.column``.
    """
    ts = [checked_timestep(model, t) for t in timesteps]
    if not ts:
        raise ValueError("energy_sweep needs at least one timestep")
    kind = operator_kind(energy_on)
    shape = x0.shape
    v = pixel_basis(shape, pixel, channel).to(model.device)
    chunk = len(ts) if max_batch is None else max(1, int(max_batch) // (1 if method == "jvp" else 2))
    curves: list[EnergyCurve] = []
    for start in range(0, len(ts), chunk):
        checkpoint()
        part = ts[start : start + chunk]
        if progress:
            progress(start / len(ts), f"timesteps {part[0]}..{part[-1]}")
        X = torch.cat([state_at(model, x0[:1], t, seed) for t in part])
        js_v = score_jvp(model, X, torch.tensor(part), v, method, eps)
        for i, t in enumerate(part):
            a, b = affine_coefficients(model, kind, t, None)
            col = (a * v[0] + b * js_v[i]).cpu()
            curves.append(energy_vs_radius(col, pixel, exclude_centre, LABELS[kind], t))
    if progress:
        progress(1.0, "done")
    return curves
