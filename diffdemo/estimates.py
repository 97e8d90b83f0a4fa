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

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from diffdemo.model_timing import (  # noqa: F401 - the timings' public names, read here by the app and the bench
    DISAGREE,
    TIMING_CALLS,
    NotTimed,
    busy,
    canon_name,
    cost_for,
    forget_retimes,
    idle,
    load_average,
    measure_cost,
    median_seconds,
    no_timing,
    quantile,
    retime,
    stale_ok,
    timing_workloads,
)
from diffdemo.workload import (  # noqa: F401 - the cost model's public names, read here by the app and the bench
    batch_factor,
    evaluations,
    format_range,
    format_seconds,
    image_evaluations,
    network_calls,
    run_seconds,
)

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
    model = canon_name(model)
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
            retime(model)


def _latest_of_task(model: str, task: str) -> tuple[tuple, Learned] | None:
    with _lock:
        found = [(k, v) for k, v in _learned.items() if k[:2] == (model, task) and v.runs]
    return max(found, key=lambda kv: kv[1].runs[-1].when) if found else None


def estimate(model: str, task: str, reference: str | None = None, **params) -> Estimate:
    """Expected wall time of one run (see the module docstring for the order of sources), with a range where the
    spread of recent runs or the machine's load makes one number dishonest."""
    model = canon_name(model)
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
            seconds *= batch_factor(cost, batch) / batch_factor(cost, other[0][2])
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

    load = load_average() if load is None else load
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
    model = canon_name(model)
    with _lock:
        runs = [kind.runs[-1] for (name, *_), kind in _learned.items() if name == model and kind.runs]
    return max(runs, key=lambda o: o.when) if runs else None


def forget() -> None:
    """Drop everything learnt (tests)."""
    with _lock:
        _learned.clear()
        forget_retimes()
