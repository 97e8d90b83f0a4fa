"""The Jacobian analyses as the app, the CLI and ``reproduce`` run them, always in fp32 (``ANALYSIS_PRECISION``):
a probe and its energy sweep (poster 3.7, Figure 7), spectra over timesteps (3.8, Figures 8, 9) and the stability
profile the spectral spacing is built on (section 6)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from diffdemo import analysis, stability
from diffdemo.experiments.resolve import network
from diffdemo.models import DiffusionModel


# --- the Jacobian analyses (poster 3.7, 3.8; section 6) -------------------------------------------------------------
def probing(
    model: DiffusionModel,
    x0: torch.Tensor,
    t: int,
    pixel: tuple[int, int],
    *,
    seed: int,
    sweep: Iterable[int] = (),
    channel: int | None = None,
    method: str = "jvp",
    sweep_method: str = "central",
    eps: float = 1e-2,
    energy_on: str = "denoiser",
    exclude_centre: bool = False,
) -> Iterator:
    """The columns of J_s, J_f, J_D at ``pixel`` of x_t = state_at(x0, t, seed) (eqs. 31-34) with the
    finite-difference-vs-JVP error (``analysis.probe``), yielded first; then, when ``sweep`` names timesteps, the
    energy-vs-radius curves over them (Figure 7, ``analysis.energy_sweep`` by ``sweep_method``), yielded as a list."""
    net = network(model, "analysis")
    x_t = analysis.state_at(net, x0, t, seed)
    options = dict(channel=channel, energy_on=energy_on, exclude_centre=exclude_centre)
    yield analysis.probe(net, x_t, t, pixel, method=method, eps=eps, compare=True, **options)
    sweep = list(sweep)
    if sweep:
        yield energy_curves(model, x0, pixel, sweep, seed=seed, method=sweep_method, eps=eps, **options)


def energy_curves(
    model: DiffusionModel, x0: torch.Tensor, pixel: tuple[int, int], timesteps: Iterable[int], *, seed: int, **options
) -> list:
    """Energy vs radius of the column at ``pixel`` at each timestep (Figure 7; ``analysis.energy_sweep``'s
    options: channel, energy_on, exclude_centre, method, eps, max_batch), in fp32."""
    return analysis.energy_sweep(network(model, "analysis"), x0, pixel, list(timesteps), seed, **options)


def spectra(
    model: DiffusionModel,
    x0: torch.Tensor,
    timesteps: Iterable[int],
    *,
    k: int,
    iters: int,
    seed: int,
    steps: int = 250,
    arnoldi_steps: int | None = None,
    max_batch: int | None = None,
    each: bool = False,
    progress=None,
    tol: float = 0.0,
) -> Iterator:
    """Singular values / vectors of J_s and J_f, rho(J_f) and the Euler step limit (Figures 8, 9) over ``timesteps``
    by ``analysis.spectrum_sweep``: all timesteps sharing each batched call, or with ``each`` one timestep at a time
    (a result as each is done; ``progress(i, fraction, message)`` per timestep i); ``tol`` > 0 iterates until the
    values shown meet it (``iters`` the cap). Yields the results in order."""
    net = network(model, "analysis")
    ts = [int(t) for t in timesteps]
    options = dict(k=k, iters=iters, seed=seed, steps=steps, arnoldi_steps=arnoldi_steps, max_batch=max_batch, tol=tol)
    if not each:
        yield from analysis.spectrum_sweep(net, x0, ts, **options)
        return
    for i, t in enumerate(ts):
        report = None if progress is None else (lambda f, msg, i=i: progress(i, f, msg))
        yield from analysis.spectrum_sweep(net, x0, [t], progress=report, **options)


def profiling(model: DiffusionModel, images: list[torch.Tensor], *, iters: int, seed: int, progress=None) -> dict:
    """The model's stability profile rho(J_s)(t), rho(J_f)(t) (``stability.compute_profile``), in fp32."""
    return stability.compute_profile(network(model, "analysis"), images, iters=iters, seed=seed, progress=progress)
