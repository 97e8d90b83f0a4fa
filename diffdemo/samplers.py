"""Reverse-diffusion samplers as generators of frames (poster tasks 2-6).

Every sampler walks a descending list of timesteps with the DDPM posterior step (eq. 12, equal to eq. 17 / 23;
strided jumps use alpha -> abar_t / abar_t') and yields a ``Frame`` every ``every`` steps and at the end.
Closing the generator stops the work. All randomness comes from one ``torch.Generator`` seeded by ``seed``
(drawn on the CPU, so a seed gives the same frames on any device). Parameters after the inputs are keyword-only
and the tuned ones (steps, t0, zeta, scale, sigma_y) have no default here: ``diffdemo.defaults`` holds them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch

from diffdemo.checkpoint import checkpoint
from diffdemo.models import DiffusionModel
from diffdemo.operators import Operator
from diffdemo.spacing import timestep_pairs
from diffdemo.validation import check_timestep


@dataclass(frozen=True)
class Frame:
    """The state after one reverse step t -> t_prev (as in ``Schedule``): x_t is at timestep ``t_prev`` (-1 = clean),
    x0_hat was predicted at ``t``."""

    step: int
    total: int
    t: int
    t_prev: int
    x_t: torch.Tensor
    x0_hat: torch.Tensor
    residual: float | None = None  # mean over the batch of ||y - A x0_hat||_2
    nfe: int = 0
    x_std: torch.Tensor | None = None  # per-pixel spread of x_t across averaged chains (``posterior_mean``)


def last_frame(frames: Iterator[Frame]) -> Frame:
    """Run a sampler to the end and return its final frame."""
    frame = None
    for frame in frames:
        pass
    if frame is None:
        raise RuntimeError("the sampler yielded no frame")
    return frame


def posterior_mean(frames: Iterator[Frame], samples: int) -> Iterator[Frame]:
    """Average ``samples`` chains run side by side in one batch (rows i*k .. i*k + k - 1 restore image i).

    Each chain of a posterior sampler ends on one draw from p(x0 | y); their mean is the Monte-Carlo estimate of
    the posterior mean E[x0 | y], the estimate with the least expected squared error (so the best expected PSNR),
    while one draw carries the posterior's full spread. ``x_std`` is the per-pixel std across the chains.
    """
    k = int(samples)
    for f in frames:
        if k == 1:
            yield f
            continue
        chains = f.x_t.unflatten(0, (-1, k))
        yield replace(
            f, x_t=chains.mean(1), x0_hat=f.x0_hat.unflatten(0, (-1, k)).mean(1), x_std=chains.std(1, correction=0)
        )


def _randn(shape, generator: torch.Generator, device) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device)


def _residual(op: Operator | None, y: torch.Tensor | None, x0: torch.Tensor) -> float | None:
    if op is None or y is None:
        return None
    return float((y - op.A(x0)).flatten(1).norm(dim=1).mean())


ALD_STABLE_FRACTION = 0.75  # zeta_t stays below this fraction of gradient descent's stability limit


def ald_step_size(
    model: DiffusionModel, t: int, t_prev: int, zeta: float, sigma_y: float, norm_sq: float = 1.0
) -> float:
    """Annealed zeta_t of eq. 27: zeta (1 - alpha_t) / (sigma_y^2 + 1 - abar_t), the Langevin step scaled
    by the likelihood's noise level at t (Jalal et al. 2021), so the pull is gentle at high noise.

    Capped at 0.75 / ||A||^2 (``norm_sq``): the step x += zeta_t 2 A^T (y - A x) is gradient descent on
    ||y - A x||^2, which diverges once zeta_t >= 1 / ||A||^2. Few strided steps make the last steps' zeta_t
    large enough to blow a run up; at the default step count the cap barely moves the result
    (bench/RESULTS_faces.md)."""
    s = model.schedule
    annealed = zeta * (1 - s.step_alpha(t, t_prev)) / (sigma_y**2 + 1 - s.abar(t))
    return min(annealed, ALD_STABLE_FRACTION / norm_sq)


def reverse_process(
    model: DiffusionModel,
    x: torch.Tensor,
    timesteps: list[int],
    *,
    seed: int = 0,
    generator: torch.Generator | None = None,
    stochastic: bool = True,
    clip_x0: bool = True,
    guidance: str | None = None,
    operator: Operator | None = None,
    y: torch.Tensor | None = None,
    scale: float = 0.0,
    sigma_y: float = 0.0,
    normalize: bool = True,
    every: int | None = 1,
) -> Iterator[Frame]:
    """The shared loop: x_{t'} = mu(x_t, x0_hat) + sigma z (eq. 12/25) plus an optional likelihood term.

    Yields a frame every ``every`` steps and after the last step; ``every=None``: only after the last step.

    guidance=None: plain reverse diffusion (eq. 24-26);
    guidance="score_ald": + zeta_t g, g = -grad ||y - A x_t||^2 = 2 A^T (y - A x_t) at x_t (eq. 27, 28);
    guidance="dps": + lambda g / ||g||, g = -grad_{x_t} ||y - A x0_hat(x_t)||_2 through the network (eq. 29);
    with normalize=False, + lambda g as in Chung et al.'s reference code (g's size then varies with t).
    """
    if guidance not in (None, "score_ald", "dps"):
        raise ValueError(f"unknown guidance {guidance!r}")
    if guidance and (operator is None or y is None):
        raise ValueError(f"{guidance} needs an operator and a measurement y")
    gen = generator if generator is not None else torch.Generator().manual_seed(int(seed))
    sched = model.schedule
    device = model.device
    x = x.to(device, torch.float32)
    y = y.to(device, torch.float32) if y is not None else None
    pairs = timestep_pairs(timesteps)
    every = len(pairs) if every is None else max(1, int(every))
    norm_sq = operator.norm_sq(y) if guidance == "score_ald" else 1.0
    for i, (t, t_prev) in enumerate(pairs):
        checkpoint()  # a capped or cancelled run stops between reverse steps (and in each network evaluation)
        x0, grad = _x0_and_dps_gradient(model, x, t, operator, y, guidance == "dps", clip_x0)
        with torch.no_grad():
            x_next = sched.reverse_mean_posterior(x, x0, t, t_prev)
            sigma = sched.posterior_std(t, t_prev) if stochastic else 0.0
            if sigma > 0:
                x_next = x_next + sigma * _randn(x.shape, gen, device)
            if guidance:
                data = (model, operator, y, scale, sigma_y, norm_sq, normalize)
                x_next = x_next + _likelihood_step(guidance, data, x, grad, t, t_prev)
        x = x_next
        if (i + 1) % every == 0 or i + 1 == len(pairs):
            yield Frame(i + 1, len(pairs), t, t_prev, x, x0, _residual(operator, y, x0), i + 1)


def _x0_and_dps_gradient(model, x, t: int, operator, y, dps: bool, clip_x0: bool):
    """x0_hat(x_t) (eq. 11) and, for DPS, g = grad_{x_t} ||y - A x0_hat(x_t)||_2 through the network (eq. 29; its
    x0_hat always clamped, as in the reference code); (x0_hat, None) otherwise."""
    if dps:
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            x0 = model.x0_hat(x_in, t).clamp(-1, 1)
            norm = (y - operator.A(x0)).flatten(1).norm(dim=1)
            (grad,) = torch.autograd.grad(norm.sum(), x_in)
        return x0.detach(), grad
    with torch.no_grad():
        x0 = model.x0_hat(x, t)
    return (x0.clamp(-1, 1) if clip_x0 else x0), None


def _likelihood_step(guidance: str, data: tuple, x, grad, t: int, t_prev: int) -> torch.Tensor:
    """The data term added to the reverse step: DPS's -lambda g/||g|| (eq. 29; -lambda g unnormalised) or
    Score-ALD's zeta_t 2 A^T (y - A x_t) (eq. 27, 28). ``data``: (model, operator, y, scale, sigma_y, ||A||^2,
    normalize)."""
    model, operator, y, scale, sigma_y, norm_sq, normalize = data
    if guidance == "dps":
        if normalize:
            grad = grad / grad.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)
        return -scale * grad
    zeta_t = ald_step_size(model, t, t_prev, scale, sigma_y, norm_sq)
    return zeta_t * 2 * operator.A_adjoint(y - operator.A(x))


# --- the five tasks -------------------------------------------------------------------------------
# The tasks take keyword-only parameters with no tuned values of their own: the tuned ones live in
# diffdemo/defaults.py and every caller passes them. ``timesteps``: the descending list the run visits (its first
# entry the start), resolved from a spacing name above this layer (``diffdemo.restore.timesteps_for``), as
# k-diffusion's samplers take ``sigmas``. ``every``: frames streamed (None: only the last).
def check_timestep_list(model: DiffusionModel, timesteps) -> list[int]:
    """A run's timesteps: non-empty, strictly descending integers in [0, T - 1], the first one a valid start."""
    ts = [int(t) for t in timesteps]
    if not ts:
        raise ValueError("a run needs at least one timestep")
    T = model.schedule.T
    if not all(a > b for a, b in zip(ts, ts[1:])) or ts[-1] < 0 or ts[0] > T - 1:
        raise ValueError(f"timesteps must be strictly descending in [0, {T - 1}], got {ts[:4]}...")
    return ts


def denoise(
    model, x_t: torch.Tensor, *, timesteps: list[int], seed: int, stochastic: bool = False, every: int | None = 1
) -> Iterator[Frame]:
    """Task 2: reverse diffusion from a noised image at timesteps[0], no data term (eq. 24)."""
    ts = check_timestep_list(model, timesteps)
    check_timestep(ts[0], model.schedule.T, "t")
    return reverse_process(model, x_t, ts, seed=seed, stochastic=stochastic, every=every)


def sample(model, *, n: int, timesteps: list[int], seed: int, every: int | None = 1) -> Iterator[Frame]:
    """Task 3: ancestral DDPM sampling from x_T ~ N(0, I) (eq. 25)."""
    ts = check_timestep_list(model, timesteps)
    gen = torch.Generator().manual_seed(int(seed))
    x = _randn((int(n), *model.sample_shape), gen, model.device)
    return reverse_process(model, x, ts, generator=gen, every=every)


def sdedit(
    model, operator: Operator, y: torch.Tensor, *, timesteps: list[int], seed: int, every: int | None = 1
) -> Iterator[Frame]:
    """Task 4: noise a measurement-consistent start to t0 = timesteps[0], then reverse diffusion to 0 (eq. 26)."""
    ts = check_timestep_list(model, timesteps)
    t0 = check_timestep(ts[0], model.schedule.T, "t0")
    gen = torch.Generator().manual_seed(int(seed))
    start = operator.init_estimate(y.float())
    x = model.schedule.add_noise(start, t0, torch.randn(start.shape, generator=gen))
    return reverse_process(model, x, ts, generator=gen, operator=operator, y=y, every=every)


def score_ald(
    model,
    operator: Operator,
    y: torch.Tensor,
    *,
    zeta: float,
    sigma_y: float,
    timesteps: list[int],
    seed: int,
    every: int | None = 1,
) -> Iterator[Frame]:
    """Task 5: reverse diffusion + annealed likelihood gradient at x_t, no backprop through the network (eq. 27)."""
    return _guided_from_noise(
        model, y, timesteps, seed, every, guidance="score_ald", operator=operator, scale=zeta, sigma_y=sigma_y
    )


def dps(
    model,
    operator: Operator,
    y: torch.Tensor,
    *,
    scale: float,
    timesteps: list[int],
    seed: int,
    normalize: bool = True,
    every: int | None = 1,
) -> Iterator[Frame]:
    """Task 6: diffusion posterior sampling (Chung et al. 2023): the normalised gradient step of eq. 29, or
    (normalize=False) the reference code's raw step scale * grad ||y - A x0_hat||."""
    return _guided_from_noise(
        model, y, timesteps, seed, every, guidance="dps", operator=operator, scale=scale, normalize=normalize
    )


def _guided_from_noise(
    model, y: torch.Tensor, timesteps: list[int], seed: int, every: int | None, **guidance
) -> Iterator[Frame]:
    """Start from seeded N(0, I) noise shaped like y and run the guided reverse loop over ``timesteps``."""
    ts = check_timestep_list(model, timesteps)
    gen = torch.Generator().manual_seed(int(seed))
    x = _randn(y.shape, gen, model.device)
    return reverse_process(model, x, ts, generator=gen, y=y, every=every, **guidance)
