"""Cost of the analysis tools on the 64x64 faces model, as ratios to one batch-1 forward pass.

    python bench/bench_analysis.py [--repeats 3] [--device cpu|cuda] [--results bench/RESULTS_analysis.md]

Targets (issue 4): one probe column <= 3 forwards; a 10-timestep energy sweep <= 12; one power / Lanczos
iteration on J^T J (a JVP and a VJP) <= 6. Uses assets/models/faces64 when it exists, else random weights of the
same architecture (the cost does not depend on the weights). Prints a table and a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffdemo import analysis as A  # noqa: E402
from diffdemo.models import ModelUnavailable, UNetModel, default_device, load_model  # noqa: E402
from diffdemo.train import build_unet, scheduler_config  # noqa: E402
from diffdemo.ui_helpers import median_seconds  # noqa: E402

TARGETS = {"probe_jvp": 3.0, "probe_central": 3.0, "energy_sweep_10t": 12.0, "lanczos_iteration": 6.0}


def get_model(device) -> tuple[UNetModel, str]:
    try:
        return load_model("faces64", device=device), "faces64 (trained)"
    except ModelUnavailable:
        return UNetModel(
            build_unet(), scheduler_config(), name="faces64-random", device=device
        ), "faces64 (random weights)"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default=str(default_device()))
    p.add_argument(
        "--results", default=str(ROOT / "bench" / "RESULTS_analysis.md"), help="markdown summary ('' = none)"
    )
    args = p.parse_args(argv)
    device = torch.device(args.device)
    model, which = get_model(device)
    x0 = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    t, pixel = 500, (32, 20)
    x_t = A.state_at(model, x0, t, seed=0)
    T = torch.full((1,), t, device=device)

    def forward():
        with torch.no_grad():
            model.score(x_t, T)

    base = median_seconds(forward, max(5, args.repeats), warmup=True)
    sweep_ts = list(range(50, 1000, 100))
    ops = A._row_ops(model, [x_t], [t], ["score"], [None])
    v = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(device)
    ops.rmatvec(v)  # the VJP's forward graph is built once per state, then reused by every iteration

    cases = {
        "probe_jvp": lambda: A.jacobian_columns(model, x_t, t, pixel, method="jvp"),
        "probe_central": lambda: A.jacobian_columns(model, x_t, t, pixel, method="central"),
        "probe_jvp+central": lambda: A.probe(model, x_t, t, pixel),
        "energy_sweep_10t": lambda: A.energy_sweep(model, x0, pixel, sweep_ts, seed=0),  # central differences
        "energy_sweep_10t_jvp": lambda: A.energy_sweep(model, x0, pixel, sweep_ts, seed=0, method="jvp"),
        "lanczos_iteration": lambda: ops.rmatvec(ops.matvec(v)),
        "arnoldi_step": lambda: ops.matvec(v),
    }
    rows = {}
    for name, fn in cases.items():
        sec = median_seconds(fn, args.repeats, warmup=True)
        rows[name] = dict(seconds=sec, ratio=sec / base, target=TARGETS.get(name))
    print(f"model: {which}, device: {device}, batch-1 forward: {base * 1e3:.1f} ms (median)")
    print(f"{'case':28s} {'seconds':>9s} {'x forward':>10s} {'target':>8s}")
    for name, r in rows.items():
        tgt = "" if r["target"] is None else f"<= {r['target']:g}"
        print(f"{name:28s} {r['seconds']:9.3f} {r['ratio']:10.2f} {tgt:>8s}")
    result = dict(
        model=which,
        device=str(device),
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        forward_seconds=base,
        repeats=args.repeats,
        cases=rows,
        meets_targets={k: rows[k]["ratio"] <= v for k, v in TARGETS.items()},
    )
    if args.results:
        write_markdown(Path(args.results), result)
    print(json.dumps(result))
    return result


def write_markdown(path: Path, result: dict) -> None:
    lines = [
        "# Analysis benchmark (bench/bench_analysis.py)",
        "",
        f"Model {result['model']}, device `{result['device']}` ({platform.processor() or platform.machine()}, "
        f"{result['threads']} torch threads), torch {result['torch']}. One batch-1 forward: "
        f"{result['forward_seconds'] * 1e3:.1f} ms (median of >= 5). Each case: median of {result['repeats']} runs.",
        "",
        "| case | seconds | x forward | target |",
        "|---|---:|---:|---:|",
    ]
    for name, r in result["cases"].items():
        tgt = "" if r["target"] is None else f"<= {r['target']:g}"
        lines.append(f"| {name} | {r['seconds']:.3f} | {r['ratio']:.2f} | {tgt} |")
    lines += [
        "",
        "probe_* = the three columns J_s, J_f, J_D at one pixel from one JVP (or one batch-2 central difference);",
        "probe_jvp+central = `analysis.probe` with the FD-vs-JVP comparison; energy_sweep_10t = 10 timesteps in one",
        "batched central difference (the default), energy_sweep_10t_jvp the same by one batched JVP; lanczos_iteration = one JVP + one VJP (the VJP reuses the forward graph built once per state);",
        "arnoldi_step = one JVP.",
        "",
    ]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
