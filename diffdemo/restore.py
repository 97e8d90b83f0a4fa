"""One method on one problem: measure an image, run one diffusion method's frames or one baseline, score it.

The single-method layer under ``diffdemo.experiments`` (which runs comparisons, streams and times them): the
problem, each method's parameters, its frames, and the metrics of a result are defined here once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from diffdemo import baselines, metrics, validation
from diffdemo.defaults import DEFAULTS, SPACING, params_for
from diffdemo.errors import InvalidParameter
from diffdemo.models import DiffusionModel
from diffdemo.operators import Operator
from diffdemo.precision import resolve_precision
from diffdemo.profiles import load_profile
from diffdemo.samplers import Frame, dps, posterior_mean, reverse_process, score_ald, sdedit
from diffdemo.spacing import SPACINGS, make_timesteps, steps_from

DIFFUSION_METHODS = ("denoise", "sdedit", "score_ald", "dps")
METHODS = DIFFUSION_METHODS + baselines.BASELINES


@dataclass
class Problem:
    """A measured test problem: the truth x0, the operator, sigma_y and the measurement y, (1, C, H, W) or a
    batch (N, C, H, W) of N images measured together (one noise draw for the batch)."""

    x0: torch.Tensor
    operator: Operator
    sigma_y: float
    y: torch.Tensor
    seed: int = 0
    info: dict = field(default_factory=dict)


def make_problem(x0: torch.Tensor, operator: Operator, sigma_y: float, seed: int = 0) -> Problem:
    """y = A x0 + sigma_y n with the noise drawn from ``seed`` (so every method sees the same y); sigma_y in
    [-1, 1] image units. Any finite sigma_y >= 0 is a valid problem (t = 300's noise level is 1.2); the range
    offered to users is defaults.RANGES, checked where their input comes in."""
    if not (math.isfinite(sigma_y) and sigma_y >= 0):
        raise InvalidParameter(f"sigma_y must be a finite number >= 0, got {sigma_y}")
    y = operator.measure(x0, sigma_y, torch.Generator().manual_seed(int(seed)))
    return Problem(x0, operator, float(sigma_y), y, int(seed))


def matched_timestep(model: DiffusionModel, sigma: float) -> int:
    """The t whose noise-to-signal ratio (1 - abar_t) / abar_t is closest to sigma^2 (y ~ x_t / sqrt(abar_t))."""
    abar = model.schedule.alpha_bar
    ratio = (1 - abar) / abar
    return int(torch.argmin((ratio - sigma**2).abs()))


def timesteps_for(
    model: DiffusionModel, steps: int | None, start: int | None, spacing: str, label: str = "t"
) -> list[int]:
    """The descending timestep list of a run of ``steps`` steps from ``start`` under the spacing named ``spacing``.

    The one place a spacing name becomes a list (the samplers take the list): "spectral" reads the model's stored
    stability profile (``diffdemo.profiles``). ``start`` None: from T - 1; a run from ``start`` takes at most
    start + 1 steps (steps None: all of them); ``label`` names the start in the message when it is out of range."""
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; choose from {', '.join(SPACINGS)}")
    if start is not None:
        start = validation.check_timestep(start, model.schedule.T, label)
        steps = steps_from(steps, start)
    profile = load_profile(model.name) if spacing == "spectral" else None
    return make_timesteps(model.schedule, steps, start, spacing, profile)


def model_for(model: DiffusionModel, method: str, precision: str = "auto") -> DiffusionModel:
    """The model whose network runs in the precision resolved for ``method`` (diffdemo/precision.py)."""
    return model.with_precision(resolve_precision(precision, model.device, method))


def diffusion_frames(
    model: DiffusionModel, method: str, problem: Problem, every: int | None = 1, precision: str = "auto", **overrides
) -> Iterator[Frame]:
    """The frame generator of a diffusion method on a problem (parameters: defaults + overrides).

    ``every``: a frame every ``every`` steps and the last one; None: only the last one (samplers.reverse_process).
    ``samples`` = k > 1 runs k chains per image in one batch and streams their mean (``posterior_mean``).
    ``precision`` (auto, fp32, bf16) is the network's number format; the loop's arithmetic is float32 either way.
    """
    if method not in DIFFUSION_METHODS:
        raise ValueError(f"unknown diffusion method {method!r}; choose from {', '.join(DIFFUSION_METHODS)}")
    model = model_for(model, method, precision)
    p = params_for(method, problem.operator.task, **overrides)
    steps = validation.check("steps", p["steps"])
    k = validation.check("samples", p.get("samples", 1))
    if k > 1 and method == "denoise":
        raise InvalidParameter(
            "denoise is deterministic (DDIM-like, no noise draws): its chains would all agree; use samples=1"
        )
    frames = _chain_frames(model, method, problem, p, steps, k, every)
    return posterior_mean(frames, k) if k > 1 else frames


def _chain_frames(
    model, method: str, problem: Problem, p: dict, steps: int, k: int, every: int | None
) -> Iterator[Frame]:
    """The sampler of ``method`` on the measurement repeated k times (k chains per image)."""
    op, seed = problem.operator, problem.seed
    kind = str(p.get("spacing") or SPACING)
    y = problem.y.repeat_interleave(k, 0) if k > 1 else problem.y
    if method == "denoise":
        t0 = int(p.get("t0") or max(matched_timestep(model, problem.sigma_y), 1))
        start = model.schedule.abar(t0) ** 0.5 * op.init_estimate(y)
        ts = timesteps_for(model, steps, t0, kind)
        return reverse_process(model, start, ts, seed=seed, stochastic=False, operator=op, y=y, every=every)
    if method == "sdedit":
        ts = timesteps_for(model, steps, int(p["t0"]), kind, "t0")
        return sdedit(model, op, y, timesteps=ts, seed=seed, every=every)
    ts = timesteps_for(model, steps, None, kind)
    if method == "score_ald":
        zeta, sigma_y = float(p["zeta"]), problem.sigma_y
        return score_ald(model, op, y, zeta=zeta, sigma_y=sigma_y, timesteps=ts, seed=seed, every=every)
    scale, normalize = float(p["scale"]), bool(p.get("normalize", True))  # dps
    return dps(model, op, y, scale=scale, timesteps=ts, seed=seed, normalize=normalize, every=every)


def resolved_params(method: str, problem: Problem, overrides: dict) -> dict:
    """A method's parameters on ``problem``: defaults, per-task defaults, then the non-None overrides.

    A diffusion method names its timestep list (when none is given, its own tuned one for the task: defaults.py;
    every result and JSON says which); a baseline takes only its own parameters, never the diffusion ones."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if method in DIFFUSION_METHODS:
        return params_for(method, problem.operator.task, **overrides)
    own = {k: v for k, v in overrides.items() if k in DEFAULTS.get(method, {})}
    return params_for(method, problem.operator.task, **own)


def run_baseline(method: str, problem: Problem, params: dict) -> torch.Tensor:
    """The classical restoration ``method`` of the problem's measurement (no network), image by image."""
    images = problem.y.split(1)
    return torch.cat([baselines.restore_baseline(method, y, problem.operator, **params) for y in images])


def residual(problem: Problem, x: torch.Tensor) -> float:
    """||y - A x||_2 of a restoration (the mean over the batch's images when x holds several)."""
    return float((problem.y.to(x.device) - problem.operator.A(x)).flatten(1).norm(dim=1).mean())


def quality_metrics(problem: Problem, x_hat: torch.Tensor) -> dict:
    """psnr, ssim, lpips (None when unavailable) of a restoration against the truth and its residual; for a
    batched problem, each the mean over the images (``metrics.per_image`` gives them one by one)."""
    each = metrics.per_image(metrics.all_metrics, x_hat, problem.x0)
    means = {k: None if any(e[k] is None for e in each) else float(np.mean([e[k] for e in each])) for k in each[0]}
    return {**means, "residual": residual(problem, x_hat)}
