"""One faces64 forward against the CPU's FLOP floor: FLOPs from torch's counter, peak from vector width x FMA x clock.

    python bench/flop_floor.py [--threads 1] [--repeats 15]

FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` over one batch-1 forward (convolutions, matmuls, attention; the
elementwise ops, norms and activations count zero, so this is the floor of the tensor-core-free arithmetic).
Peak fp32 per core: 16 lanes (AVX-512, from the ``avx512f`` flag; 8 with AVX2 only) x 2 FMA units (an assumption:
Intel Xeon Scalable parts with AVX-512 have two 512-bit FMA ports; one on some SKUs, which would halve the peak)
x 2 FLOPs per FMA x the ``cpu MHz`` of /proc/cpuinfo. Times are process CPU seconds (robust on a shared machine),
median of ``--repeats``, on ``--threads`` threads, compared with the peak of that many cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffdemo.models import load_model  # noqa: E402


def cpu_info() -> dict:
    text = Path("/proc/cpuinfo").read_text()
    flags, mhz, name = set(), None, "unknown"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags" and not flags:
            flags = set(value.split())
        elif key == "cpu MHz" and mhz is None:
            mhz = float(value)
        elif key == "model name" and name == "unknown":
            name = value.strip()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    return dict(name=name, mhz=mhz, lanes=lanes, fma_units=2, bf16="avx512_bf16" in flags, amx="amx_bf16" in flags)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model("faces64", device="cpu")
    x, t = torch.randn(1, 3, 64, 64), torch.full((1,), 500)
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eps(x, t)
    flops = counter.get_total_flops()
    info = cpu_info()
    peak = info["lanes"] * info["fma_units"] * 2 * info["mhz"] * 1e6 * args.threads
    out = dict(cpu=info, threads=args.threads, gflop_per_forward=flops / 1e9, peak_gflops_fp32=peak / 1e9)
    for precision in ("fp32", "bf16"):
        view = model.with_precision(precision)

        def forward(view=view):
            with torch.no_grad():
                view.eps(x, t)

        forward()
        times = []
        for _ in range(args.repeats):
            start = time.process_time()
            forward()
            times.append(time.process_time() - start)
        sec = statistics.median(times)
        out[precision] = dict(
            ms=sec * 1e3,
            gflops=flops / sec / 1e9,
            fraction_of_fp32_peak=flops / sec / peak,
            floor_ms=flops / peak * 1e3,
        )
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
