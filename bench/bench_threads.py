"""torch's intra-op thread count on this CPU: 1 against 2 (or more) threads, quiet and under a competing load.

    python bench/bench_threads.py [--loads quiet spin:1 matmul:1 spin:2] [--repeats 15] [--out bench/RESULTS_threads.md]

On the embedded faces64 UNet it times, for each thread count and each load, one network evaluation at batch 1
(a Denoise or DPS step), at batch 4 (four chains) and one with its gradient (a DPS step's backprop). Each figure
is the median of ``repeats`` single calls, the thread counts taken in turn call by call so that a change of
load hits every count alike. A load ``spin:N`` is N busy-loop processes, ``matmul:N`` N one-thread torch
matrix-product loops (bench/loadgen.py). The table gives ms per evaluation, the ratio of the most threads to
1 thread (above 1: more threads are slower) and the load average when each block ended.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.loadgen import competing_load, cpu_line, load_text  # noqa: E402
from diffdemo.estimates import timing_workloads  # noqa: E402
from diffdemo.models import load_model  # noqa: E402


def workloads(model) -> dict:
    """The estimates' own timing calls (diffdemo.estimates.timing_workloads)."""
    return timing_workloads(model)


def time_block(work: dict, threads: list[int], repeats: int) -> dict:
    """Median ms per call for every (workload, thread count), the counts alternating call by call."""
    out = {}
    for name, fn in work.items():
        samples = {n: [] for n in threads}
        for n in threads:  # warm-up at each count (pool start, allocation)
            torch.set_num_threads(n)
            fn()
            fn()
        for _ in range(repeats):
            for n in threads:
                torch.set_num_threads(n)
                start = time.perf_counter()
                fn()
                samples[n].append(time.perf_counter() - start)
        out[name] = {n: statistics.median(s) * 1000 for n, s in samples.items()}
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="faces64")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--loads", nargs="+", default=["quiet", "spin:1", "matmul:1", "spin:2"])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--out", default=str(ROOT / "bench" / "RESULTS_threads.md"))
    args = p.parse_args(argv)
    model = load_model(args.model, device="cpu")
    work = workloads(model)
    before = torch.get_num_threads()
    rows = []
    for load in args.loads:
        kind, _, count = load.partition(":")
        start_load = load_text()
        with competing_load(kind if kind != "quiet" else "spin", int(count or 0) if kind != "quiet" else 0):
            result = time_block(work, args.threads, args.repeats)
        rows.append((load, start_load, load_text(), result))
        for name, by_n in result.items():
            cells = ", ".join(f"{n} thr {ms:.0f} ms" for n, ms in by_n.items())
            print(f"{load:10s} {name:18s} {cells}; load {load_text()}", flush=True)
    torch.set_num_threads(before)
    most = max(args.threads)
    lines = [
        "# torch threads: 1 against 2 on this CPU, quiet and under a competing load",
        "",
        f"`python bench/bench_threads.py` on {args.model}, {time.strftime('%Y-%m-%d %H:%M')}, {cpu_line()}, "
        f"torch {torch.__version__}. The machine is shared with other engineers' jobs: *quiet* means no load of "
        "this script's own, and the load average (1 / 5 / 15 min) at the start and end of each block is given.",
        f"Each cell: median of {args.repeats} single calls, ms per call; the thread counts alternate call by call. "
        "*spin:N*: N busy-loop processes; *matmul:N*: N one-thread torch matmul loops (bench/loadgen.py). "
        f"*ratio*: {most} threads / 1 thread (above 1: {most} threads are slower).",
        "",
        "| competing load | load avg at start | load avg at end | work | "
        + " | ".join(f"{n} thread{'s' if n > 1 else ''} (ms)" for n in args.threads)
        + " | ratio |",
        "|---" * (5 + len(args.threads)) + "|",
    ]
    for load, start, end, result in rows:
        for name, by_n in result.items():
            cells = " | ".join(f"{by_n[n]:.0f}" for n in args.threads)
            lines.append(
                f"| {load} | {start} | {end} | {name} | {cells} | {by_n[most] / by_n[min(args.threads)]:.2f} |"
            )
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(Path(args.out).read_text())


if __name__ == "__main__":
    main()
