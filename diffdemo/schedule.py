"""The DDPM / variance-preserving schedule and the poster's identities (section 3.1).

Time is an integer index t = 0 .. T-1 as in diffusers; ``alpha_bar[t]`` is the poster's \\bar\\alpha_t. Which
timesteps a run visits (its spacing) is ``diffdemo.spacing``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch


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


def noise_levels(schedule: Schedule) -> torch.Tensor:
    """sigma_t = sqrt((1 - abar_t) / abar_t): the noise level of x_t / sqrt(abar_t) (Karras et al.'s sigma)."""
    a = schedule.alpha_bar
    return ((1 - a) / a).sqrt()
