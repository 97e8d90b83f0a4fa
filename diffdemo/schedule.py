"""The DDPM / variance-preserving schedule and the poster's identities (section 3.1).

Time is an integer index t = 0 .. T-1 as in diffusers; ``alpha_bar[t]`` is the poster's \\bar\\alpha_t.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from diffdemo.validation import check_timestep


@dataclass(frozen=True)
class Schedule:
    """beta_t, alpha_t = 1 - beta_t and alpha_bar_t = prod_{i<=t} alpha_i (poster eq. 2), float64 on CPU."""

    betas: torch.Tensor

    @classmethod
    def linear(cls, beta_start: float = 1e-4, beta_end: float = 0.02, T: int = 1000) -> Schedule:
        """Ho et al. (2020) linear betas; the default of every model here."""
        return cls(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))

    @classmethod
    def from_config(cls, config: dict) -> Schedule:
        """Build from a diffusers ``DDPMScheduler`` config (linear, scaled_linear or cosine betas)."""
        T = int(config.get("num_train_timesteps", 1000))
        kind = config.get("beta_schedule", "linear")
        start, end = float(config.get("beta_start", 1e-4)), float(config.get("beta_end", 0.02))
        if config.get("trained_betas") is not None:
            return cls(torch.tensor(config["trained_betas"], dtype=torch.float64))
        if kind == "linear":
            return cls.linear(start, end, T)
        if kind == "scaled_linear":
            return cls(torch.linspace(start**0.5, end**0.5, T, dtype=torch.float64) ** 2)
        if kind == "squaredcos_cap_v2":
            steps = torch.arange(T + 1, dtype=torch.float64) / T
            f = torch.cos((steps + 0.008) / 1.008 * torch.pi / 2) ** 2
            return cls(torch.clamp(1 - f[1:] / f[:-1], max=0.999))
        raise ValueError(f"unsupported beta_schedule {kind!r}")

    @property
    def T(self) -> int:
        return self.betas.shape[0]

    @property
    def alphas(self) -> torch.Tensor:
        return 1.0 - self.betas

    @cached_property
    def alpha_bar(self) -> torch.Tensor:
        """cumprod of alphas, computed once per schedule (the samplers read it several times per step): read-only."""
        with torch.inference_mode(False), torch.no_grad():
            return torch.cumprod(self.alphas, dim=0)

    @cached_property
    def _alpha_bar_floats(self) -> list[float]:
        return self.alpha_bar.tolist()  # exact float64 -> Python float, as float(alpha_bar[t])

    def alpha_bar_on(self, device, dtype) -> torch.Tensor:
        """alpha_bar cast to (device, dtype), cached per pair, so a model call does no host-to-device copy."""
        cache = self.__dict__.setdefault("_alpha_bar_cast", {})  # frozen dataclass: bypass __setattr__
        key = (torch.device(device), dtype)
        if key not in cache:
            with torch.inference_mode(False), torch.no_grad():
                cache[key] = self.alpha_bar.to(device=key[0], dtype=dtype).clone()
        return cache[key]

    def abar(self, t: int) -> float:
        """\\bar\\alpha_t for t >= 0, and 1 for t = -1 (the clean end of a strided run)."""
        return 1.0 if t < 0 else self._alpha_bar_floats[t]

    # --- forward process -------------------------------------------------------------------
    def add_noise(self, x0: torch.Tensor, t: int, noise: torch.Tensor) -> torch.Tensor:
        """Closed-form marginal x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) z (eq. 3)."""
        a = self.abar(t)
        return a**0.5 * x0 + (1 - a) ** 0.5 * noise

    def noise_image(self, x0: torch.Tensor, t: int, seed: int = 0, device=None) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) z with z drawn on the CPU from ``seed`` (eq. 3; the same z on
        any device), moved to ``device`` (None: where x0 is)."""
        g = torch.Generator().manual_seed(int(seed))
        x_t = self.add_noise(x0.float(), int(t), torch.randn(x0.shape, generator=g))
        return x_t if device is None else x_t.to(device)

    def forward_step(self, x_prev: torch.Tensor, t: int, noise: torch.Tensor) -> torch.Tensor:
        """One forward step x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) z (eq. 1)."""
        b = float(self.betas[t])
        return (1 - b) ** 0.5 * x_prev + b**0.5 * noise

    # --- parameterisations: the one place eq. 19 and eq. 22 are written (models call these) -----------------
    def abar_like(self, t, x: torch.Tensor) -> torch.Tensor:
        """alpha_bar_t (float32 table cast to x's device and dtype) broadcast against x; ``t`` an int or a 1-D
        tensor with one timestep per batch element."""
        abar = self.alpha_bar_on(x.device, x.dtype)
        if isinstance(t, torch.Tensor) and t.ndim > 0:
            return abar[t.to(x.device).long()].view(-1, *([1] * (x.ndim - 1)))
        return abar[int(t)]

    def score_from_eps(self, eps: torch.Tensor, t) -> torch.Tensor:
        """s = -eps / sqrt(1 - abar_t) (eq. 22)."""
        return -eps / (1 - self.abar_like(t, eps)).sqrt()

    def eps_from_score(self, score: torch.Tensor, t) -> torch.Tensor:
        """Inverse of eq. 22: eps = -sqrt(1 - abar_t) s."""
        return -score * (1 - self.abar_like(t, score)).sqrt()

    def x0_from_eps(self, x_t: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        """x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) (eq. 19)."""
        a = self.abar_like(t, x_t)
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()

    def x0_from_score(self, x_t: torch.Tensor, score: torch.Tensor, t) -> torch.Tensor:
        """Tweedie: x0_hat = (x_t + (1 - abar_t) s) / sqrt(abar_t) (eq. 11)."""
        a = self.abar_like(t, x_t)
        return (x_t + (1 - a) * score) / a.sqrt()

    def eps_from_x0(self, x_t: torch.Tensor, x0: torch.Tensor, t) -> torch.Tensor:
        """Inverse of eq. 19: eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)."""
        a = self.abar_like(t, x_t)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    # --- reverse step ----------------------------------------------------------------------
    def step_alpha(self, t: int, t_prev: int) -> float:
        """Effective alpha_t of the jump t -> t_prev: abar_t / abar_{t_prev} (= alpha_t when t_prev = t-1)."""
        return self.abar(t) / self.abar(t_prev)

    def reverse_mean_posterior(self, x_t: torch.Tensor, x0_hat: torch.Tensor, t: int, t_prev: int) -> torch.Tensor:
        """DDPM posterior mean (eq. 12), with alpha_t -> abar_t / abar_t' for a strided jump."""
        a_t, a_prev = self.abar(t), self.abar(t_prev)
        alpha = a_t / a_prev
        beta = 1 - alpha
        return (a_prev**0.5 * beta / (1 - a_t)) * x0_hat + (alpha**0.5 * (1 - a_prev) / (1 - a_t)) * x_t

    def reverse_mean_score(self, x_t: torch.Tensor, score: torch.Tensor, t: int, t_prev: int) -> torch.Tensor:
        """Score form x_{t-1} = (x_t + (1 - alpha_t) s) / sqrt(alpha_t) (eq. 17)."""
        alpha = self.step_alpha(t, t_prev)
        return (x_t + (1 - alpha) * score) / alpha**0.5

    def reverse_mean_eps(self, x_t: torch.Tensor, eps: torch.Tensor, t: int, t_prev: int) -> torch.Tensor:
        """Noise form x_{t-1} = (x_t - (1 - alpha_t) / sqrt(1 - abar_t) eps) / sqrt(alpha_t) (eq. 23)."""
        alpha = self.step_alpha(t, t_prev)
        return (x_t - (1 - alpha) / (1 - self.abar(t)) ** 0.5 * eps) / alpha**0.5

    def posterior_std(self, t: int, t_prev: int) -> float:
        """sigma_t of eq. 25: sqrt of the DDPM posterior variance (1 - abar_t') / (1 - abar_t) beta_t."""
        if t_prev < 0:
            return 0.0
        beta = 1 - self.step_alpha(t, t_prev)
        return ((1 - self.abar(t_prev)) / (1 - self.abar(t)) * beta) ** 0.5


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
SCHEDULES = ("uniform", "quadratic", "karras", "spectral")
KARRAS_RHO = 7.0


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


def noise_levels(schedule: Schedule) -> torch.Tensor:
    """sigma_t = sqrt((1 - abar_t) / abar_t): the noise level of x_t / sqrt(abar_t) (Karras et al.'s sigma)."""
    a = schedule.alpha_bar
    return ((1 - a) / a).sqrt()


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
    import numpy as np

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
    import numpy as np

    targets = np.interp(levels.numpy(), grid.numpy(), np.arange(start + 1, dtype=np.float64))
    return distinct_descending(targets.tolist(), start)


def make_timesteps(
    schedule: Schedule, steps: int, start: int | None = None, kind: str = "uniform", profile: dict | None = None
) -> list[int]:
    """The descending timestep list of a run: ``kind`` in SCHEDULES (spectral needs the model's stability profile,
    a dict with 't' and 'rho_Js')."""
    if kind == "uniform":
        return strided_timesteps(schedule.T, steps, start)
    if kind == "quadratic":
        return quadratic_timesteps(schedule.T, steps, start)
    if kind == "karras":
        return karras_timesteps(schedule, steps, start)
    if kind == "spectral":
        if profile is None:
            raise ValueError("the spectral schedule needs the model's stability profile")
        return spectral_timesteps(schedule, steps, profile["t"], profile["rho_Js"], start)
    raise ValueError(f"unknown schedule {kind!r}; choose from {', '.join(SCHEDULES)}")
