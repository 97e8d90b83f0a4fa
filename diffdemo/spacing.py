"""Timestep spacings: which descending timesteps a run of n steps visits (pure functions of the noise schedule).

uniform (the even stride of DDPM / DDIM), quadratic (DDIM's 'quad'), karras (Karras et al. 2022's rho = 7 noise
levels), spectral (equal shares of the measured stiffness, poster section 6; it takes the stability profile as
data, loaded above the samplers by ``diffdemo.restore.timesteps_for``) and logsnr (the same construction with the
formula rho = 1 / (1 - abar_t) in place of the measurement: nearly uniform in log-SNR). The samplers take the list
these return.
"""

from __future__ import annotations

import numpy as np
import torch

from diffdemo.schedule import Schedule, noise_levels
from diffdemo.validation import check_timestep


def strided_timesteps(T: int, steps: int, start: int | None = None) -> list[int]:
    """Descending, evenly spaced timesteps from ``start`` (default T-1) to 0, ``steps`` of them, start included."""
    start, steps = _check_start(T, steps, start)
    if steps == 1:
        return [start]
    # floor(x + 1/2) is monotone, so grid points >= 1 apart stay distinct (round() ties to even do not)
    return torch.floor(torch.linspace(start, 0, steps, dtype=torch.float64) + 0.5).long().tolist()


def timestep_pairs(timesteps: list[int]) -> list[tuple[int, int]]:
    """(t, t_prev) jumps of a descending list, the last one landing at -1 (clean image)."""
    return list(zip(timesteps, timesteps[1:] + [-1]))


# --- timestep lists other than the uniform stride (step allocation, poster section 6) -----------------------------
SPACINGS = ("uniform", "quadratic", "karras", "spectral", "logsnr")
KARRAS_RHO = 7.0


def steps_from(steps: int | None, start: int) -> int:
    """The reverse steps of a run from timestep ``start`` down to 0: ``steps``, but at most start + 1 (one per
    timestep; SDEdit from t0 and denoising from t take min(steps, t0 + 1)); None: all start + 1 of them."""
    return min(int(steps or start + 1), int(start) + 1)


def distinct_descending(targets, start: int) -> list[int]:
    """Round real targets (descending from ``start`` to 0) to exactly len(targets) distinct integers, start and 0 kept.

    Rounding is floor(x + 1/2) (as ``strided_timesteps``); where two targets round to the same timestep the lower
    one is pushed down and the upper one up, one timestep at a time, which is possible whenever n <= start + 1.
    """
    n = len(targets)
    if not 1 <= n <= start + 1:
        raise ValueError(f"steps must be in [1, {start + 1}] when starting at t={start}, got {n}")
    if n == 1:
        return [int(start)]
    t = [int(torch.floor(torch.tensor(float(x), dtype=torch.float64) + 0.5)) for x in targets]
    t[0], t[-1] = int(start), 0
    for i in range(n - 2, -1, -1):  # bottom up: each strictly above the next
        t[i] = max(t[i], t[i + 1] + 1)
    t[0] = int(start)
    for i in range(1, n):  # top down: each strictly below the previous (the bottom-up pass keeps t[i] >= n-1-i)
        t[i] = min(t[i], t[i - 1] - 1)
    return t


def _check_start(T: int, steps: int, start: int | None) -> tuple[int, int]:
    start = T - 1 if start is None else check_timestep(start, T, "start timestep")
    steps = int(steps)
    if not 1 <= steps <= start + 1:
        raise ValueError(f"steps must be in [1, {start + 1}] when starting at t={start}, got {steps}")
    return start, steps


def quadratic_timesteps(T: int, steps: int, start: int | None = None) -> list[int]:
    """DDIM's quadratic spacing (Song et al. 2021, 'quad'): t_i = start (1 - i/(n-1))^2, dense near t = 0."""
    start, steps = _check_start(T, steps, start)
    u = torch.linspace(1.0, 0.0, steps, dtype=torch.float64)
    return distinct_descending((start * u**2).tolist(), start)


def karras_timesteps(schedule: Schedule, steps: int, start: int | None = None, rho: float = KARRAS_RHO) -> list[int]:
    """Karras et al. (2022) eq. 5: sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho, each
    mapped to the discrete timestep whose sigma_t is nearest in log sigma; smax = sigma_start, smin = sigma_0."""
    start, steps = _check_start(schedule.T, steps, start)
    sig = noise_levels(schedule)
    hi, lo = float(sig[start]) ** (1 / rho), float(sig[0]) ** (1 / rho)
    u = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)
    target = (hi + u * (lo - hi)) ** rho
    log_sig = sig[: start + 1].log()
    nearest = (log_sig[None, :] - target.log()[:, None]).abs().argmin(dim=1)
    return distinct_descending(nearest.double().tolist(), start)


def stiffness(schedule: Schedule, profile_t, profile_rho) -> torch.Tensor:
    """Per-timestep stiffness beta_t rho(J_s)(t), rho interpolated linearly in log between the profile's timesteps
    (held constant beyond its ends)."""
    t_grid = np.asarray(profile_t, dtype=np.float64)
    log_rho = np.log(np.asarray(profile_rho, dtype=np.float64))
    order = np.argsort(t_grid)
    rho = np.exp(np.interp(np.arange(schedule.T), t_grid[order], log_rho[order]))
    return schedule.betas * torch.from_numpy(rho)


def spectral_timesteps(schedule: Schedule, steps: int, profile_t, profile_rho, start: int | None = None) -> list[int]:
    """Steps that equalise the explicit-Euler stability number h rho(J_s) across the run (poster section 6).

    A jump t -> t' has h = 1 - abar_t / abar_t' ~ sum of beta over it, and is stable while h |lambda| <= 2 for every
    eigenvalue lambda of J_s (``analysis.euler_step_limit``). Giving every step the same share of the cumulative
    stiffness C(t) = sum_{u <= t} beta_u rho(J_s)(u) spends steps where the measured spectral radius is large.
    With rho = c / beta_t this is the uniform stride; with rho constant, equal steps in sum beta.
    """
    start, steps = _check_start(schedule.T, steps, start)
    if steps == 1:
        return [start]
    c = torch.cumsum(stiffness(schedule, profile_t, profile_rho), 0)  # c[t] = C(t)
    # C at the real-valued timestep s: 0 at s = 0 (the last step's start), linear in between the integers
    grid = torch.cat([torch.zeros(1, dtype=torch.float64), c[1 : start + 1] - c[0]])
    levels = torch.linspace(float(grid[start]), 0.0, steps, dtype=torch.float64)
    targets = np.interp(levels.numpy(), grid.numpy(), np.arange(start + 1, dtype=np.float64))
    return distinct_descending(targets.tolist(), start)


def logsnr_timesteps(schedule: Schedule, steps: int, start: int | None = None) -> list[int]:
    """The spectral list built from the formula rho(J_s)(t) = 1 / (1 - abar_t) instead of a measured profile.

    Wherever the denoiser ignores a direction, J_s has the eigenvalue -1 / (1 - abar_t) (eq. 22 with eps ~ x_t /
    sqrt(1 - abar_t)), so the forward process alone predicts this stiffness. Its cumulative sum is
    sum_u beta_u / (1 - abar_u) ~ -log SNR(t) + const (d log SNR / dt = -beta_t / (1 - abar_t)): equal increments
    of it are equal steps in log-SNR, a standard spacing.
    """
    t = np.arange(schedule.T)
    rho = 1.0 / (1.0 - schedule.alpha_bar.double().numpy())
    return spectral_timesteps(schedule, steps, t, rho, start)


def profile_stiffness(profile: dict) -> list[float]:
    """The profile's stiffness per timestep: the largest |lambda| over eigenvalues of J_s with Re(lambda) < 0 where
    it was measured (``stiff_Js``), else the spectral radius rho(J_s) of older profiles.

    An explicit-Euler step is limited by h |lambda|^2 <= -2 Re(lambda) (``analysis.euler_step_limit``): expanding
    directions (Re >= 0) grow under the exact flow too and set no step limit, so they must not attract steps.
    """
    return list(profile.get("stiff_Js") or profile["rho_Js"])


def make_timesteps(
    schedule: Schedule, steps: int, start: int | None = None, kind: str = "uniform", profile: dict | None = None
) -> list[int]:
    """The descending timestep list of a run: ``kind`` in SPACINGS (spectral needs the model's stability profile,
    a dict with 't' and 'rho_Js')."""
    if kind == "uniform":
        return strided_timesteps(schedule.T, steps, start)
    if kind == "quadratic":
        return quadratic_timesteps(schedule.T, steps, start)
    if kind == "karras":
        return karras_timesteps(schedule, steps, start)
    if kind == "spectral":
        if profile is None:
            raise ValueError("the spectral spacing needs the model's stability profile")
        return spectral_timesteps(schedule, steps, profile["t"], profile_stiffness(profile), start)
    if kind == "logsnr":
        return logsnr_timesteps(schedule, steps, start)
    raise ValueError(f"unknown spacing {kind!r}; choose from {', '.join(SPACINGS)}")
