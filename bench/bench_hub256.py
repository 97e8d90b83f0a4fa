"""Cost of the poster's 256x256 model on this machine: google/ddpm-celebahq-256's architecture at full size
(random weights: the cost does not depend on them), in seconds and in batch-1 forwards.

    python bench/bench_hub256.py [--device cpu|cuda] [--threads N] [--repeats 3] [--dps-steps 3]
                                 [--results bench/RESULTS_hub256.md] [--model google/ddpm-celebahq-256]

Measures one forward pass; one DPS step (a forward plus the backward through the network, eq. 29); one probe
(three exact Jacobian columns at a pixel, one JVP); one spectrum iteration (a JVP and a VJP on J^T J); and from
the DPS step, the time a 100-step DPS run takes. ``--model`` times a real hub model instead (needs the hub).
Prints a table and a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_engine import hardware  # noqa: E402
from diffdemo import analysis as A  # noqa: E402
from diffdemo.defaults import DEFAULTS  # noqa: E402
from diffdemo.estimates import format_seconds, median_seconds  # noqa: E402
from diffdemo.hub_layout import CELEBAHQ_256_ID, CELEBAHQ_256_SCHEDULER, celebahq_unet  # noqa: E402
from diffdemo.models import UNetModel, default_device, load_model  # noqa: E402
from diffdemo.operators import make_operator  # noqa: E402
from diffdemo.restore import timesteps_for  # noqa: E402
from diffdemo.samplers import dps, last_frame  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=str(default_device()))
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dps-steps", type=int, default=3, help="DPS steps timed (the per-step time is their mean)")
    p.add_argument("--model", default=None, help="a real model (hub id or folder) instead of random weights")
    p.add_argument("--results", default=str(ROOT / "bench" / "RESULTS_hub256.md"), help="markdown ('' = none)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.model:
        model, which = load_model(args.model, device=device), args.model
    else:
        model = UNetModel(celebahq_unet(), CELEBAHQ_256_SCHEDULER, name="celebahq-256-random", device=device)
        which = f"{CELEBAHQ_256_ID} architecture, random weights"
    size = model.size
    x0 = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).mul(2).sub(1).to(device)
    t, pixel = 500, (size // 2, size // 3)
    x_t = A.state_at(model, x0, t, seed=0)
    T = torch.full((1,), t, device=device)

    def forward():
        with torch.no_grad():
            model.eps(x_t, T)

    started, cpu_started = time.perf_counter(), time.process_time()
    base = median_seconds(forward, args.repeats, warmup=True)
    op = make_operator("gaussian_blur", size)
    y = op.A(x0) + 0.05 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(1)).to(device)

    def dps_run():
        last_frame(
            dps(
                model,
                op,
                y,
                scale=DEFAULTS["dps"]["scale"],
                timesteps=timesteps_for(model, args.dps_steps, None, "uniform"),
                seed=0,
                every=None,
            )
        )

    dps_step = median_seconds(dps_run, 1, warmup=True) / args.dps_steps
    ops = A.row_operators(model, [x_t], [t], ["score"], [None])
    v = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(2), dtype=torch.float64).to(device)
    ops.rmatvec(v)  # the VJP's forward graph is built once per state, then reused by every iteration
    cases = {
        "forward (batch 1)": base,
        "DPS step (forward + backward, eq. 29)": dps_step,
        "probe: 3 Jacobian columns at a pixel (one JVP)": median_seconds(
            lambda: A.jacobian_columns(model, x_t, t, pixel, method="jvp"), 1, warmup=True
        ),
        "spectrum: one Lanczos iteration (JVP + VJP)": median_seconds(
            lambda: ops.rmatvec(ops.matvec(v)), 1, warmup=True
        ),
    }
    result = {
        "model": which,
        "params": sum(q.numel() for q in model.unet.parameters()),
        "size": size,
        "device": str(device),
        "hardware": hardware(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "cases": {k: {"seconds": s, "forwards": s / base} for k, s in cases.items()},
        "dps_100_steps_seconds": 100 * dps_step,
        "dps_1000_steps_seconds": 1000 * dps_step,
        "bench_seconds": time.perf_counter() - started,
        "bench_cpu_seconds": time.process_time() - cpu_started,  # / bench_seconds: the share of the CPU we got
    }
    print(f"{which}: {result['params'] / 1e6:.1f} M parameters, {size}x{size}, {device}, {result['threads']} threads")
    for name, r in result["cases"].items():
        print(f"{name:50s} {r['seconds']:9.3f} s {r['forwards']:7.2f} forwards")
    print(f"100-step DPS: {format_seconds(result['dps_100_steps_seconds'])}")
    if args.results:
        write_markdown(Path(args.results), result)
    print(json.dumps(result, allow_nan=False))
    return result


def write_markdown(path: Path, r: dict) -> None:
    lines = [
        "# The 256x256 model's cost (bench/bench_hub256.py)",
        "",
        f"{r['model']} ({r['params'] / 1e6:.1f} M parameters, {r['size']}x{r['size']}), device `{r['device']}` on "
        f"{r['hardware']}, {r['threads']} torch threads, torch {r['torch']}, {r['date']}. Forward: median of the "
        "repeats after a warm-up; the other cases: one run after a warm-up.",
        "",
        "| case | seconds | in forwards |",
        "|---|---:|---:|",
    ]
    for name, c in r["cases"].items():
        lines.append(f"| {name} | {c['seconds']:.2f} | {c['forwards']:.2f} |")
    lines += [
        f"| 100-step DPS (100 x the DPS step) | {r['dps_100_steps_seconds']:.0f} | |",
        f"| 1000-step DPS, the poster's setting | {r['dps_1000_steps_seconds']:.0f} | |",
        "",
        f"The run took {r['bench_seconds']:.0f} s of wall time and {r['bench_cpu_seconds']:.0f} s of CPU time "
        f"({r['threads']} threads): a ratio far below the thread count means the machine was shared.",
        "",
    ]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
