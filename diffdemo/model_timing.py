"""Timing a model's network calls on this machine: seconds for one forward and one DPS gradient, each a low
quantile of several short single calls, and the batch slope (``measure_cost``); taken again when old or when a run
disagreed with its estimate, never while a run is going, never inside ``no_timing`` (the app's light events). A hub
model not downloaded yet is scaled from a measured one (``cost_for``). The estimates (diffdemo/estimates.py) build
on these timings."""

from __future__ import annotations

import contextvars
import math
import os
import statistics
import threading
import time
import weakref
from contextlib import contextmanager

import torch

from diffdemo.hub import HUB_MODELS
from diffdemo.models import (
    DiffusionModel,
    ModelUnavailable,
    cached_model,
    canonical_name,
    is_local,
    is_open,
    load_model,
)

# --- timing the network ---------------------------------------------------------------------------
# Keyed by the model object itself, weakly: an evicted model's timing goes with it (an id() key could be reused by
# the next model allocated at the same address and hand it a stranger's timing).
_costs: weakref.WeakKeyDictionary[DiffusionModel, dict] = weakref.WeakKeyDictionary()
_costs_lock = threading.Lock()  # held only to read or store a timing
_timing_lock = threading.Lock()
_reference: dict | None = None  # the last measured model, to scale estimates for models not loaded yet

STALE_S = 120.0  # a quick model's timing is taken again when older than this (the load may have changed)
TIMING_CALLS = 7  # short single calls per figure ...
QUANTILE = 0.25  # ... of which this quantile: a burst of load slows some calls, not the fastest quarter
TIMING_BUDGET_S = 2.0  # no more calls for one figure once this is spent (a slow model is timed by one call)
QUIET_S = 30.0  # no timing while a run is going (it would time the run, and slow it), unless silent this long
DISAGREE = 1.5  # a run this far off its estimate (either way) has the timing taken again


def median_seconds(fn, repeats: int, warmup: bool = False) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` (after one untimed call if ``warmup``). Shared with the
    benchmarks in bench/."""
    return statistics.median(_call_seconds(fn, repeats, warmup))


def _short_timings(
    fn, calls: int = TIMING_CALLS, warmup: bool = False, budget_s: float = TIMING_BUDGET_S, fastest: float = math.inf
):
    """(the ``QUANTILE`` of up to ``calls`` single-call wall times, how many were taken). A burst of load on up to
    4 of 7 calls leaves the 25th percentile alone. Once ``budget_s`` is spent the calls stop, unless the
    fastest call (or ``fastest``, one seen before) says that all of them fit it: so a slow model is timed once, and a
    quick one slowed by a burst is still timed in full."""
    if warmup:
        fn()
    times: list[float] = []
    while len(times) < calls:
        if sum(times) > budget_s and min([fastest, *times]) * calls > budget_s:
            break
        times += _call_seconds(fn, 1, False)
    return quantile(times, QUANTILE), len(times)


def quantile(values, q: float) -> float:
    """The ``q`` quantile of ``values``, interpolated between order statistics (q = 0: the minimum)."""
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _clock() -> float:
    """The timings' clock (tests put a fake one here, or in time.perf_counter)."""
    return time.perf_counter()


def _call_seconds(fn, calls: int, warmup: bool) -> list[float]:
    """Wall times of single calls, synchronising CUDA around each so that queued GPU work is counted."""
    if warmup:
        fn()
    times = []
    for _ in range(calls):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = _clock()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(_clock() - start)
    return times


def _settle(fn, budget_s: float = 5.0, max_calls: int = 8) -> float:
    """Call ``fn`` until it stops getting faster (a call at least 0.8x the one before), ``max_calls`` calls or
    ``budget_s`` seconds, whichever comes first; the fastest call's seconds."""
    spent, previous, fastest = 0.0, math.inf, math.inf
    for _ in range(max_calls):
        start = _clock()
        fn()
        took = _clock() - start
        spent, fastest = spent + took, min(fastest, took)
        if took >= 0.8 * previous or spent > budget_s:
            break
        previous = took
    return fastest


_active: dict[int, float] = {}  # runs going now: id -> time.monotonic() of their latest step (``busy``)
_retime: set[str] = set()  # models whose last run disagreed with its estimate: timed again at the next chance


def busy(run: object) -> None:
    """``run`` is working now (called at its start and every step): no timing is taken until it is ``idle``, or has
    made no step for ``QUIET_S`` (a run stopped or failed never says it is idle)."""
    _active[id(run)] = time.monotonic()


def idle(run: object) -> None:
    """``run`` has finished."""
    _active.pop(id(run), None)


# False inside ``no_timing``: the network is not run for a timing there, the last timing is read instead.
_may_time: contextvars.ContextVar[bool] = contextvars.ContextVar("diffdemo_may_time", default=True)


class NotTimed(ModelUnavailable):
    """The model is loaded but has no timing yet, and the caller may not take one (``no_timing``)."""


# True inside ``stale_ok``: a model timed before is not timed again (only a model never timed is)
_stale_ok: contextvars.ContextVar[bool] = contextvars.ContextVar("diffdemo_stale_ok", default=False)


@contextmanager
def stale_ok():
    """Within the block a model timed before is not timed again, for its age or for a run that disagreed: a run
    starting must not pay ~2-6 s of timing calls for an estimate it barely uses (a kind run before is estimated
    from its own learnt seconds; the first-demo bench measured Generate 9.2 s in-process against 14.0 s through the
    app while runs re-timed). The next heavy event that is not a run (a page load's model line, a model change)
    takes the timing asked for."""
    token = _stale_ok.set(True)
    try:
        yield
    finally:
        _stale_ok.reset(token)


@contextmanager
def no_timing():
    """Within the block no timing is taken, only read: the app's light events (estimate lines, the header) run
    outside the network's concurrency group and must not run the network; a finishing run never waits for one."""
    token = _may_time.set(False)
    try:
        yield
    finally:
        _may_time.reset(token)


def _quiet() -> bool:
    now = time.monotonic()
    return all(now - last > QUIET_S for last in list(_active.values()))


def canon_name(name: str) -> str:
    """A model name as the timings and the estimates key it (the canonical name where the model is known)."""
    try:
        return canonical_name(name)
    except ModelUnavailable:
        return (name or "").strip()


def load_average() -> float | None:
    """The 1-minute load average, None where the OS has none."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def measure_cost(model: DiffusionModel, max_age_s: float = STALE_S) -> dict:
    """Seconds for one network evaluation (batch 1) and one with the DPS gradient, each the 25th percentile of up
    to ``TIMING_CALLS`` single calls (fewer past ``TIMING_BUDGET_S``), and ``batch_slope``: the extra cost of each
    further image in a batch, from a batch-4 forward (small images leave a CPU's cores idle at batch 1, so k chains
    cost less than k times one; faces64's slope: ``bench/RESULTS_estimates.md``). A model slower than 0.5 s a
    forward gets slope 1 and is not timed again. A quick model's timing is taken again when older than
    ``max_age_s`` or when a run disagreed with its estimate, unless a run is going (then the last one stands).
    Inside ``no_timing`` the last timing is returned as it is, and a model never timed raises ``NotTimed``."""
    global _reference
    name = canon_name(getattr(model, "name", "") or "")
    with _costs_lock:
        old = _costs.get(model)
    if old is None and not _may_time.get():
        raise NotTimed(f"'{name}' has not been timed yet: its first run times it")
    if old is not None:
        stale = time.monotonic() - old["measured_at"] > max_age_s
        wanted = (stale or name in _retime) and not _stale_ok.get()
        if old["forward_s"] >= 0.5 or not wanted or not _quiet() or not _may_time.get():
            return dict(old)
    with _timing_lock:  # one timing at a time; readers of the last timing never wait behind it
        with _costs_lock:
            latest = _costs.get(model)
        if latest is not None and latest is not old:
            return dict(latest)  # timed while this caller waited
        cost = _time_model(model, old)
        with _costs_lock:
            _costs[model] = cost
            if cost["params"]:
                _reference = dict(cost, name=model.name)
            _retime.discard(name)
    return dict(cost)


def timing_workloads(model: DiffusionModel) -> dict:
    """The calls a timing makes, at mid-schedule on seeded noise: one forward at batch 1 (a Denoise or DPS step),
    one at batch 4 (four chains) and one forward + backward (a DPS gradient); bench/bench_threads.py times the same."""
    x1 = torch.randn(1, *model.sample_shape, generator=torch.Generator().manual_seed(0)).to(model.device)
    x4 = x1.repeat(4, 1, 1, 1)
    t = model.schedule.T // 2

    def forward(batch: torch.Tensor):
        with torch.inference_mode():
            model.eps(batch, t)

    def gradient():
        with torch.enable_grad():
            x_in = x1.clone().requires_grad_(True)
            torch.autograd.grad(model.x0_hat(x_in, t).norm(), x_in)

    return {
        "forward, batch 1": lambda: forward(x1),
        "forward, batch 4": lambda: forward(x4),
        "gradient, batch 1": gradient,
    }


def _time_model(model: DiffusionModel, old: dict | None) -> dict:
    """One timing of ``model`` (``measure_cost``'s figures); ``old``, its previous timing, skips the warm-up."""
    work = timing_workloads(model)
    forward1, forward4, gradient = work["forward, batch 1"], work["forward, batch 4"], work["gradient, batch 1"]
    # warm-up calls pay for allocation and kernel selection (the first calls are much slower on a loaded
    # machine: bench/RESULTS_estimates.md); a model timed before is warm already
    fastest = _settle(forward1) if old is None else old["forward_s"]
    one, calls = _short_timings(forward1, fastest=fastest)
    grad, _ = _short_timings(gradient, warmup=old is None)
    slope = 1.0
    if one < 0.5:
        four, _ = _short_timings(forward4, max(3, TIMING_CALLS // 2), warmup=old is None)
        slope = min(1.0, max(0.0, (four / one - 1) / 3))  # batch 4 costs 1 + 3 x slope of batch 1
    return {
        "forward_s": one,
        "grad_s": grad,
        "batch_slope": slope,
        "params": getattr(model, "n_params", None),
        "size": model.size,
        "measured_at": time.monotonic(),
        "measured_clock": time.time(),
        "calls": calls,
        "load": load_average(),
    }


def estimate_unloaded(name: str) -> dict | None:
    """A hub model's cost scaled from the last measured model by parameters x pixels (rough: it is an estimate)."""
    spec = HUB_MODELS.get(name)
    ref = _reference
    if spec is None or ref is None:
        return None
    factor = (spec["params"] / ref["params"]) * (spec["size"] / ref["size"]) ** 2
    return {
        "forward_s": ref["forward_s"] * factor,
        "grad_s": ref["grad_s"] * factor,
        "params": spec["params"],
        "size": spec["size"],
        "scaled_from": ref["name"],
    }


def cost_for(name: str, reference: str | None = None) -> dict:
    """Measured cost of a local or already loaded model; for a hub model not loaded yet (no download just to
    time it) an estimate scaled from ``reference`` (measured first if need be), flagged ``estimated``."""
    if is_local(name) or is_open(name):
        model = load_model(name) if _may_time.get() else cached_model(name)  # no_timing: never a load either
        if model is None:
            raise NotTimed(f"'{name}' is not loaded yet: it is timed when it is")
        return dict(measure_cost(model), estimated=False)
    if _reference is None and reference and reference != name and _may_time.get():
        try:
            measure_cost(load_model(reference))
        except ModelUnavailable:
            pass
    est = estimate_unloaded(name)
    if est is None:
        raise ModelUnavailable(f"no size known for '{name}' to estimate its cost; it is timed once it is loaded")
    return dict(est, estimated=True)


def retime(name: str) -> None:
    """A run of model ``name`` disagreed with its estimate: take its timing again at the next chance."""
    _retime.add(canon_name(name))


def forget_retimes() -> None:
    _retime.clear()
