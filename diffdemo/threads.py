"""How many torch threads a run uses: chosen once, in one place, from the core count and the concurrency.

torch's intra-op threads (OpenMP) meet at a barrier after every parallel region, so a region waits for its
slowest thread: when any other runnable thread shares a core with one of them (another user's job, or this
app's own server encoding and streaming the pictures of a run), every region stalls. On a 2-core CPU a network
evaluation ran many times slower with 2 threads than with 1 under a competing load, and slower even with nothing
of the benchmark's own running on a shared machine (bench/RESULTS_threads.md). Hence one rule for the app, the CLI
and ``reproduce`` alike: leave one core to everything else (the server, the OS, other jobs) and share the rest
among the heavy runs allowed at once, ``(cores - 1) // concurrency``, at least 1. One rule also keeps the app and
the command on the same thread count, so that the same request gives the same numbers from each (a different
count changes the order of floating-point sums). ``DIFFDEMO_THREADS`` overrides it (``OMP_NUM_THREADS`` does not:
the app sets it itself). No CPU model, flag or measured speed enters the rule: only the cores this process may use
and the concurrency.
"""

from __future__ import annotations

import os
import sys

ENV = "DIFFDEMO_THREADS"


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _override(env) -> tuple[int, str] | None:
    try:
        n = int(str(env.get(ENV, "")).strip())
    except ValueError:
        return None
    return (n, f"set by {ENV}") if n >= 1 else None


def choose_threads(cores: int | None = None, concurrency: int = 1, env: dict | None = None) -> tuple[int, str]:
    """torch's intra-op thread count and why: ``DIFFDEMO_THREADS``, else ``(cores - 1) // concurrency``, at least 1."""
    found = _override(os.environ if env is None else env)
    if found is not None:
        return found
    cores = usable_cores() if cores is None else max(1, int(cores))
    concurrency = max(1, int(concurrency))
    heavy = "heavy run" if concurrency == 1 else "heavy runs"
    n = max(1, (cores - 1) // concurrency)
    return n, f"{cores} cores, one left to the server and the rest of the machine, {concurrency} {heavy} at a time"


def auto_threads(concurrency: int = 1) -> int:
    """The rule's thread count (or the override)."""
    return choose_threads(concurrency=concurrency)[0]


def apply_threads(n: int) -> None:
    """Make ``n`` torch's thread count: directly if torch is loaded, else through the OpenMP variables torch reads
    when it loads (the app imports torch only after it is serving). Threads started afterwards inherit it; a thread
    that already ran torch work keeps its own count (``ensure`` mends that one)."""
    n = max(1, int(n))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    else:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)


_chosen: dict = {}


def configure(concurrency: int = 1) -> str:
    """Choose and apply the thread count for this process, and say it in one line."""
    n, why = choose_threads(concurrency=concurrency)
    apply_threads(n)
    _chosen.update(threads=n, why=why)
    return describe()


def ensure(concurrency: int = 1) -> None:
    """In the calling thread, torch's count is the chosen one (chosen now if it was not): a server's worker thread
    that ran torch work before the choice keeps its own count otherwise."""
    if not _chosen:
        configure(concurrency)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != _chosen["threads"]:
        torch.set_num_threads(_chosen["threads"])


def chosen() -> int | None:
    """The thread count chosen for this process, or None before ``configure``."""
    return _chosen.get("threads")


def describe() -> str:
    """'torch uses 1 thread (2 cores, one left to the server and the rest of the machine, ...; DIFFDEMO_THREADS
    overrides)'."""
    if not _chosen:
        n = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
        return f"torch uses {n if n else 'its default number of'} threads (not chosen by diffdemo)"
    n = _chosen["threads"]
    return f"torch uses {n} thread{'s' if n > 1 else ''} ({_chosen['why']}; {ENV} overrides)"
