"""How much work one request may do: its network evaluations (refused up front) and its wall time (the time cap,
set as the request's checkpoint through ``diffdemo.checkpoint`` so the engine stops inside a frame too)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from diffdemo.checkpoint import stop_when
from diffdemo.errors import DiffdemoError, OverBudget
from diffdemo.serving.deployment import limits


class TimeCapReached(DiffdemoError):
    """An event ran past this deployment's time cap and was stopped."""


def check_budget(evaluations: int) -> int:
    """Refuse a request of more image evaluations (steps x chains x methods) than this deployment allows."""
    cap = limits().max_evaluations
    if evaluations > cap:
        raise OverBudget(
            f"this request needs {evaluations:,} network evaluations (steps x chains x methods); this server "
            f"allows {cap:,} per request: use fewer steps, chains or methods, or run it on your own machine "
            "(python app.py or python -m diffdemo)"
        )
    return evaluations


def _cap_message(seconds: float) -> str:
    return f"stopped after the time cap of {seconds:g} s per run on this server: use fewer steps, chains or methods"


def _deadline_check(deadline: float, seconds: float) -> Callable[[], None]:
    """A check for ``checkpoint.stop_when``: TimeCapReached once the real clock is past ``deadline``."""

    def check() -> None:
        if time.monotonic() > deadline:
            raise TimeCapReached(_cap_message(seconds))

    return check


def capped(frames: Iterator, seconds: float | None = None, clock: Callable[[], float] = time.monotonic) -> Iterator:
    """Pass ``frames`` through until ``seconds`` have passed, then close them and raise TimeCapReached.

    The cap is checked between frames, and (through ``diffdemo.checkpoint``, with the real clock) at every
    checkpoint the engine passes while a frame is computed: each network evaluation, reverse step and Krylov
    iteration. The check is set around each ``next`` in the thread that asks for the frame (gradio advances a
    generator from worker threads), so it holds whichever thread that is."""
    seconds = limits().time_cap_s if seconds is None else seconds
    deadline = clock() + seconds
    iterator = iter(frames)
    try:
        while True:
            with stop_when(_deadline_check(time.monotonic() + (deadline - clock()), seconds)):
                try:
                    frame = next(iterator)
                except StopIteration:
                    return
            yield frame
            if clock() > deadline:
                raise TimeCapReached(_cap_message(seconds))
    finally:
        close = getattr(iterator, "close", None)
        if close:
            close()
