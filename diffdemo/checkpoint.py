"""One checkpoint for cancellation and time caps: every long loop calls ``checkpoint()``.

The policy that stops a run (a served run's time cap, a client gone) is set from above with ``stop_when``; the
loops below (reverse steps, network evaluations, Krylov iterations, sweeps) only ask. Outside ``stop_when``
``checkpoint()`` does nothing, so the engine runs the same from the CLI, ``reproduce`` or a test.

The check lives in a ``contextvars.ContextVar``: it belongs to the thread (or task) that advances the run. A
generator runs in the context of whoever calls ``next`` on it, so set it around each ``next`` in the thread that
runs the loop (as ``serving.capped`` does), not once in another thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Check = Callable[[], None]  # raises (any exception) to stop the run, returns to let it go on

_check: ContextVar[Check | None] = ContextVar("diffdemo_checkpoint", default=None)


def checkpoint() -> None:
    """Raise whatever the active check raises (a time cap, a cancellation); nothing when none is set."""
    check = _check.get()
    if check is not None:
        check()


@contextmanager
def stop_when(check: Check | None) -> Iterator[None]:
    """Make ``check`` the active check within the block (in this thread / context); None: no check."""
    token = _check.set(check)
    try:
        yield
    finally:
        _check.reset(token)
