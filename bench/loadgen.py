"""A competing load for the benchmarks, and the machine facts every timing is reported with.

    with competing_load("spin", 1):   # one busy-loop process (one core busy) until the block ends
        ...

Kinds: ``spin`` (a pure-Python busy loop: one core, no memory traffic) and ``matmul`` (a one-thread torch
matrix product loop: one core plus cache and memory-bandwidth pressure, like another torch job). Every process
is started by this module and ended by it, by its own id, when the block ends (or the interpreter exits).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

LOADS = {
    "spin": "while True:\n    pass",
    "matmul": ("import torch\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\nwhile True:\n    b = a @ a"),
}


@contextlib.contextmanager
def competing_load(kind: str = "spin", processes: int = 1, settle_s: float = 2.0):
    """``processes`` competing processes of ``kind`` for the length of the block (none when ``processes`` is 0)."""
    if kind not in LOADS:
        raise ValueError(f"unknown load {kind!r}: use one of {', '.join(LOADS)}")
    procs = [
        subprocess.Popen([sys.executable, "-c", LOADS[kind]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(max(0, int(processes)))
    ]

    def stop():
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()

    atexit.register(stop)
    try:
        if procs:
            time.sleep(settle_s)  # let the load start (torch's import takes a second) before timing anything
        yield procs
    finally:
        stop()
        atexit.unregister(stop)


def cpu_flags() -> str:
    """The vector extensions that decide CPU speed and number formats: 'AVX2 yes, AVX-512 no, ...'."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = set(next(line for line in text.splitlines() if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return "CPU flags unknown"
    named = {"AVX2": "avx2", "AVX-512": "avx512f", "AVX512-BF16": "avx512_bf16", "AMX": "amx_tile"}
    return ", ".join(f"{label} {'yes' if flag in flags else 'no'}" for label, flag in named.items())


def cpu_line() -> str:
    """'2-core AMD EPYC (AVX2 yes, AVX-512 no, AVX512-BF16 no, AMX no)'."""
    from diffdemo.precision import cpu_model

    return f"{os.cpu_count()}-core {cpu_model()} ({cpu_flags()})"


def load_text() -> str:
    """The load average now, '1.2 / 0.8 / 0.5' (1, 5, 15 min)."""
    try:
        return " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "unknown"
