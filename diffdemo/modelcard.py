"""Write the embedded model's card: training facts, loss curve, a 16-sample grid and sample statistics.

``python -m diffdemo.modelcard [--model-dir assets/models/faces64] [--out outputs/modelcard] [--update-assets]``
(the shipped card in the model's folder is replaced only with ``--update-assets``)

Statistics (issue: colour casts and memorisation): the per-image mean colour of n samples against the training
set's (mean and spread per channel), and each sample's RMS distance to its nearest training image, compared
with the same distance for held-out test faces (a memorising model sits far below them).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from diffdemo.defaults import FULL_QUALITY
from diffdemo.experiments import run_sampling
from diffdemo.imaging import bundled_images, grid, load_image, save_png, to_tensor
from diffdemo.jsonio import dumps, write_json
from diffdemo.models import load_model
from diffdemo.train import DEFAULT_LR, MODEL_DIR, STATE_FILE, load_faces


def colour_stats(images: torch.Tensor) -> dict:
    """Mean and spread (std across images) of the per-image average RGB colour, on the [0, 255] scale, split
    into brightness (the mean of R, G, B) and chromaticity (each channel's share of R + G + B, in percent).
    A colour cast is a chromaticity shift; a lighter or darker face only moves the brightness."""
    per_image = images.add(1).mul(127.5).mean(dim=(2, 3))  # (N, 3)
    brightness = per_image.mean(1)
    chroma = per_image / per_image.sum(1, keepdim=True).clamp_min(1e-6) * 100
    return {
        "mean_rgb": [round(v, 1) for v in per_image.mean(0).tolist()],
        "std_rgb": [round(v, 1) for v in per_image.std(0).tolist()],
        "brightness": [round(float(brightness.mean()), 1), round(float(brightness.std()), 1)],
        "mean_chroma_pct": [round(v, 2) for v in chroma.mean(0).tolist()],
        "std_chroma_pct": [round(v, 2) for v in chroma.std(0).tolist()],
    }


def nearest_distances(images: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """RMS pixel distance (0..255 scale) from each image to its nearest training image (flips included)."""
    bank = torch.cat([train, train.flip(-1)]).flatten(1)
    d2 = torch.cdist(images.flatten(1).double(), bank.double()) ** 2 / bank.shape[1]
    return d2.min(dim=1).values.sqrt() * 127.5


def colour_dc_report(model, x0: torch.Tensor, ts=(900, 700, 500, 300, 100), seed: int = 0) -> list[dict]:
    """Can the network see the average colour? For faces noised to x_t (eq. 3): R^2 of eps_theta's per-channel
    spatial mean against the true noise's, the same for a predictor from x_t's mean alone, R^2 of eps, and the
    spread of x0_hat's average-colour error (eq. 11, 0..255). R^2_dc ~ 0 means colour casts in the samples."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for t in ts:
        abar = model.schedule.alpha_bar[t].float()
        noise = torch.randn(x0.shape, generator=gen)
        x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        with torch.no_grad():
            eps = model.eps(x_t, torch.full((len(x0),), t)).cpu()
        dc_true, dc_pred = noise.mean((2, 3)), eps.mean((2, 3))
        x0_hat = model.schedule.x0_from_eps(x_t, eps, t)  # eq. 19
        # a reference that sees only x_t's per-channel mean: n_dc ~ (x_t_dc - sqrt(abar) mean x0_dc) / sqrt(1-abar)
        baseline = (x_t.mean((2, 3)) - abar.sqrt() * x0.mean((0, 2, 3))) / (1 - abar).sqrt()
        rows.append(
            {
                "t": t,
                "r2_dc": round(float(1 - ((dc_pred - dc_true) ** 2).mean() / dc_true.var()), 3),
                "r2_dc_from_mean_only": round(float(1 - ((baseline - dc_true) ** 2).mean() / dc_true.var()), 3),
                "r2_eps": round(float(1 - ((eps - noise) ** 2).mean() / noise.var()), 4),
                "x0_hat_colour_error_255": round(float(((x0_hat - x0).mean((2, 3)) * 127.5).std()), 1),
            }
        )
    return rows


def loss_curve_png(history: list, path: Path) -> None:
    """The training loss (step, running MSE) on a log axis, drawn by the one PNG chart renderer."""
    from diffdemo.charts import line_chart_png, pyplot

    steps, losses = zip(*history) if history else ([0], [float("nan")])
    series = [{"name": "running MSE (eps)", "x": list(steps), "y": list(losses)}]
    fig = line_chart_png(
        [{"ylabel": "running MSE (eps)", "series": series, "marker": None}], "faces64 training loss", "step", log_y=(0,)
    )
    fig.savefig(path, dpi=100)
    pyplot().close(fig)


def write_card(model_dir: Path, out_dir: Path, n: int = 64, steps: int = 250, seed: int = 0) -> dict:
    """The card of the model in ``model_dir`` (README.md, samples.png, loss.png, card_stats.json) written to
    ``out_dir`` (the model's own folder only when asked: ``--update-assets``)."""
    model = load_model(str(model_dir), device="cpu")
    out_dir.mkdir(parents=True, exist_ok=True)
    state = json.loads((model_dir / STATE_FILE).read_text()) if (model_dir / STATE_FILE).exists() else {}
    start = time.perf_counter()
    # the card's samples keep the uniform stride of its figures (the poster's setting), whatever the app's default
    # fp32 whatever the machine: the card's samples are the same pictures wherever it is written
    done = run_sampling(model, n=n, steps=steps, seed=seed, spacing=FULL_QUALITY["spacing"], precision="fp32")
    samples = done.frame.x_t.cpu()
    sample_seconds = time.perf_counter() - start
    train = load_faces()
    test = torch.cat([to_tensor(load_image(p, 64)) for name, p in bundled_images().items() if "london" in name])
    d_samples = nearest_distances(samples, train)
    d_test = nearest_distances(test, train)
    stats = {
        "n_samples": n,
        "sampling_steps": steps,
        "seed": seed,
        "samples_colour": colour_stats(samples),
        "training_colour": colour_stats(train),
        "nearest_train_rms_samples": {"median": float(d_samples.median()), "min": float(d_samples.min())},
        "nearest_train_rms_heldout_faces": {"median": float(d_test.median()), "min": float(d_test.min())},
        "sampling_seconds": round(sample_seconds, 1),
        "colour_dc": colour_dc_report(model, train[:48]),
    }
    save_png(grid(samples[:16], nrow=4), out_dir / "samples.png")
    loss_curve_png(state.get("loss_history", []), out_dir / "loss.png")
    write_json(out_dir / "card_stats.json", stats)
    (out_dir / "README.md").write_text(_card_text(model, state, stats))
    return stats


def _dc_rows(rows: list[dict]) -> str:
    return "\n".join(
        f"| {r['t']} | {r['r2_dc']:.3f} | {r['r2_dc_from_mean_only']:.3f} | {r['r2_eps']:.4f} | "
        f"{r['x0_hat_colour_error_255']:.1f} |"
        for r in rows
    )


def _phases(state: dict) -> str:
    """'steps 0-4115: GroupNorm 32 groups, colour-error weight 1; ...' from the phases train.py records."""
    phases = state.get("phases") or [{"from_step": 0, "norm_groups": "?", "dc_weight": 1.0}]
    ends = [p["from_step"] for p in phases[1:]] + [state.get("step", "?")]
    return "; ".join(
        f"steps {p['from_step']}-{end}: GroupNorm {p['norm_groups']} groups, colour-error weight {p['dc_weight']:g}, "
        f"lr {p.get('lr', DEFAULT_LR):g}" + (f" ({p['note']})" if p.get("note") else "")
        for p, end in zip(phases, ends, strict=True)
    )


def _reproduce_lines(state: dict) -> str:
    """One ``python -m diffdemo.train`` line per recipe phase, each resuming where the one before stopped."""
    phases = state.get("phases") or [{"from_step": 0, "norm_groups": 8, "dc_weight": 50.0}]
    ends = [p["from_step"] for p in phases[1:]] + [state.get("step", 8000)]
    return "\n".join(
        f"python -m diffdemo.train --steps {end} --resume --norm-groups {p['norm_groups']} "
        f"--dc-weight {p['dc_weight']:g} --lr {p.get('lr', DEFAULT_LR):g}"
        for p, end in zip(phases, ends, strict=True)
        if end > p["from_step"]
    )


def _card_text(model, state: dict, stats: dict) -> str:
    cfg = model.unet.config
    hours = state.get("seconds", 0) / 3600
    sc, tc = stats["samples_colour"], stats["training_colour"]
    ns, nt = stats["nearest_train_rms_samples"], stats["nearest_train_rms_heldout_faces"]
    return f"""---
license: cc-by-4.0
library_name: diffusers
tags: [ddpm, faces, unconditional-image-generation]
---
# faces64 — the embedded face model of diffdemo

A small DDPM (`UNet2DModel` + `DDPMScheduler`, epsilon prediction, linear betas 1e-4..0.02, T = 1000) trained by
`python -m diffdemo.train` on 234 aligned 64x64 colour face crops, so that the app runs offline on a CPU.

| | |
|---|---|
| architecture | UNet2DModel, channels {list(cfg.block_out_channels)}, {cfg.layers_per_block} layer per block, attention at the lowest resolution (8x8), GroupNorm {cfg.norm_num_groups} groups, {model.n_params / 1e6:.2f} M parameters |
| data | `assets/data/london_faces_train.npz` (234 images, random horizontal flips) |
| optimisation | AdamW, lr by phase below (200 warm-up steps), batch {state.get("batch_size", 32)}, grad-norm clip 1, EMA 0.999, float32 |
| recipe by phase | {_phases(state)} |
| steps trained | {state.get("step", "?")} ({state.get("step", 0) * state.get("batch_size", 32):,} samples seen) |
| final running loss | {state.get("final_loss", float("nan")):.4f} |
| wall time | {hours:.2f} h on {platform.processor() or platform.machine()} (2 CPU cores, no GPU, no AMX) |

![loss](loss.png) ![samples](samples.png)

16 unconditional samples (ancestral DDPM, {stats["sampling_steps"]} strided steps, seed {stats["seed"]}).

## Sample statistics ({stats["n_samples"]} samples)
- Per-image mean colour, RGB on 0..255: samples {sc["mean_rgb"]} (spread {sc["std_rgb"]}); training set {tc["mean_rgb"]} (spread {tc["std_rgb"]}). A colour cast would show as a shifted mean or an inflated spread.
- The same split into brightness and colour: brightness (mean of R, G, B) {sc["brightness"][0]} ± {sc["brightness"][1]} for samples, {tc["brightness"][0]} ± {tc["brightness"][1]} for the training set; chromaticity (each channel's share of R + G + B, %) samples {sc["mean_chroma_pct"]} (spread {sc["std_chroma_pct"]}), training set {tc["mean_chroma_pct"]} (spread {tc["std_chroma_pct"]}). A cast is a chromaticity shift; lighter or darker faces only move the brightness.
- Memorisation: RMS distance (0..255) from each sample to its nearest training image: median {ns["median"]:.1f}, min {ns["min"]:.1f}. For held-out London faces (never trained on): median {nt["median"]:.1f}, min {nt["min"]:.1f}. Samples much closer than held-out faces would mean copying.

- Can the network see the average colour? For 48 training faces noised to x_t, R^2 of eps_theta's per-channel mean against the true noise's (`bench/colour_dc.py`; ~0 means colour casts, a predictor from x_t's mean alone is the reference):

| t | R^2 of the per-channel noise mean | from x_t's mean alone | R^2 of eps | x0_hat mean-colour error (std, 0..255) |
|---|---|---|---|---|
{_dc_rows(stats.get("colour_dc", []))}

## Reproduce
Each line resumes from the one before (`--resume` reads this folder or a local checkpoint in `checkpoints/`):
```
{_reproduce_lines(state)}
python -m diffdemo.modelcard   # regenerates this card, the grid and the curve
```

## Data licence
CC BY 4.0 — Face Research Lab London Set, DeBruine & Jones (2017), doi:10.6084/m9.figshare.5047666.v5; Canada set,
DeBruine & Jones (2017), doi:10.6084/m9.figshare.4220517.v1; Composite faces, DeBruine (2016),
doi:10.6084/m9.figshare.4055130.v1. Crops made from the webmorphR.stim distribution. The photographed people
consented to research and publication use. See `assets/data/SOURCE_README.md`.
"""


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m diffdemo.modelcard", description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", default=str(MODEL_DIR))
    p.add_argument("--out", default="outputs/modelcard", help="folder for the card and its figures")
    p.add_argument(
        "--update-assets", action="store_true", help="write into --model-dir instead (replaces the shipped card)"
    )
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--steps", type=int, default=FULL_QUALITY["steps"])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = Path(args.model_dir) if args.update_assets else Path(args.out)
    stats = write_card(Path(args.model_dir), out, args.n, args.steps, args.seed)
    print(dumps(stats))


if __name__ == "__main__":
    main()
