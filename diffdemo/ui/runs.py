"""A run's life around the engine: its time estimate before (diffdemo/estimates.py), its latest state while it
runs (so that Stop can write the partial result), the line after a failure, and what it cost, learnt after."""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

from diffdemo.ui.common import HEAVY_LIMIT, default_model, keep_live, number_text, run_dir, take_live
from diffdemo.ui.pickers import unreachable


def _estimate(model_name: str, task: str, methods: list[str] | dict | None = None, strict: bool = False, **params):
    """The learning estimate of one run (diffdemo/estimates.py), or None when there is no basis for one. ``methods``:
    a comparison's methods, or a dict of each method's own parameters over ``params``; ``strict``: a model not
    timed yet raises ``estimates.NotTimed`` instead of giving None."""
    from diffdemo import estimates
    from diffdemo.models import ModelUnavailable

    name = (model_name or "").strip()
    try:
        if methods is not None:
            per_method = methods if isinstance(methods, dict) else None
            return estimates.compare_estimate(name, list(methods), default_model(), per_method=per_method, **params)
        return estimates.estimate(name, task, default_model(), **params)
    except estimates.NotTimed:
        if strict:
            raise
        return None
    except (ModelUnavailable, KeyError, TypeError, ValueError):
        return None


def _learn(model_name: str, task: str, params: dict, seconds: float) -> None:
    """Tell the estimates what a finished run of this kind cost."""
    from diffdemo import estimates

    estimates.record((model_name or "").strip(), task, params, seconds, default_model())


def _est_seconds(est) -> float | None:
    return None if est is None else round(est.seconds, 2)


def _est_range(est) -> list[float] | None:
    return None if est is None or est.low is None else [round(est.low, 2), round(est.high, 2)]


def _busy(run, going: bool = True) -> None:
    from diffdemo import estimates, threads

    (estimates.busy if going else estimates.idle)(run)
    if going:  # this worker thread runs the network next: on the chosen thread count (diffdemo/threads.py)
        threads.ensure(HEAVY_LIMIT)


class Run:
    """One heavy run's bookkeeping around the engine: its estimate, made before it starts; its latest state while it
    runs (for Stop); once done, what it cost (taught to the estimates), its record and its files.

    ``task`` names the run (its Stop state, its results folder); ``kind`` / ``kinds`` the work estimated and learnt
    (default: the task; ``kinds`` for a comparison of several methods, a list or a dict of each one's own
    parameters over ``work``); ``work`` their parameters."""

    def __init__(self, request, task: str, model_name: str, work: dict, base: dict, kind=None, kinds=None):
        self.request, self.task, self.model_name, self.work = request, task, model_name, work
        self.kind = kind or task
        self.base = {"task": task, "model": model_name, **base}
        # a heavy event, in the network's concurrency group: a model not timed yet (or stale) is timed here, before
        # the run starts (the light events only read the timing)
        from diffdemo.estimates import stale_ok

        with stale_ok():  # a starting run times only a model never timed (never one grown old or one that disagreed)
            self.est = _estimate(model_name, self.kind, kinds, **work)
        _busy(self)  # no re-timing of the model while this run is going (estimates.busy)
        self.started, self.seconds = time.perf_counter(), None

    def state(self, **found) -> dict:
        """The record so far: the run's parameters, what it has found, its time against the estimate."""
        seconds = time.perf_counter() - self.started if self.seconds is None else self.seconds
        state = {**self.base, **found, "seconds": seconds, "estimated_seconds": _est_seconds(self.est)}
        return {**state, "estimated_range": _est_range(self.est)} if _est_range(self.est) else state

    def track(self, step: int, total: int, images: dict, **found) -> None:
        """What Stop shows and saves if pressed now: step of total, these pictures, the record so far."""
        _busy(self)
        remember_state(self.request, self.task, step, total, self.state(**found), images)

    def done(self, learn: bool = True) -> float:
        """The run has finished: Stop has nothing left to save; its time is taught to the estimates unless its
        parts are taught one by one (``learn=False``, then ``learn_part``)."""
        self.seconds = time.perf_counter() - self.started
        _busy(self, going=False)
        _untrack(self.request, self.task)
        if learn:
            _learn(self.model_name, self.kind, self.work, self.seconds)
        return self.seconds

    def learn_part(self, kind: str, seconds: float, **params) -> None:
        """Teach one part of a comparison (``params``: that part's own parameters over the run's)."""
        _learn(self.model_name, kind, {**self.work, **params}, seconds)

    def save(self, images: dict, **found) -> tuple[dict, list[str]]:
        """The finished record and its files (PNGs and results.json in a fresh results folder)."""
        from diffdemo.jsonio import write_results

        record = self.state(**found)
        return record, write_results(run_dir(self.task, self.request), images, record)

    def took(self) -> str:
        """'3.2 s (estimated 2.9 s)', or with a range '3.2 s (estimated 2.9 s, range 2-4 s)'."""
        text = f"{self.seconds:.1f} s (estimated {number_text(_est_seconds(self.est), 1)} s"
        if _est_range(self.est):
            from diffdemo.estimates import format_range

            text += f", range {format_range(self.est.low, self.est.high)}"
        return text + ")"


_stopped: dict[tuple[str, str], float] = {}  # when Stop was pressed, so the failure line does not overwrite it


def session_of(request) -> str:
    return getattr(request, "session_hash", None) or "api"


def remember_state(request, task: str, step: int, total: int, record: dict, images: dict) -> None:
    keep_live((session_of(request), task), {"step": step, "total": total, "record": record, "images": images})


def _untrack(request, task: str) -> None:
    take_live((session_of(request), task))


def on_stop(task: str):
    """The Stop button's handler for one task (a plain function: Gradio passes the request only to those)."""

    def stop(request: gr.Request):
        return stop_note(task, request)

    return stop


def on_failure(task: str):
    def failed(request: gr.Request):
        return failed_note(task, request)

    return failed


def stop_note(task: str, request: gr.Request = None):
    """After Stop: the shown state, marked partial; the JSON says where the run stopped; downloads to match."""
    from diffdemo.jsonio import write_results

    now = time.monotonic()
    for key in [k for k, when in _stopped.items() if now - when > 30]:  # no failure line came: nothing to keep
        _stopped.pop(key, None)
    _stopped[(session_of(request), task)] = now
    state = take_live((session_of(request), task))
    if state is None:
        return "**Stopped.**", gr.skip(), gr.skip()
    step, total = state["step"], state["total"]
    record = dict(state["record"], partial=True, stopped_at=f"step {step}/{total}", stopped_step=step, total=total)
    files = write_results(Path(str(run_dir(task, request)) + "-partial"), state["images"], record)
    return (
        f"**Stopped at step {step}/{total}: partial result.** The pictures show that step; the downloads and JSON "
        "are marked partial.",
        record,
        files,
    )


def failed_note(task: str, request: gr.Request = None):
    """After a failed run: one line, the earlier outputs kept (the error itself is in the pop-up). A run ended by
    Stop also counts as failed for Gradio: its "Stopped" line stays."""
    if time.monotonic() - _stopped.pop((session_of(request), task), -60.0) < 30:
        return gr.skip()
    return "**The last run failed** (the message says why); the results shown are from the run before."


def estimate(model_name: str, task: str, **params) -> str:
    """'Expected run time: ~N s' before a run: learnt from earlier runs of the same kind, else from a timing.
    Never loads a model (a light event): before the model has loaded it says so."""
    from diffdemo.models import ModelUnavailable, cached_model, resolve_model_dir
    from diffdemo.serving import check_model

    methods = params.pop("methods", None) if task == "compare" else None
    if unreachable(model_name):
        return "Expected run time: none (this model cannot be downloaded here)."
    try:
        name = check_model(model_name, default_model())
    except ModelUnavailable:
        return "Expected run time: unknown (the model is not available)."
    if resolve_model_dir(name) is not None and cached_model(name) is None:
        return "Expected run time: shown once the model has loaded."
    from diffdemo.estimates import NotTimed, no_timing

    try:
        with no_timing():  # a light event: it reads the model's timing, never runs the network to take one
            est = _estimate(name, task, methods, strict=True, **params)
    except NotTimed:
        return "Expected run time: shown once the model has been timed (its first run times it)."
    if est is None:
        return "Expected run time: unknown (the model is not available)."
    spread = "; a range, as the machine's load or its recent runs vary" if est.low is not None else ""
    return (
        f"Expected run time: **{est.text()}** ({est.image_evaluations} image evaluations of the network; "
        f"{est.source}{spread})."
    )
