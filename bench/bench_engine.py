"""Engine benchmark (issue 2): how much the sampling loop costs on top of the network, against diffusers.

    python bench/bench_engine.py [--steps 50] [--repeats 3] [--batches 1 4] [--out bench/RESULTS_engine.md]

On the faces64 UNet (``load_model("faces64")`` when ``assets/models/faces64`` exists, else the same
architecture with seeded random weights: the cost does not depend on the weights) it measures, in one run:

1. sampler overhead = time of ``diffdemo.samplers.sample`` / (steps x one UNet forward at the same batch)
   (target <= 1.10);
2. ``sample`` vs diffusers' ``DDPMPipeline`` on the same UNet and number of steps (target ratio <= 1.0);
3. one DPS step / one forward (target <= 3.5);
4. the loop alone: seconds per step with a zero network (ours vs ``DDPMScheduler.step``).

Timings are medians over repeats, measured alternately (ours, theirs, ours, ...) so that a background load
hits both alike. Each table row says which thread count torch used.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffdemo.estimates import median_seconds  # noqa: E402
from diffdemo.models import MODELS_DIR, DiffusionModel, UNetModel, load_model  # noqa: E402
from diffdemo.operators import make_operator  # noqa: E402
from diffdemo.restore import timesteps_for  # noqa: E402
from diffdemo.samplers import dps, last_frame, sample  # noqa: E402
from diffdemo.threads import auto_threads  # noqa: E402
from diffdemo.train import build_unet, scheduler_config  # noqa: E402


def hardware() -> str:
    """'N-core <CPU model>, <GPU or no GPU>' of this machine, for the results' header."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()}-core {cpu}, {gpu}"


HARDWARE = hardware()


def faces64_model() -> tuple[UNetModel, str]:
    """The embedded model if it is there, else the same architecture with seeded random weights."""
    if (MODELS_DIR / "faces64" / "unet").is_dir():
        return load_model("faces64", device="cpu"), "faces64 (trained weights)"
    torch.manual_seed(0)
    return UNetModel(build_unet(), scheduler_config(), name="faces64-random", device="cpu"), (
        "faces64 architecture, seeded random weights (assets/models/faces64 not exported yet)"
    )


def interleaved(fns: dict, repeats: int, warmup: bool = True) -> dict:
    """Median seconds of each callable, run in turns (A B C A B C ...) so that load drifts hit all alike."""
    if warmup:
        for fn in fns.values():
            fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def ddpm_pipeline(model: UNetModel):
    """diffusers' own DDPM loop on the very same UNet module and schedule."""
    from diffusers import DDPMPipeline, DDPMScheduler

    pipe = DDPMPipeline(unet=model.unet, scheduler=DDPMScheduler(**scheduler_config()))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def forward_fn(model: UNetModel, batch: int):
    x = torch.randn(batch, *model.sample_shape, generator=torch.Generator().manual_seed(1))
    t = torch.full((batch,), 500)

    def run():
        with torch.no_grad():
            model.unet(x, t)

    return run


class ZeroNet(DiffusionModel):
    """eps = 0: isolates the loop's own cost (schedule arithmetic, noise draws, frames)."""

    def __init__(self, like: UNetModel):
        self.schedule, self.sample_shape, self.device, self.name = like.schedule, like.sample_shape, like.device, "zero"

    def eps(self, x, t):
        return torch.zeros_like(x)


def loop_overhead(model: UNetModel, batch: int, steps: int, repeats: int) -> dict:
    """Seconds per step of the bare loops: ours with a zero network vs diffusers' scheduler.step."""
    from diffusers import DDPMScheduler

    zero = ZeroNet(model)
    sched = DDPMScheduler(**scheduler_config())

    def ours():
        last_frame(sample(zero, n=batch, timesteps=timesteps_for(zero, steps, None, "uniform"), seed=0, every=None))

    def theirs():
        sched.set_timesteps(steps)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(batch, *model.sample_shape, generator=gen)
        for t in sched.timesteps:
            x = sched.step(torch.zeros_like(x), t, x, generator=gen).prev_sample

    med = interleaved({"ours": ours, "diffusers": theirs}, repeats)
    return {k: v / steps for k, v in med.items()}


class NetworkClock:
    """Accumulates the wall time spent inside the UNet's forward (hooks), to split a run into network / loop."""

    def __init__(self, module):
        self.seconds, self.calls, self._start = 0.0, 0, None
        self._hooks = [
            module.register_forward_pre_hook(self._pre),
            module.register_forward_hook(self._post),
        ]

    def _pre(self, *args):
        self._start = time.perf_counter()

    def _post(self, *args):
        self.seconds += time.perf_counter() - self._start
        self.calls += 1

    def reset(self):
        self.seconds, self.calls = 0.0, 0

    def remove(self):
        for h in self._hooks:
            h.remove()


def bench(model: UNetModel, batch: int, steps: int, repeats: int) -> dict:
    pipe = ddpm_pipeline(model)
    op = make_operator("gaussian_blur", model.size)
    x0 = torch.zeros(batch, *model.sample_shape)
    y = op.measure(x0, 0.05, torch.Generator().manual_seed(0))
    fwd = forward_fn(model, batch)

    def ours():
        last_frame(sample(model, n=batch, timesteps=timesteps_for(model, steps, None, "uniform"), seed=0, every=None))

    def theirs():
        pipe(batch_size=batch, generator=torch.Generator().manual_seed(0), num_inference_steps=steps, output_type="np")

    def ours_dps():
        last_frame(
            dps(model, op, y, scale=3.0, timesteps=timesteps_for(model, steps, None, "uniform"), seed=0, every=None)
        )

    forward = median_seconds(fwd, 3)  # warm-up
    forward_times, sample_times = [], {"ours": [], "diffusers": [], "dps": []}
    in_net = {"ours": [], "diffusers": []}
    per_forward = []  # seconds per UNet forward inside our sampling run
    for fn in (ours, theirs, ours_dps):
        fn()  # warm-up
    clock = NetworkClock(model.unet)
    for _ in range(repeats):
        forward_times.append(median_seconds(fwd, 5))
        for k, fn in (("ours", ours), ("diffusers", theirs), ("dps", ours_dps)):
            clock.reset()
            start = time.perf_counter()
            fn()
            sample_times[k].append(time.perf_counter() - start)
            if k in in_net:
                assert clock.calls == steps, (k, clock.calls)
                in_net[k].append(sample_times[k][-1] / clock.seconds)
                if k == "ours":
                    per_forward.append(clock.seconds / steps)
    clock.remove()
    forward = statistics.median(forward_times)
    med = {k: statistics.median(v) for k, v in sample_times.items()}
    out = {
        "batch": batch,
        "steps": steps,
        "forward_s": forward,
        "sample_s": med["ours"],
        "diffusers_s": med["diffusers"],
        "dps_s": med["dps"],
        "overhead": med["ours"] / (steps * forward),
        "vs_diffusers": med["ours"] / med["diffusers"],
        "diffusers_overhead": med["diffusers"] / (steps * forward),
        "dps_step_over_forward": med["dps"] / (steps * forward),
        # the same run split by hooks on the UNet: total / time inside the network (immune to load drifts
        # between a separately timed forward and the run)
        "overhead_in_run": statistics.median(in_net["ours"]),
        "diffusers_overhead_in_run": statistics.median(in_net["diffusers"]),
        "dps_step_over_forward_in_run": med["dps"] / (steps * statistics.median(per_forward)),
    }
    # both loops drive the same module, so the ratio of their in-run splits is ours / diffusers net of the network
    out["vs_diffusers_in_run"] = out["overhead_in_run"] / out["diffusers_overhead_in_run"]
    return out


def markdown(rows: list[dict], loops: list[dict], info: dict) -> str:
    lines = [
        "# Engine benchmark (issue 2)",
        "",
        f"Date: {info['date']}. Hardware: {HARDWARE}; torch {torch.__version__}, {info['threads']} torch thread(s), "
        f"{info['load']}. Model: {info['model']} ({info['params'] / 1e6:.2f} M parameters, 64x64). "
        f"Medians over {info['repeats']} repeats, all in one run (`python bench/bench_engine.py`).",
        "",
        "| batch | steps | 1 forward (s) | our `sample` (s) | diffusers `DDPMPipeline` (s) | sampler overhead "
        "(target <= 1.10) | same, split in-run | ours / diffusers (target <= 1.0) | same, net of load | diffusers overhead "
        "(split in-run) | DPS step / forward (target <= 3.5) | same, vs in-run forward |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch']} | {r['steps']} | {r['forward_s']:.4f} | {r['sample_s']:.3f} | {r['diffusers_s']:.3f} | "
            f"**{r['overhead']:.3f}** | {r['overhead_in_run']:.3f} | **{r['vs_diffusers']:.3f}** | "
            f"{r['vs_diffusers_in_run']:.3f} | "
            f"{r['diffusers_overhead']:.3f} ({r['diffusers_overhead_in_run']:.3f}) | "
            f"**{r['dps_step_over_forward']:.2f}** | {r['dps_step_over_forward_in_run']:.2f} |"
        )
    lines += [
        "",
        "Sampler overhead = run time / (steps x one forward timed on its own); 'split in-run' = run time / time "
        "spent inside the UNet's forward during that very run (forward hooks), which a fluctuating background load "
        "cannot skew; 'net of load' = our split / diffusers' split (both drive the same UNet module, so this is the "
        "ratio of the two runs had the network cost the same in both); the last column divides a DPS step by the "
        "in-run forward time.",
    ]
    lines += [
        "",
        "The bare loop (network replaced by eps = 0): milliseconds per step.",
        "",
        "| batch | steps | ours (ms/step) | diffusers `DDPMScheduler.step` (ms/step) | ours / diffusers |",
        "|---|---|---|---|---|",
    ]
    for r in loops:
        lines.append(
            f"| {r['batch']} | {r['steps']} | {1e3 * r['ours']:.3f} | {1e3 * r['diffusers']:.3f} | "
            f"{r['ours'] / r['diffusers']:.2f} |"
        )
    lines += ["", info.get("notes", ""), ""]
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    p.add_argument("--threads", type=int, default=0, help="0: the rule of diffdemo/threads.py (cores - 1)")
    p.add_argument("--out", default=str(ROOT / "bench" / "RESULTS_engine.md"))
    p.add_argument("--notes", default="")
    args = p.parse_args(argv)

    load = os.getloadavg()[0]
    threads = args.threads or auto_threads()
    torch.set_num_threads(threads)
    model, desc = faces64_model()
    rows, loops = [], []
    for b in args.batches:
        steps = args.steps if b == 1 else max(10, args.steps // 2)
        r = bench(model, b, steps, args.repeats)
        print(r, flush=True)
        rows.append(r)
        lo = loop_overhead(model, b, steps, max(3, args.repeats))
        lo.update(batch=b, steps=steps)
        print(lo, flush=True)
        loops.append(lo)
    info = {
        "date": dt.date.today().isoformat(),
        "threads": threads,
        "load": f"load average {load:.1f} at start (other jobs share the CPU)" if load > 0.5 else "idle CPU",
        "model": desc,
        "params": model.n_params,
        "repeats": args.repeats,
        "python": platform.python_version(),
        "notes": args.notes,
    }
    text = markdown(rows, loops, info)
    Path(args.out).write_text(text)
    print(text)
    return {"rows": rows, "loops": loops, **info}


if __name__ == "__main__":
    main()
