"""The one cost model: what a run will cost on this machine, before it runs.

Two layers. A start-up timing (``measure_cost``): seconds for one network evaluation and one with the DPS
gradient, per model, times the run's evaluations (``evaluations``, ``run_seconds``); a hub model not downloaded
yet is scaled from a measured one by parameters x pixels (``cost_for``). Then the estimates learn: every
finished run reports its wall time (``record``), and the next estimate of the same kind uses the running median
of what such runs actually cost, because one start-up timing taken on a busy machine is a poor guide on its own
and misses per-frame work (scoring, pictures, streaming); how far off it was: ``bench/RESULTS_estimates.md``.
``estimate`` takes, in this order:

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

import math
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass

import torch

from diffdemo.experiments import log_timesteps
from diffdemo.hub import HUB_MODELS
from diffdemo.models import DiffusionModel, ModelUnavailable, is_local, is_open, load_model

# --- start-up timing -------------------------------------------------------------------------------
_costs: dict[int, dict] = {}
_costs_lock = threading.Lock()
_reference: dict | None = None  # the last measured model, to scale estimates for models not loaded yet


def median_seconds(fn, repeats: int, warmup: bool = False) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` (after one untimed call if ``warmup``), synchronising
    CUDA around each call so that queued GPU work is counted. Shared with the benchmarks in bench/."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


STALE_S = 600.0  # a quick model's start-up timing is taken again when older than this (the load may have changed)


def _settle(fn, budget_s: float = 5.0, max_calls: int = 8) -> None:
    """Call ``fn`` until it stops getting faster (a call at least 0.8x the one before), ``max_calls`` calls or
    ``budget_s`` seconds, whichever comes first."""
    spent, previous = 0.0, math.inf
    for _ in range(max_calls):
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        spent += took
        if took >= 0.8 * previous or spent > budget_s:
            return
        previous = took


def measure_cost(model: DiffusionModel, max_age_s: float = STALE_S) -> dict:
    """Seconds for one network evaluation (batch 1) and one with the DPS gradient, measured once per model
    (median of 3 when a forward is quick), and ``batch_slope``: the extra cost of each further image in a batch,
    from a batch-4 forward (small images leave a CPU's cores idle at batch 1, so k chains cost less than k times
    one; faces64's slope: ``bench/RESULTS_estimates.md``). A model slower than 0.5 s a forward is not timed at
    batch 4: slope 1. A quick model's timing older than ``max_age_s`` is stale and taken again (a slow one's would
    cost too much); the estimates then lean on real runs (``estimate``)."""
    global _reference
    with _costs_lock:
        key = id(model)
        old = _costs.get(key)
        if old is not None and old["forward_s"] < 0.5 and time.monotonic() - old["measured_at"] > max_age_s:
            del _costs[key]
        if key not in _costs:
            x = torch.randn(1, *model.sample_shape, generator=torch.Generator().manual_seed(0)).to(model.device)
            t = model.schedule.T // 2

            def forward(batch: torch.Tensor):
                with torch.inference_mode():
                    model.eps(batch, t)

            def gradient():
                with torch.enable_grad():
                    x_in = x.clone().requires_grad_(True)
                    torch.autograd.grad(model.x0_hat(x_in, t).norm(), x_in)

            # warm-up calls pay for allocation and kernel selection (the first calls are much slower on a loaded
            # machine: bench/RESULTS_estimates.md); then a quick model is timed 3 times
            _settle(lambda: forward(x))
            one = median_seconds(lambda: forward(x), 1)
            repeats = 3 if one < 0.5 else 1
            if repeats > 1:
                one = median_seconds(lambda: forward(x), repeats)
            grad = median_seconds(gradient, repeats)
            slope = 1.0
            if repeats > 1:
                x4 = x.repeat(4, 1, 1, 1)
                four = median_seconds(lambda: forward(x4), repeats, warmup=True)
                slope = min(1.0, max(0.0, (four / one - 1) / 3))  # batch 4 costs 1 + 3 x slope of batch 1
            n_params = getattr(model, "n_params", None)
            _costs[key] = {
                "forward_s": one,
                "grad_s": grad,
                "batch_slope": slope,
                "params": n_params,
                "size": model.size,
                "measured_at": time.monotonic(),
            }
            if n_params:
                _reference = dict(_costs[key], name=model.name)
        return dict(_costs[key])


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
        return dict(measure_cost(load_model(name)), estimated=False)
    if _reference is None and reference and reference != name:
        try:
            measure_cost(load_model(reference))
        except ModelUnavailable:
            pass
    est = estimate_unloaded(name)
    if est is None:
        raise ModelUnavailable(f"no size known for '{name}' to estimate its cost; it is timed once it is loaded")
    return dict(est, estimated=True)


def evaluations(task: str, **p) -> dict:
    """Network evaluations of one run: plain forwards, gradient-sized ones (JVP, VJP or backprop) and the batch.

    task: denoise (t, steps), psnr_curve (steps, points), sample (n, steps), a restoration method (steps, t0,
    samples), probe (sweep) or spectrum (k, iters, n_t)."""
    steps = int(p.get("steps") or 0)
    chains = int(p.get("samples") or 1)  # posterior samples averaged: one batch of k chains
    if task == "denoise":
        return {"forwards": min(steps, int(p["t"]) + 1)}
    if task == "psnr_curve":  # Figure 1: one denoising run from each of ``points`` log-spaced timesteps
        return {"forwards": sum(min(steps, t + 1) for t in log_timesteps(int(p.get("T", 1000)), int(p["points"])))}
    if task == "sample":
        return {"forwards": steps, "batch": int(p.get("n", 1))}
    if task == "sdedit":
        return {"forwards": min(steps, int(p["t0"]) + 1), "batch": chains}
    if task == "score_ald":
        return {"forwards": steps, "batch": chains}
    if task == "denoise_restore":
        return {"forwards": steps}
    if task == "dps":
        return {"gradients": steps, "batch": chains}
    if task == "probe":  # exact JVP + central difference (2 rows) + one JVP row per timestep of the sweep
        return {"gradients": 1 + int(p.get("sweep", 0)), "forwards": 2}
    if task == "spectrum":  # per timestep: max(k, iters) Lanczos steps (JVP + VJP on 2 rows) + iters Arnoldi JVPs
        k, iters, n_t = int(p["k"]), int(p["iters"]), int(p["n_t"])
        return {"gradients": n_t * (max(k, iters) * 2 * 2 + iters)}
    raise ValueError(f"unknown task {task!r}")


def image_evaluations(work: dict) -> int:
    """Network evaluations of one run counted per image: (forwards + gradient evaluations) x batch."""
    return (work.get("forwards", 0) + work.get("gradients", 0)) * work.get("batch", 1)


def run_seconds(cost: dict, forwards: int = 0, gradients: int = 0, batch: int = 1) -> float:
    """Forward passes and gradient evaluations times their measured batch-1 cost, times the batch's cost
    1 + (batch - 1) x slope (``batch_slope`` measured with the model; 1, linear, when unknown)."""
    batch_factor = 1 + (max(1, int(batch)) - 1) * cost.get("batch_slope", 1.0)
    return (forwards * cost["forward_s"] + gradients * cost["grad_s"]) * batch_factor


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


# --- learning from finished runs ----------------------------------------------------------------------
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
    """Learn from one finished run: ``params`` as for ``evaluations``, ``seconds`` its wall time."""
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


def compare_estimate(
    model: str, methods: list[str], reference: str | None = None, per_method: dict | None = None, **params
) -> Estimate:
    """Several methods one after another (Compare all): the sum of their estimates (``per_method``: a method's own
    parameters over ``params``, such as its own number of chains)."""
    parts = [estimate(model, m, reference, **{**params, **(per_method or {}).get(m, {})}) for m in methods]
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
