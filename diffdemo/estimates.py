"""The one cost model: what a run will cost on this machine, before it runs.

Two layers. A timing (``measure_cost``): seconds for one network evaluation and one with the DPS gradient, per
model, each the 25th percentile of several short single calls (a burst of load slows a few calls, not the low
quantile), times the run's evaluations (``evaluations``, ``run_seconds``); a hub model not downloaded yet is
scaled from a measured one by parameters x pixels (``cost_for``). A quick model's timing is taken again when it is
older than ``STALE_S`` or when a finished run disagreed with its estimate by more than ``DISAGREE`` (the load
changed), never while a run is going (it would slow the run and time the run instead of the machine). In the app
only heavy events, inside the network's concurrency group, take a timing (a run as it starts, ``model_info`` as a page
loads or the model changes, the warm-up at start); the light ones (estimate lines, the header) read the last one
(``no_timing``).

Then the estimates learn: every finished run reports its wall time (``record``); each kind of run (model, task,
batch) keeps an exponentially weighted figure of its seconds per network call, the latest run weighing
``LATEST_WEIGHT``, so a busy spell leaves the estimate as soon as a quiet run follows (a median of the last five
kept it for minutes). A run's own time, averaged over its whole length, is a better guide to the next one than any
short timing: on a machine whose load comes in bursts, a fresh timing rescaling the learnt figures moved the
estimates by 2x either way (bench/RESULTS_estimates.md), so timings serve only kinds not run yet.
``estimate`` takes, in this order:

1. this kind ran before: its learnt figure x this run's network calls;
2. the task ran at another batch size: the same, scaled by the measured batch cost;
3. otherwise this run's own evaluations x the timing now (never another task's figure: a probe's overhead says
   nothing about a spectrum's).

Where one number would be dishonest, ``estimate`` also gives a range: the spread of this kind's recent runs, and,
while the load average exceeds the cores, the load's share (``_range``). How far off all this is:
``bench/RESULTS_estimates.md``. No gradio here: the app formats what ``estimate`` returns and calls ``record`` after
each run.
"""

from __future__ import annotations

import contextvars
import math
import os
import statistics
import threading
import time
import weakref
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from diffdemo.experiments import log_timesteps
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
from diffdemo.spacing import steps_from

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


def low_quantile_seconds(fn, calls: int = TIMING_CALLS, q: float = QUANTILE, warmup: bool = False) -> float:
    """The ``q`` quantile of the wall times of ``calls`` single calls of ``fn``: short timings, of which a burst of
    load inflates only the slower ones."""
    return quantile(_call_seconds(fn, calls, warmup), q)


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


# True inside ``stale_ok``: a timing older than STALE_S stands (only a model never timed, or one whose last run
# disagreed with its estimate, is timed)
_stale_ok: contextvars.ContextVar[bool] = contextvars.ContextVar("diffdemo_stale_ok", default=False)


@contextmanager
def stale_ok():
    """Within the block an old timing is not taken again for its age alone: a run starting must not pay ~2 s of
    timing calls for an estimate it barely uses (a kind run before is estimated from its own learnt seconds, and
    the first-demo bench measured Generate 9.2 s in-process against 14.0 s through the app while runs re-timed)."""
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


def _canon(name: str) -> str:
    try:
        return canonical_name(name)
    except ModelUnavailable:
        return (name or "").strip()


def _load() -> float | None:
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
    name = _canon(getattr(model, "name", "") or "")
    with _costs_lock:
        old = _costs.get(model)
    if old is None and not _may_time.get():
        raise NotTimed(f"'{name}' has not been timed yet: its first run times it")
    if old is not None:
        stale = time.monotonic() - old["measured_at"] > max_age_s and not _stale_ok.get()
        wanted = stale or name in _retime
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
        "load": _load(),
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


def evaluations(task: str, **p) -> dict:
    """Network evaluations of one run: plain forwards, gradient-sized ones (JVP, VJP or backprop) and the batch
    they run in; a run in two phases of different batch gives the second as ``then`` (the same keys).

    task: denoise (t, steps), psnr_curve (steps, points), sample (n, steps), a restoration method (steps, t0,
    samples), probe (sweep), energy (n_t: an energy sweep alone) or spectrum (k, iters, n_t)."""
    steps = int(p.get("steps") or 0)
    chains = int(p.get("samples") or 1)  # posterior samples averaged: one batch of k chains
    if task == "denoise":
        return {"forwards": steps_from(steps, int(p["t"]))}
    if task == "psnr_curve":  # Figure 1: one denoising run from each of ``points`` log-spaced timesteps
        return {"forwards": sum(steps_from(steps, t) for t in log_timesteps(int(p.get("T", 1000)), int(p["points"])))}
    if task == "sample":
        return {"forwards": steps, "batch": int(p.get("n", 1))}
    if task == "sdedit":
        return {"forwards": steps_from(steps, int(p["t0"])), "batch": chains}
    if task == "score_ald":
        return {"forwards": steps, "batch": chains}
    if task == "denoise_restore":
        return {"forwards": steps}
    if task == "dps":
        return {"gradients": steps, "batch": chains}
    if task == "probe":  # exact JVP + central difference (2 rows) + one JVP row per timestep of the sweep
        return {"gradients": 1 + int(p.get("sweep", 0)), "forwards": 2}
    if task == "energy":  # analysis.energy_sweep by central differences: one forward of 2 rows per timestep
        return {"forwards": 1, "batch": 2 * int(p["n_t"])}
    if task == "spectrum":
        # analysis.spectrum_sweep: max(k, iters) Lanczos steps, each one JVP and one VJP batched over the 2 n_t rows
        # (J_s and J_f at every timestep), then iters Arnoldi steps, one JVP batched over the n_t rows
        k, iters, n_t = int(p["k"]), int(p["iters"]), int(p["n_t"])
        return {"gradients": 2 * max(k, iters), "batch": 2 * n_t, "then": {"gradients": iters, "batch": n_t}}
    raise ValueError(f"unknown task {task!r}")


def _phases(work: dict) -> list[dict]:
    phases = [work]
    while "then" in phases[-1]:
        phases.append(phases[-1]["then"])
    return phases


def image_evaluations(work: dict) -> int:
    """Network evaluations of one run counted per image: (forwards + gradient evaluations) x batch, every phase."""
    return sum((w.get("forwards", 0) + w.get("gradients", 0)) * w.get("batch", 1) for w in _phases(work))


def network_calls(work: dict) -> int:
    """Network calls of one run (a batch of k chains is one call), every phase."""
    return sum(int(w.get("forwards", 0) + w.get("gradients", 0)) for w in _phases(work))


def _batch_factor(cost: dict, batch: int) -> float:
    return 1 + (max(1, int(batch)) - 1) * cost.get("batch_slope", 1.0)


def run_seconds(cost: dict, forwards: int = 0, gradients: int = 0, batch: int = 1, then: dict | None = None) -> float:
    """Forward passes and gradient evaluations times their measured batch-1 cost, times the batch's cost
    1 + (batch - 1) x slope (``batch_slope`` measured with the model; 1, linear, when unknown); plus a second
    phase ``then`` (the same keys)."""
    seconds = (forwards * cost["forward_s"] + gradients * cost["grad_s"]) * _batch_factor(cost, batch)
    return seconds + (run_seconds(cost, **then) if then else 0.0)


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def format_range(low: float, high: float) -> str:
    """'4-7 s', '40 s-2 min': two durations, the unit said once where both share it."""
    a, b = format_seconds(low), format_seconds(high)
    a_num, _, a_unit = a.partition(" ")
    b_num, _, b_unit = b.partition(" ")
    if a == b:
        return a
    return f"{a_num}-{b}" if a_unit == b_unit else f"{a}-{b}"


# --- learning from finished runs ----------------------------------------------------------------------
LATEST_WEIGHT = 0.7  # the latest run's share of a kind's learnt figure (exponential weighting)
WINDOW = 5  # recent runs per kind kept for the range
RECENT_S = 600.0  # runs older than this say nothing about the spread now
RANGE_FROM = 1.5  # a range is shown when its ends are at least this far apart


@dataclass(frozen=True)
class Observation:
    model: str
    task: str
    batch: int
    calls: int  # network calls of the run (a batch of k chains is one)
    seconds: float  # wall time of the run
    timing: float | None  # the model's forward timing (s) in force when it ran (for the record); None: none
    when: float  # time.monotonic()

    @property
    def per_call(self) -> float:
        return self.seconds / self.calls


@dataclass
class Learned:
    """One kind's learnt figure: seconds per network call, exponentially weighted (the latest run weighs
    ``LATEST_WEIGHT``), and its recent runs (for the range)."""

    runs: deque = field(default_factory=lambda: deque(maxlen=WINDOW))
    earlier: float | None = None  # the weighted figure of the runs before the latest

    def figure(self) -> float:
        latest = self.runs[-1].per_call
        return latest if self.earlier is None else LATEST_WEIGHT * latest + (1 - LATEST_WEIGHT) * self.earlier


@dataclass(frozen=True)
class Estimate:
    seconds: float
    image_evaluations: int
    source: str  # plain words: where the number comes from
    learned_runs: int  # runs of this kind behind it (0: the timing alone)
    measured: bool  # False: a model not loaded yet, scaled from another one
    low: float | None = None  # a range, where one number would be dishonest (see ``_range``); else None
    high: float | None = None

    def text(self) -> str:
        """'~5.2 s' or, with a range, '~4-7 s'."""
        if self.low is not None and self.high is not None:
            return f"~{format_range(self.low, self.high)}"
        return f"~{format_seconds(self.seconds)}"


_learned: dict[tuple, Learned] = {}
_lock = threading.Lock()


def record(model: str, task: str, params: dict, seconds: float, reference: str | None = None) -> None:
    """Learn from one finished run: ``params`` as for ``evaluations``, ``seconds`` its wall time. A run more than
    ``DISAGREE`` off its estimate has the model timed again at the next chance (``measure_cost``)."""
    model = _canon(model)
    work = evaluations(task, **params)
    calls = network_calls(work)
    if calls <= 0 or not seconds > 0:
        return
    try:
        with no_timing():  # a finishing run never waits for a timing
            before = estimate(model, task, reference, **params).seconds
            timing = cost_for(model, reference)
        timing = None if timing.get("estimated") else timing["forward_s"]
    except Exception:  # no timing for this model: still learn seconds per call
        before, timing = None, None
    obs = Observation(model, task, int(work.get("batch", 1)), calls, float(seconds), timing, time.monotonic())
    with _lock:
        kind = _learned.setdefault((model, task, obs.batch), Learned())
        if kind.runs:
            kind.earlier = kind.figure()
        kind.runs.append(obs)
        if before is not None and timing is not None and not (1 / DISAGREE <= seconds / before <= DISAGREE):
            _retime.add(model)


def _latest_of_task(model: str, task: str) -> tuple[tuple, Learned] | None:
    with _lock:
        found = [(k, v) for k, v in _learned.items() if k[:2] == (model, task) and v.runs]
    return max(found, key=lambda kv: kv[1].runs[-1].when) if found else None


def estimate(model: str, task: str, reference: str | None = None, **params) -> Estimate:
    """Expected wall time of one run (see the module docstring for the order of sources), with a range where the
    spread of recent runs or the machine's load makes one number dishonest."""
    model = _canon(model)
    cost = cost_for(model, reference)
    work = evaluations(task, **params)
    n_img = image_evaluations(work)
    calls = network_calls(work)
    batch = int(work.get("batch", 1))
    measured = not cost["estimated"]
    with _lock:
        same = _learned.get((model, task, batch))
        same = same if same is not None and same.runs else None
    other = None if same is not None else _latest_of_task(model, task)
    if same is not None or other is not None:
        kind = same if same is not None else other[1]
        per_call = kind.figure()
        seconds = per_call * calls
        if same is None:  # another batch size: its cost per call scaled by the measured batch cost
            seconds *= _batch_factor(cost, batch) / _batch_factor(cost, other[0][2])
            source = "learnt from this task at another batch size"
        else:
            n = len(kind.runs)
            source = f"learnt from the last run{'s' if n > 1 else ''} of this kind, the latest weighing most"
        learned = len(kind.runs)
        scale = seconds / per_call  # this run's calls, batch-scaled: the recent runs at this run's size
        now = time.monotonic()
        recent = [o.per_call * scale for o in kind.runs if now - o.when < RECENT_S]
    else:
        seconds = run_seconds(cost, **work)
        source = (
            f"{calls} network calls x a timing on this machine" if measured else "a rough estimate (model not loaded)"
        )
        learned, recent = 0, []
    low, high = _range(seconds, recent)
    return Estimate(seconds, n_img, source, learned, measured, low, high)


def _range(seconds: float, recent: list[float], load: float | None = None, cores: int | None = None):
    """(low, high) where one number would be dishonest, else (None, None). The range spans this kind's recent
    runs (scaled to this run's size) and, while the load average exceeds the cores, the load's share: from the
    estimate / sqrt(load / cores) to the estimate x sqrt(load / cores) (the run may meet more of the load than
    the last one did, or less). Shown when its ends are ``RANGE_FROM`` apart or more."""
    from diffdemo.threads import usable_cores

    load = _load() if load is None else load
    cores = usable_cores() if cores is None else cores
    low = min([seconds, *recent])
    high = max([seconds, *recent])
    if load is not None and load > cores:
        share = math.sqrt(load / cores)
        low, high = min(low, seconds / share), max(high, seconds * share)
    return (low, high) if high >= RANGE_FROM * low else (None, None)


def _runs_text(n: int, what: str) -> str:
    return f"learnt from the last {n} run{'s' if n > 1 else ''} of {what}"


def compare_estimate(
    model: str, methods: list[str], reference: str | None = None, per_method: dict | None = None, **params
) -> Estimate:
    """Several methods one after another (Compare all): the sum of their estimates and of their ranges
    (``per_method``: a method's own parameters over ``params``, such as its own number of chains)."""
    parts = [estimate(model, m, reference, **{**params, **(per_method or {}).get(m, {})}) for m in methods]
    learned = min(p.learned_runs for p in parts)
    source = _runs_text(learned, "each method") if learned else parts[0].source
    if not learned and any(p.learned_runs for p in parts):
        source = "partly learnt from earlier runs"
    seconds = sum(p.seconds for p in parts)
    low = sum(p.seconds if p.low is None else p.low for p in parts)
    high = sum(p.seconds if p.high is None else p.high for p in parts)
    shown = high >= RANGE_FROM * low
    return Estimate(
        seconds,
        sum(p.image_evaluations for p in parts),
        source,
        learned,
        parts[0].measured,
        low if shown else None,
        high if shown else None,
    )


def latest_run(model: str) -> Observation | None:
    """The most recent finished run on this model (for the app's header)."""
    model = _canon(model)
    with _lock:
        runs = [kind.runs[-1] for (name, *_), kind in _learned.items() if name == model and kind.runs]
    return max(runs, key=lambda o: o.when) if runs else None


def forget() -> None:
    """Drop everything learnt (tests)."""
    with _lock:
        _learned.clear()
        _retime.clear()
