"""How many torch threads a run uses: chosen once, in one place, from the core count and the concurrency.

torch's intra-op threads (OpenMP) meet at a barrier after every parallel region, so a region waits for its
slowest thread: when any other runnable thread shares a core with one of them (another user's job, or this
app's own server encoding and streaming the pictures of a run), every region stalls. On a 2-core CPU that made a
network evaluation many times slower with 2 threads than with 1 under a competing load, and slower even with
nothing of the benchmark's own running on a shared machine (bench/RESULTS_threads.md). Hence:

- the **app** (a server: its own request handling, picture encoding and streaming run beside every heavy run)
  leaves one core to them and shares the rest among its concurrent heavy runs: ``(cores - 1) // concurrency``,
  at least 1;
- a **command** (the CLI, ``reproduce``: nothing else of ours running) takes the cores not already busy, read
  from the load average when it starts.

``DIFFDEMO_THREADS`` overrides either (``OMP_NUM_THREADS`` does not: the app sets it itself). No CPU model, flag or measured speed enters the
rule: only the core count this process may use, the concurrency and, for a command, the load.
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


def _busy() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def _override(env) -> tuple[int, str] | None:
    try:
        n = int(str(env.get(ENV, "")).strip())
    except ValueError:
        return None
    return (n, f"set by {ENV}") if n >= 1 else None


def choose_threads(
    cores: int | None = None,
    concurrency: int = 1,
    server: bool = True,
    busy: float | None = None,
    env: dict | None = None,
) -> tuple[int, str]:
    """torch's intra-op thread count and why: an override, else the rule of the module docstring."""
    env = os.environ if env is None else env
    found = _override(env)
    if found is not None:
        return found
    cores = usable_cores() if cores is None else max(1, int(cores))
    concurrency = max(1, int(concurrency))
    heavy = "heavy run" if concurrency == 1 else "heavy runs"
    if server:
        n = max(1, (cores - 1) // concurrency)
        return n, f"{cores} cores, one left to the server, {concurrency} {heavy} at a time"
    busy = _busy() if busy is None else max(0.0, float(busy))
    n = max(1, min(cores, int(cores - busy + 0.5)) // concurrency)
    return n, f"{cores} cores, load {busy:.1f} when it started"


def auto_threads() -> int:
    """A command's thread count (the cores not already busy, or the override)."""
    return choose_threads(server=False)[0]


def apply_threads(n: int) -> None:
    """Make ``n`` torch's thread count for this process: directly if torch is loaded, else through the OpenMP
    variables torch reads when it loads (the app imports torch only after it is serving). Threads started
    afterwards inherit it; a thread that already ran torch work keeps its own count, so call this first."""
    n = max(1, int(n))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    else:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)


_chosen: dict = {}


def configure(concurrency: int = 1, server: bool = True) -> str:
    """Choose and apply the thread count (once per process; later calls re-apply it) and say it in one line."""
    n, why = choose_threads(concurrency=concurrency, server=server)
    apply_threads(n)
    _chosen.update(threads=n, why=why)
    return describe()


def describe() -> str:
    """'torch uses 1 thread (2 cores, one left to the server, 1 heavy run at a time; DIFFDEMO_THREADS overrides)'."""
    if not _chosen:
        n = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
        return f"torch uses {n if n else 'its default number of'} threads (not chosen by diffdemo)"
    n = _chosen["threads"]
    return f"torch uses {n} thread{'s' if n > 1 else ''} ({_chosen['why']}; {ENV} overrides)"
