"""One restoration run, end to end: measure an image, restore it with a diffusion method or a baseline, score it.

Shared by the CLI, the app and the benchmarks so that all three run exactly the same problem.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from diffdemo import baselines, metrics
from diffdemo.defaults import MAX_SAMPLES, params_for
from diffdemo.models import DiffusionModel
from diffdemo.operators import Operator
from diffdemo.precision import resolve_precision
from diffdemo.samplers import Frame, dps, posterior_mean, reverse_process, score_ald, sdedit
from diffdemo.stability import model_timesteps

DIFFUSION_METHODS = ("denoise", "sdedit", "score_ald", "dps")
METHODS = DIFFUSION_METHODS + baselines.BASELINES


@dataclass
class Problem:
    """A measured test problem: the truth x0, the operator, sigma_y and the measurement y (all (1, C, H, W))."""

    x0: torch.Tensor
    operator: Operator
    sigma_y: float
    y: torch.Tensor
    seed: int = 0
    info: dict = field(default_factory=dict)


def make_problem(x0: torch.Tensor, operator: Operator, sigma_y: float, seed: int = 0) -> Problem:
    """y = A x0 + sigma_y n with the noise drawn from ``seed`` (so every method sees the same y)."""
    if not 0.0 <= sigma_y <= 2.0:
        raise ValueError(f"sigma_y must be in [0, 2] ([-1, 1] image units), got {sigma_y}")
    y = operator.measure(x0, sigma_y, torch.Generator().manual_seed(int(seed)))
    return Problem(x0, operator, float(sigma_y), y, int(seed))


def matched_timestep(model: DiffusionModel, sigma: float) -> int:
    """The t whose noise-to-signal ratio (1 - abar_t) / abar_t is closest to sigma^2 (y ~ x_t / sqrt(abar_t))."""
    abar = model.schedule.alpha_bar
    ratio = (1 - abar) / abar
    return int(torch.argmin((ratio - sigma**2).abs()))


def model_for(model: DiffusionModel, method: str, precision: str = "auto") -> DiffusionModel:
    """The model whose network runs in the precision resolved for ``method`` (diffdemo/precision.py)."""
    return model.with_precision(resolve_precision(precision, model.device, method))


def diffusion_frames(
    model: DiffusionModel, method: str, problem: Problem, every: int = 1, precision: str = "auto", **overrides
) -> Iterator[Frame]:
    """The frame generator of a diffusion method on a problem (parameters: defaults + overrides).

    ``samples`` = k > 1 runs k chains per image in one batch and streams their mean (``posterior_mean``).
    ``precision`` (auto, fp32, bf16) is the network's number format; the loop's arithmetic is float32 either way.
    """
    if method not in DIFFUSION_METHODS:
        raise ValueError(f"unknown diffusion method {method!r}; choose from {', '.join(DIFFUSION_METHODS)}")
    model = model_for(model, method, precision)
    p = params_for(method, problem.operator.task, **overrides)
    steps = int(p["steps"])
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    k = int(p.get("samples", 1))
    if not 1 <= k <= MAX_SAMPLES:
        raise ValueError(f"samples must be in [1, {MAX_SAMPLES}], got {k}")
    if k > 1 and method == "denoise":
        raise ValueError(
            "denoise is deterministic (DDIM-like, no noise draws): its chains would all agree; use samples=1"
        )
    frames = _chain_frames(model, method, problem, p, steps, k, every)
    return posterior_mean(frames, k) if k > 1 else frames


def _chain_frames(model, method: str, problem: Problem, p: dict, steps: int, k: int, every: int) -> Iterator[Frame]:
    """The sampler of ``method`` on the measurement repeated k times (k chains per image)."""
    op, seed = problem.operator, problem.seed
    kind = str(p.get("schedule") or "uniform")
    y = problem.y.repeat_interleave(k, 0) if k > 1 else problem.y
    if method == "denoise":
        t0 = int(p.get("t0") or max(matched_timestep(model, problem.sigma_y), 1))
        start = model.schedule.abar(t0) ** 0.5 * op.init_estimate(y)
        ts = model_timesteps(model, min(steps, t0 + 1), t0, kind)
        return reverse_process(model, start, ts, seed=seed, stochastic=False, operator=op, y=y, every=every)
    if method == "sdedit":
        t0 = int(p["t0"])
        return sdedit(model, op, y, t0=t0, steps=min(steps, t0 + 1), seed=seed, every=every, schedule=kind)
    if method == "score_ald":
        return score_ald(
            model,
            op,
            y,
            zeta=float(p["zeta"]),
            sigma_y=problem.sigma_y,
            steps=steps,
            seed=seed,
            every=every,
            schedule=kind,
        )
    normalize = bool(p.get("normalize", True))  # dps
    return dps(
        model, op, y, scale=float(p["scale"]), steps=steps, seed=seed, normalize=normalize, every=every, schedule=kind
    )


def restore(model: DiffusionModel | None, method: str, problem: Problem, precision: str = "auto", **overrides) -> dict:
    """Run one method to the end; return the reconstruction, its metrics, time, network evaluations and the
    network's precision (None for a classical baseline, which runs no network)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if method in DIFFUSION_METHODS:
        overrides["schedule"] = overrides.get("schedule") or "uniform"  # named in every result (and its JSON)
    else:
        overrides.pop("schedule", None)  # baselines take no timesteps
    params = params_for(method, problem.operator.task, **overrides)
    used = None
    start = time.perf_counter()
    if method in DIFFUSION_METHODS:
        if model is None:
            raise ValueError(f"{method} needs a diffusion model")
        model = model_for(model, method, precision)
        used = model.precision
        frame = None
        for frame in diffusion_frames(model, method, problem, every=10**9, precision=used, **overrides):
            pass
        x_hat, nfe = frame.x_t.cpu(), frame.nfe
    else:
        x_hat, nfe = (
            baselines.restore_baseline(method, problem.y, problem.operator, **params),
            0,
        )
    seconds = time.perf_counter() - start
    scores = metrics.all_metrics(x_hat, problem.x0)
    return {
        "reconstruction": x_hat,
        "method": method,
        "operator": problem.operator.name,
        **scores,
        "psnr_measurement": metrics.psnr(problem.y, problem.x0),
        "seconds": seconds,
        "nfe": nfe,
        "precision": used,
        "params": params,
        **({"schedule": params["schedule"]} if method in DIFFUSION_METHODS else {}),
    }
