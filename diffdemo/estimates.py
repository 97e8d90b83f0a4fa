"""Run-time estimates that learn: every finished run of the app reports its wall time, and the next estimate of the
same kind uses the running median of what such runs actually cost on this machine.

One start-up timing (``ui_helpers.measure_cost``) is a poor guide on its own: taken while the machine is busy it
came out 3-25x too slow, and per-frame work the timing does not see (scoring, pictures, streaming) is missed. So:

1. a run of the same task, model and batch size ran before: seconds per network evaluation, median of the last
   ``WINDOW`` such runs, times this run's evaluations;
2. the task ran at another batch size: that median ratio actual / predicted, times this run's prediction;
3. another task of the same kind (plain forwards, or gradient-sized evaluations) ran on this model: its median
   ratio, times this run's prediction;
4. any other run on this model: its median ratio (the start-up timing is off by about as much for every kind
   when it was taken on a busy machine);
5. otherwise the start-up timing alone (re-timed by ``measure_cost`` when stale).

No gradio here: the app formats what ``estimate`` returns and calls ``record`` after each run.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass

from diffdemo.ui_helpers import cost_for, evaluations, image_evaluations, run_seconds

WINDOW = 5  # recent runs per key: a median of 5 shrugs off one run slowed by a neighbour, and follows a change of load


@dataclass(frozen=True)
class Observation:
    model: str
    task: str
    batch: int
    evals: int  # network evaluations of the run, counted per step (a batch of k chains is one)
    seconds: float  # wall time of the run
    predicted: float  # what the start-up timing alone predicted for it
    kind: str  # "forward" or "gradient": which evaluations dominate the run
    when: float


@dataclass(frozen=True)
class Estimate:
    seconds: float
    image_evaluations: int
    source: str  # plain words: where the number comes from
    learned_runs: int  # runs of this kind behind it (0: the start-up timing alone)
    measured: bool  # False: a model not loaded yet, scaled from another one


_history: dict[tuple, deque] = {}
_lock = threading.Lock()


def _kind(work: dict) -> str:
    return "gradient" if work.get("gradients", 0) >= work.get("forwards", 0) else "forward"


def _steps(work: dict) -> int:
    return int(work.get("forwards", 0) + work.get("gradients", 0))


def record(model: str, task: str, params: dict, seconds: float, reference: str | None = None) -> None:
    """Learn from one finished run: ``params`` as for ``ui_helpers.evaluations``, ``seconds`` its wall time."""
    work = evaluations(task, **params)
    evals = _steps(work)
    if evals <= 0 or not seconds > 0:
        return
    try:
        predicted = run_seconds(cost_for(model, reference), **work)
    except Exception:  # no timing for this model: still learn seconds per evaluation
        predicted = float("nan")
    obs = Observation(
        model, task, int(work.get("batch", 1)), evals, float(seconds), predicted, _kind(work), time.time()
    )
    with _lock:
        _history.setdefault((model, task, obs.batch), deque(maxlen=WINDOW)).append(obs)


def _recent(match) -> list[Observation]:
    with _lock:
        return [o for key, runs in _history.items() if match(key) for o in runs]


def _ratio(runs: list[Observation]) -> float | None:
    ratios = [o.seconds / o.predicted for o in runs if o.predicted == o.predicted and o.predicted > 0]
    return statistics.median(ratios) if ratios else None


def estimate(model: str, task: str, reference: str | None = None, **params) -> Estimate:
    """Expected wall time of one run (see the module docstring for the order of sources)."""
    cost = cost_for(model, reference)
    work = evaluations(task, **params)
    base = run_seconds(cost, **work)
    n_img = image_evaluations(work)
    batch = int(work.get("batch", 1))
    measured = not cost["estimated"]
    same = _recent(lambda key: key == (model, task, batch))
    if same:
        per_eval = statistics.median(o.seconds / o.evals for o in same)
        return Estimate(per_eval * _steps(work), n_img, _runs_text(len(same), "this kind"), len(same), measured)
    ratio = _ratio(_recent(lambda key: key[:2] == (model, task)))
    if ratio is not None:
        return Estimate(base * ratio, n_img, "learned from this task at another batch size", 1, measured)
    kind = _kind(work)
    similar = [o for o in _recent(lambda key: key[0] == model) if o.kind == kind]
    ratio = _ratio(similar)
    if ratio is not None:
        what = "plain network evaluations" if kind == "forward" else "gradient evaluations"
        return Estimate(base * ratio, n_img, f"learned from {len(similar)} other run(s) of {what}", 0, measured)
    anything = _recent(lambda key: key[0] == model)
    ratio = _ratio(anything)
    if ratio is not None:  # the start-up timing was off by about as much for every kind (the machine's load)
        return Estimate(base * ratio, n_img, f"scaled by {len(anything)} earlier run(s) of other kinds", 0, measured)
    source = "from a network evaluation timed on this machine" if measured else "a rough estimate (model not loaded)"
    return Estimate(base, n_img, source, 0, measured)


def _runs_text(n: int, what: str) -> str:
    return f"learned from the last {n} run{'s' if n > 1 else ''} of {what}"


def compare_estimate(model: str, methods: list[str], reference: str | None = None, **params) -> Estimate:
    """Several methods one after another (Compare all): the sum of their estimates."""
    parts = [estimate(model, m, reference, **params) for m in methods]
    learned = min(p.learned_runs for p in parts)
    source = _runs_text(learned, "each method") if learned else parts[0].source
    if not learned and any(p.learned_runs for p in parts):
        source = "partly learned from earlier runs"
    return Estimate(
        sum(p.seconds for p in parts), sum(p.image_evaluations for p in parts), source, learned, parts[0].measured
    )


def forget() -> None:
    """Drop everything learned (tests)."""
    with _lock:
        _history.clear()
