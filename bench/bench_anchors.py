"""Anchor benchmarks (issue 6): our engine side by side with the reference implementations, in one run.

    python bench/bench_anchors.py [--nfe 25] [--steps 50] [--repeats 3] [--out bench/RESULTS_anchors.md]

1. ``diffdemo.samplers.sample`` vs diffusers' ``DDPMPipeline``: same UNet module, same number of steps.
2. Our DPS vs DeepInverse's ``deepinv.sampling.DPS`` (0.5.0) on the same UNet (wrapped by deepinv's own
   ``DiffusersDenoiserWrapper`` from the same diffusers folder; weights checked equal) and the same measurement
   (Gaussian blur std 2 px, 13x13, reflect padding; sigma_y = 0.05 in [-1, 1] units = 0.025 in deepinv's [0, 1]
   units; every bundled test image at 64x64, one batch): PSNR at equal network evaluations (each one a forward
   + backward through the UNet), and wall time.
3. One Jacobian column by our probe (one forward-mode JVP, ``analysis.jacobian_column``) vs a naive full Jacobian
   (``torch.autograd.functional.jacobian``, one reverse pass per output) for that column. The full Jacobian is
   12288 x 12288 at 64 px (D reverse passes, ~0.6 GB): it is measured at 16x16 (same network, D = 768) and
   extrapolated to 64 px as D x (one measured reverse pass at 64 px) -- said so in the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import HARDWARE, ddpm_pipeline, faces64_model, interleaved  # noqa: E402

from diffdemo import analysis, metrics  # noqa: E402
from diffdemo.imaging import bundled_images, load_image, to_tensor  # noqa: E402
from diffdemo.models import MODELS_DIR, UNetModel  # noqa: E402
from diffdemo.operators import GaussianBlur  # noqa: E402
from diffdemo.restore import timesteps_for  # noqa: E402
from diffdemo.samplers import dps, last_frame, sample  # noqa: E402
from diffdemo.threads import auto_threads  # noqa: E402
from diffdemo.train import export  # noqa: E402

SIGMA_Y = 0.05  # [-1, 1] units


# --- 1. sample vs DDPMPipeline ------------------------------------------------------------------------
def sampler_vs_pipeline(model: UNetModel, steps: int, repeats: int) -> dict:
    pipe = ddpm_pipeline(model)

    def ours():
        last_frame(sample(model, n=1, timesteps=timesteps_for(model, steps, None, "uniform"), seed=0, every=None))

    def theirs():
        pipe(batch_size=1, generator=torch.Generator().manual_seed(0), num_inference_steps=steps, output_type="np")

    med = interleaved({"ours": ours, "diffusers": theirs}, repeats)
    return {"steps": steps, **med, "ratio": med["ours"] / med["diffusers"]}


# --- 2. DPS vs deepinv ----------------------------------------------------------------------------------
def model_folder(model: UNetModel, tmp: Path) -> Path:
    """The diffusers folder deepinv loads: the embedded model's, or an export of these very weights."""
    if (MODELS_DIR / "faces64" / "unet").is_dir() and model.name == "faces64":
        return MODELS_DIR / "faces64"
    export(model.unet, tmp, {"note": "bench_anchors export of the benchmarked weights"})
    return tmp


def deepinv_dps(model: UNetModel, folder: Path, op: GaussianBlur, nfe: int, weight: float):
    """deepinv's DPS on the same UNet; returns (sampler, physics, denoiser). ``num_steps`` = nfe + 1 time points."""
    import deepinv as dinv
    from deepinv.models import DiffusersDenoiserWrapper
    from deepinv.sampling import DPS

    denoiser = DiffusersDenoiserWrapper(mode_id=str(folder), device="cpu")
    ours, theirs = model.unet.state_dict(), denoiser.model.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), "different weights"
    physics = dinv.physics.Blur(
        filter=op.kernel[None, None].clone(),
        padding="reflect",
        noise_model=dinv.physics.GaussianNoise(sigma=SIGMA_Y / 2),  # [0, 1] units
        device="cpu",
    )
    sampler = DPS(denoiser, num_steps=nfe + 1, weight=weight, device="cpu", dtype=torch.float32, rng=torch.Generator())
    return sampler, physics, denoiser


def dps_comparison(model: UNetModel, nfe: int, scales, weights, tmp: Path) -> dict:
    names = list(bundled_images())
    x0 = torch.cat([to_tensor(load_image(p, model.size)) for p in bundled_images().values()])
    op = GaussianBlur(13, 2.0)
    y = op.measure(x0, SIGMA_Y, torch.Generator().manual_seed(0))  # one measurement for both libraries
    folder = model_folder(model, tmp)
    # the same forward operator: deepinv's Blur on [0, 1] images equals ours on [-1, 1] (a normalised kernel)
    _, physics, _ = deepinv_dps(model, folder, op, nfe, 1.0)
    gap = float((physics.A((x0 + 1) / 2) - (op.A(x0) + 1) / 2).abs().max())
    assert gap < 1e-5, f"operators differ by {gap}"
    rows = []
    meas = [metrics.psnr(y[i : i + 1], x0[i : i + 1]) for i in range(len(names))]

    def score(x_hat):
        return [metrics.psnr(x_hat[i : i + 1], x0[i : i + 1]) for i in range(len(names))]

    for s in scales:
        start = time.perf_counter()
        frame = last_frame(
            dps(model, op, y, scale=s, timesteps=timesteps_for(model, nfe, None, "uniform"), seed=0, every=None)
        )
        sec = time.perf_counter() - start
        rows.append(
            {
                "impl": "diffdemo dps",
                "param": f"scale={s:g}",
                "nfe": frame.nfe,
                "seconds": sec,
                "psnr": score(frame.x_t.cpu()),
            }
        )
        print(rows[-1], flush=True)
    for w in weights:
        sampler, physics, denoiser = deepinv_dps(model, folder, op, nfe, w)
        calls = []  # one entry per UNet forward (each on the whole batch)
        hook = denoiser.model.register_forward_hook(lambda *a, calls=calls: calls.append(1))
        start = time.perf_counter()
        x01 = sampler((y + 1) / 2, physics, seed=0)
        sec = time.perf_counter() - start
        hook.remove()
        rows.append(
            {
                "impl": "deepinv DPS",
                "param": f"weight={w:g}",
                "nfe": len(calls),
                "seconds": sec,
                "psnr": score(x01 * 2 - 1),
            }
        )
        print(rows[-1], flush=True)
    # wall time per network evaluation, interleaved (ours, deepinv, ours, ...) so that load drifts hit both
    short = max(2, nfe // 5)
    sampler, physics, _ = deepinv_dps(model, folder, op, short, weights[0])
    med = interleaved(
        {
            "ours": lambda: last_frame(
                dps(
                    model,
                    op,
                    y,
                    scale=scales[0],
                    timesteps=timesteps_for(model, short, None, "uniform"),
                    seed=0,
                    every=None,
                )
            ),
            "deepinv": lambda: sampler((y + 1) / 2, physics, seed=0),
        },
        repeats=3,
        warmup=False,
    )
    timing = {"nfe": short, **med, "ratio": med["ours"] / med["deepinv"]}
    print(timing, flush=True)
    return {"images": names, "psnr_measurement": meas, "rows": rows, "operator_gap": gap, "timing": timing}


# --- 3. probe vs naive full Jacobian ---------------------------------------------------------------------------
def jacobian_comparison(model: UNetModel, t: int = 250) -> dict:
    out = {}
    face = to_tensor(load_image(bundled_images()["london_006_neutral"], 64))
    for size in (16, 64):
        x0 = torch.nn.functional.interpolate(face, size=(size, size), mode="area") if size != 64 else face
        x_t = analysis.state_at(model, x0, t, 0)
        pixel = (size // 2, size // 2)
        analysis.jacobian_column(model, x_t, t, pixel)  # warm-up
        probe_s = statistics.median(
            _timed(lambda x_t=x_t, pixel=pixel: analysis.jacobian_column(model, x_t, t, pixel, channel=0))
            for _ in range(3)
        )
        col = analysis.jacobian_column(model, x_t, t, pixel, channel=0)
        D = x_t[0].numel()
        row = {"size": size, "D": D, "probe_s": probe_s}
        tt = torch.full((1,), t)

        def f(z, tt=tt):
            return model.score(z, tt)

        if size == 16:
            start = time.perf_counter()
            J = torch.autograd.functional.jacobian(f, x_t)  # (1, C, H, W, 1, C, H, W), D reverse passes
            row["naive_s"] = time.perf_counter() - start
            full_col = J.reshape(D, D)[:, pixel[1] * size + pixel[0]].reshape(col.shape)  # channel 0 input
            row["max_abs_diff"] = float((full_col - col).abs().max())
            row["naive_measured"] = True
        else:
            x = x_t.clone().requires_grad_(True)
            with torch.enable_grad():
                out_t = f(x)
                vjp_times = []
                for i in range(3):  # what the naive loop does D times: one reverse pass per output element
                    g = torch.zeros_like(out_t).reshape(-1)
                    g[i] = 1.0
                    start = time.perf_counter()
                    torch.autograd.grad(out_t, x, g.reshape(out_t.shape), retain_graph=True)
                    vjp_times.append(time.perf_counter() - start)
            row["vjp_s"] = statistics.median(vjp_times)
            row["naive_s"] = D * row["vjp_s"]  # + one forward, negligible
            row["naive_measured"] = False
        row["ratio"] = row["naive_s"] / row["probe_s"]
        out[size] = row
        print(row, flush=True)
    return out


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def markdown(s: dict, d: dict, j: dict, info: dict) -> str:
    mean = statistics.mean
    lines = [
        "# Anchor benchmarks (issue 6)",
        "",
        f"Date: {info['date']}. Hardware: {HARDWARE}; torch {torch.__version__}, {info['threads']} torch thread(s), "
        f"{info['load']}. Model: {info['model']}. All rows measured in one run (`python bench/bench_anchors.py`).",
        "",
        "## 1. Unconditional sampling: `diffdemo.samplers.sample` vs diffusers `DDPMPipeline`",
        "",
        "| steps | batch | ours (s) | diffusers (s) | ours / diffusers |",
        "|---|---|---|---|---|",
        f"| {s['steps']} | 1 | {s['ours']:.2f} | {s['diffusers']:.2f} | **{s['ratio']:.3f}** |",
        "",
        f"Medians of {info['repeats']} interleaved repeats, same UNet module, same number of network evaluations.",
        "",
        "## 2. DPS: diffdemo vs DeepInverse 0.5.0, Gaussian deblurring (13x13, std 2 px, sigma_y = 0.05 in [-1, 1])",
        "",
        f"{len(d['images'])} bundled test images at 64x64 in one batch; the same y for both; measurement PSNR "
        f"{mean(d['psnr_measurement']):.2f} dB. NFE = network evaluations per image (each a forward + backward).",
        "",
        "| implementation | parameter | NFE | PSNR mean (dB) | PSNR min..max | wall time, whole batch (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in d["rows"]:
        lines.append(
            f"| {r['impl']} | {r['param']} | {r['nfe']} | {mean(r['psnr']):.2f} | {min(r['psnr']):.2f} to "
            f"{max(r['psnr']):.2f} | {r['seconds']:.1f} |"
        )
    ours = [r for r in d["rows"] if r["impl"].startswith("diffdemo")]
    theirs = [r for r in d["rows"] if r["impl"].startswith("deepinv")]
    if ours and theirs:
        lines += [
            "",
            f"Wall time ours / deepinv (first setting of each): **{ours[0]['seconds'] / theirs[0]['seconds']:.3f}**; "
            f"best mean PSNR ours {max(mean(r['psnr']) for r in ours):.2f} dB vs deepinv "
            f"{max(mean(r['psnr']) for r in theirs):.2f} dB.",
        ]
    tm = d["timing"]
    lines += [
        "",
        f"Wall time per run of {tm['nfe']} NFE on the batch, medians of 3 interleaved repeats: ours {tm['ours']:.2f} s, "
        f"deepinv {tm['deepinv']:.2f} s, ours / deepinv = **{tm['ratio']:.3f}**.",
    ]
    lines += [
        "",
        "## 3. One Jacobian column: our probe (one JVP) vs a naive full Jacobian (`torch.autograd.functional.jacobian`)",
        "",
        "| image | D | probe, 1 JVP (s) | naive full Jacobian (s) | naive / probe | how |",
        "|---|---|---|---|---|---|",
    ]
    for size, r in j.items():
        how = (
            f"measured; the probe's column equals the full Jacobian's to {r['max_abs_diff']:.1e}"
            if r["naive_measured"]
            else f"extrapolated: D x one reverse pass ({r['vjp_s']:.3f} s, measured)"
        )
        lines.append(
            f"| {size}x{size} | {r['D']} | {r['probe_s']:.3f} | {r['naive_s']:.1f} | **{r['ratio']:.0f}** | {how} |"
        )
    lines += ["", info.get("notes", ""), ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=50, help="sampling steps for part 1")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--nfe", type=int, default=25, help="network evaluations per DPS run (part 2)")
    p.add_argument("--scales", type=float, nargs="+", default=[3.0], help="our DPS scales")
    p.add_argument("--weights", type=float, nargs="+", default=[1.0], help="deepinv DPS weights")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--skip", nargs="*", default=[], choices=["sample", "dps", "jacobian"])
    p.add_argument("--out", default=str(ROOT / "bench" / "RESULTS_anchors.md"))
    p.add_argument("--notes", default="")
    args = p.parse_args(argv)
    load = os.getloadavg()[0]
    threads = args.threads or auto_threads()
    torch.set_num_threads(threads)
    model, desc = faces64_model()
    s = sampler_vs_pipeline(model, args.steps, args.repeats) if "sample" not in args.skip else None
    print(s, flush=True)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        d = dps_comparison(model, args.nfe, args.scales, args.weights, Path(tmp)) if "dps" not in args.skip else None
    j = jacobian_comparison(model) if "jacobian" not in args.skip else None
    info = {
        "date": dt.date.today().isoformat(),
        "threads": threads,
        "load": f"load average {load:.1f} at start (other jobs share the CPU)" if load > 0.5 else "idle CPU",
        "model": desc,
        "repeats": args.repeats,
        "notes": args.notes,
    }
    if s and d and j:
        text = markdown(s, d, j, info)
        Path(args.out).write_text(text)
        print(text)


if __name__ == "__main__":
    main()
