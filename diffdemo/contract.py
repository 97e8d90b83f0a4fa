"""The one model contract: eps(x, t), score(x, t), x0_hat(x, t) on batched (N, C, H, W) tensors in [-1, 1].

Implementations: ``diffdemo.unet.UNetModel`` (a diffusers ``UNet2DModel``: the embedded ``faces64``, a local folder
or a hub id) and ``diffdemo.gaussian_prior.GaussianPrior`` (analytic: its score and Jacobian are exact, the tests'
oracle); ``diffdemo.models`` names, loads and caches them.
"""

from __future__ import annotations

import copy

import torch

from diffdemo.schedule import Schedule


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class DiffusionModel:
    """Base class: subclasses implement ``eps``; score (eq. 22) and x0_hat (eq. 19) follow from it.

    ``t`` is an int or a 1-D integer tensor with one timestep per batch element.
    """

    name: str = "model"
    schedule: Schedule
    sample_shape: tuple[int, int, int]
    device: torch.device = torch.device("cpu")
    precision: str = "fp32"  # the network's number format (diffdemo/precision.py); inputs and outputs stay float32
    autodiff: bool = False  # the network's layers carry hand-written JVP / VJP rules (diffdemo/autodiff.py)

    def eps(self, x: torch.Tensor, t) -> torch.Tensor:
        raise NotImplementedError

    def with_precision(self, precision: str) -> DiffusionModel:
        """A view of this model whose network runs in ``precision`` (fp32 or bf16); weights shared, cache untouched."""
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16 here (resolve 'auto' first), got {precision!r}")
        if precision == self.precision:
            return self
        view = copy.copy(self)
        view.precision = precision
        return view

    def for_autodiff(self) -> DiffusionModel:
        """A float32 view for Jacobian products: the same values, with the network's cheaper JVP / VJP rules."""
        view = copy.copy(self.with_precision("fp32"))
        view.autodiff = True
        return view

    def _abar(self, t, x: torch.Tensor) -> torch.Tensor:
        """alpha_bar_t broadcast against x (``Schedule.abar_like``)."""
        return self.schedule.abar_like(t, x)

    def score(self, x: torch.Tensor, t) -> torch.Tensor:
        """s_theta(x_t, t) from eps_theta (eq. 22, ``Schedule.score_from_eps``)."""
        return self.schedule.score_from_eps(self.eps(x, t), t)

    def x0_hat(self, x: torch.Tensor, t) -> torch.Tensor:
        """Tweedie denoiser x0_hat from eps_theta (eq. 19, ``Schedule.x0_from_eps``)."""
        return self.schedule.x0_from_eps(x, self.eps(x, t), t)

    @property
    def size(self) -> int:
        return self.sample_shape[-1]
