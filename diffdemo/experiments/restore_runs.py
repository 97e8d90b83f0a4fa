"""One problem, one or several methods: the diffusion ones interleaved (a ``Step`` per streamed frame, a ``Row`` as
each finishes), then the classical baselines' Rows; ``run_restoration`` is the one one-shot path; ``compared`` the
one "Compare all" set."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields

import torch

from diffdemo import baselines, metrics
from diffdemo.experiments.resolve import network
from diffdemo.models import DiffusionModel
from diffdemo.restore import (
    DIFFUSION_METHODS,
    Problem,
    diffusion_frames,
    quality_metrics,
    resolved_params,
    run_baseline,
)
from diffdemo.samplers import Frame


@dataclass
class Step:
    """One streamed point of one method: its frame, PSNR of the frame's x0_hat against the truth (the mean over
    the batch's images when batched) and the frame's residual ||y - A x0_hat|| (None without a measurement)."""

    method: str
    frame: Frame
    psnr: float
    residual: float | None


@dataclass
class Row:
    """One finished method: the metrics of its result, its cost and what it ran with.

    ``residual`` is ||y - A x_hat|| (None without a measurement); ``seconds`` the wall time its sampler ran (not
    the other methods' turns, the Steps' scoring or the caller's formatting: the same with or without
    streaming); ``nfe`` network evaluations per chain;
    ``precision`` the network's number format (None: no network); ``spacing`` the timestep list (None: none)."""

    method: str
    psnr: float
    ssim: float
    lpips: float | None
    residual: float | None
    seconds: float
    nfe: int
    precision: str | None
    params: dict
    spacing: str | None
    reconstruction: torch.Tensor = field(repr=False)

    def record(self) -> dict:
        """The row for JSON: everything but the reconstruction; ``spacing`` only where there is one."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "reconstruction"}
        if self.spacing is None:
            del out["spacing"]
        return out


@dataclass
class Skipped:
    """A classical baseline of ``restoration(..., baselines=True)`` that does not apply here, and why."""

    method: str
    reason: str


# --- restoration ---------------------------------------------------------------------------------------------
def restoration(
    model: DiffusionModel | None,
    problem: Problem,
    methods: Iterable[str],
    *,
    overrides: dict,
    precision: str = "auto",
    every: int | None = 1,
    baselines: bool = False,
) -> Iterator[Step | Row | Skipped]:
    """Run ``methods`` on one problem: the diffusion ones interleaved (Steps, then a Row each as it finishes),
    then the classical ones named in ``methods`` (a Row each).

    ``overrides``: parameters over the defaults (diffdemo/defaults.py; None values ignored), the same for every
    method. ``every``: a Step every ``every`` reverse steps and at the end; None: only the end. ``baselines``:
    add every classical baseline that applies to the operator; one that fails on this problem is yielded as
    ``Skipped`` with its reason (the rest still run). Closing the generator stops all the runs."""
    methods = list(dict.fromkeys(methods))
    for m in methods:
        resolved_params(m, problem, {})  # an unknown name is refused before any work
    diffusion = [m for m in methods if m in DIFFUSION_METHODS]
    classical = [m for m in methods if m not in DIFFUSION_METHODS]
    if diffusion and model is None:
        raise ValueError(f"{', '.join(diffusion)} need a diffusion model")
    yield from _interleaved(model, problem, diffusion, overrides, precision, every)
    for m in classical:
        yield _baseline_row(m, problem, overrides)
    if baselines:
        for m in (b for b in _applicable(problem) if b not in classical):
            try:
                yield _baseline_row(m, problem, overrides)
            except ValueError as exc:
                yield Skipped(m, str(exc))


def compared(operator: str) -> list[str]:
    """The diffusion methods of "Compare all", one set for the app's comparison and ``reproduce``'s methods table:
    SDEdit, Score-ALD and DPS, and plain denoising on the noise operator only (the one problem it solves); the
    classical baselines that apply (``baselines.applicable``) run beside them."""
    return ["sdedit", "score_ald", "dps"] + (["denoise"] if operator == "noise" else [])


def run_restoration(
    model: DiffusionModel | None,
    problem: Problem,
    methods: Iterable[str],
    *,
    overrides: dict,
    precision: str = "auto",
    every: int | None = None,
    baselines: bool = False,
) -> list[Row]:
    """``restoration`` run to the end: its Rows, in the order the methods finished (Steps and Skipped dropped)."""
    run = restoration(
        model, problem, methods, overrides=overrides, precision=precision, every=every, baselines=baselines
    )
    return [item for item in run if isinstance(item, Row)]


def _applicable(problem: Problem) -> tuple[str, ...]:
    """The classical baselines for the problem's operator (``restoration``'s flag shadows the module's name)."""
    return baselines.applicable(problem.operator)


def _interleaved(model, problem: Problem, methods: list[str], overrides: dict, precision: str, every):
    """Steps and Rows of the diffusion methods, advanced together (``interleave``), each timed on its own."""
    if not methods:
        return
    nets = {m: network(model, m, precision) for m in methods}
    params = {m: resolved_params(m, problem, overrides) for m in methods}
    runs = {
        m: diffusion_frames(nets[m], m, problem, every=every, precision=nets[m].precision, **params[m]) for m in methods
    }
    spent = dict.fromkeys(methods, 0.0)
    frames = interleave(runs)
    try:
        tick = time.perf_counter()
        for name, frame in frames:
            spent[name] += time.perf_counter() - tick  # this method's step (the others' turns are not counted)
            yield Step(name, frame, metrics.mean_psnr(frame.x0_hat, problem.x0), frame.residual)
            if frame.step == frame.total:
                yield _diffusion_row(name, frame, problem, spent[name], nets[name].precision, params[name])
            tick = time.perf_counter()  # the caller's formatting of what was yielded is not the method's time
    finally:
        frames.close()


def _diffusion_row(method: str, frame: Frame, problem: Problem, seconds: float, precision: str, params: dict) -> Row:
    x_hat = frame.x_t.cpu()
    return Row(method, **quality_metrics(problem, x_hat), seconds=seconds, nfe=frame.nfe, precision=precision, params=params,
               spacing=params["spacing"], reconstruction=x_hat)  # fmt: skip


def _baseline_row(method: str, problem: Problem, overrides: dict) -> Row:
    params = resolved_params(method, problem, overrides)
    start = time.perf_counter()
    x_hat = run_baseline(method, problem, params)
    seconds = time.perf_counter() - start
    return Row(method, **quality_metrics(problem, x_hat), seconds=seconds, nfe=0, precision=None, params=params,
               spacing=None, reconstruction=x_hat)  # fmt: skip


def interleave(runs: dict[str, Iterator[Frame]]) -> Iterator[tuple[str, Frame]]:
    """Advance several frame generators together, always the one furthest behind (by step / total).

    Yields (name, frame); closing this generator closes every run (so a Stop stops them all)."""
    alive = dict(runs)
    progress = dict.fromkeys(alive, 0.0)
    try:
        while alive:
            name = min(alive, key=lambda k: progress[k])
            try:
                frame = next(alive[name])
            except StopIteration:
                del alive[name]
                continue
            progress[name] = frame.step / max(frame.total, 1)
            yield name, frame
    finally:
        for gen in runs.values():
            close = getattr(gen, "close", None)
            if close:
                close()
