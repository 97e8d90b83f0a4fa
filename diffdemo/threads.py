"""How many torch threads a run should use on a CPU that may be shared with another job."""

from __future__ import annotations

import os


def auto_threads() -> int:
    """Intra-op threads for torch: the cores not already busy (at least 1).

    On a CPU shared with another job (say, training), torch's OpenMP workers spin against it and a forward with
    more threads than free cores runs many times slower (bench/RESULTS_engine.md).
    """
    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))
