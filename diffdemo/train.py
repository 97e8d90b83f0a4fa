"""Train the embedded ``faces64`` model: the DDPM epsilon objective ||eps - eps_theta(x_t, t)||^2 (Ho et al. 2020, eq. 14),
with the error's per-channel spatial mean (the average colour) counted ``--dc-weight`` times (see ``dc_loss``).

``python -m diffdemo.train --steps 12000 --resume --out outputs/faces64`` continues from the fullest state it finds:
a local checkpoint (``checkpoints/faces64/state.pt``, optimizer included), else the model in ``--out``, else the
committed model in ``assets/models/faces64`` (EMA weights, step count and loss history from ``training_state.json``).
``--out`` defaults to the committed model's folder: the embedded model is retrained in place only when asked.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from diffdemo.jsonio import dumps, write_json
from diffdemo.schedule import Schedule

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "assets" / "data" / "london_faces_train.npz"
MODEL_DIR = ROOT / "assets" / "models" / "faces64"
DEFAULT_LR = 3e-4  # AdamW after the warm-up; phases recorded before lr was tracked used it
CKPT_DIR = ROOT / "checkpoints" / "faces64"
STATE_FILE = "training_state.json"


def build_unet(sample_size: int = 64, channels: tuple[int, ...] = (32, 64, 128, 128), norm_groups: int = 8):
    """The faces64 architecture: diffusers UNet2DModel, one ResNet layer per block, attention at the lowest resolution.

    ``norm_groups``: GroupNorm groups. With as many groups as the first block has channels (32 on 32, which
    faces64 up to step 4,115 used) every group is one channel: instance normalisation, which erases each
    channel's spatial mean. The network then cannot see the image's average colour, and samples came out with
    strong global colour casts (measured: bench/RESULTS_faces.md). 8 groups keep 4+ channels per group, as the
    DDPM reference models do (32 groups on 128 channels).
    """
    from diffusers import UNet2DModel

    n = len(channels)
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=channels,
        down_block_types=("DownBlock2D",) * (n - 1) + ("AttnDownBlock2D",),
        up_block_types=("AttnUpBlock2D",) + ("UpBlock2D",) * (n - 1),
        attention_head_dim=32,
        norm_num_groups=min(norm_groups, channels[0]),
    )


def dc_loss(pred: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the per-channel spatial means of eps_theta against those of eps.

    The plain MSE already contains this term once, but at 64x64 it is a small part of the loss
    (bench/RESULTS_faces.md), so the network learns the average colour last; yet at high t every unit of error in it is amplified by 1/sqrt(abar_t) in x0_hat
    and shows as a colour cast in the samples. Adding (w - 1) times this term counts it w times. The minimiser
    is unchanged: the mean of E[eps | x_t] is E[mean(eps) | x_t], which minimises both terms.
    """
    return F.mse_loss(pred.mean((2, 3)), noise.mean((2, 3)))


def scheduler_config() -> dict:
    """The DDPMScheduler config every faces model here uses: linear betas 1e-4..0.02, T=1000, epsilon."""
    return dict(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        prediction_type="epsilon",
        clip_sample=True,
        variance_type="fixed_small",
    )


def load_faces(path: Path = DATA, key: str = "images64") -> torch.Tensor:
    """Training images as float32 (N, 3, H, W) in [-1, 1]."""
    with np.load(path) as d:
        imgs = d[key]
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).contiguous()


def export(unet, out_dir: Path, state: dict) -> None:
    """Save a diffusers DDPMPipeline-layout folder (unet/, scheduler/, model_index.json) plus the training state."""
    from diffusers import DDPMPipeline, DDPMScheduler

    out_dir.mkdir(parents=True, exist_ok=True)
    pipe = DDPMPipeline(unet=unet, scheduler=DDPMScheduler(**scheduler_config()))
    pipe.save_pretrained(out_dir, safe_serialization=True)
    write_json(out_dir / STATE_FILE, state)


def _ema_update(ema, model, decay: float) -> None:
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.lerp_(pm, 1.0 - decay)


def _load_start(args, model, ema, opt) -> dict:
    """Restore the fullest state available; return the bookkeeping dict (step, losses, seconds)."""
    state = {"step": 0, "loss_history": [], "seconds": 0.0, "batch_size": args.batch_size}
    ckpt = Path(args.ckpt_dir) / "state.pt"
    out_dir = Path(args.out)
    if not args.resume:
        return state
    if ckpt.exists():
        blob = torch.load(ckpt, map_location="cpu", weights_only=True)
        model.load_state_dict(blob["model"])
        ema.load_state_dict(blob["ema"])
        opt.load_state_dict(blob["opt"])
        state.update(json.loads(blob["state_json"]))
        print(f"resumed from local checkpoint {ckpt} at step {state['step']}")
    elif (out_dir / "unet").exists() or (MODEL_DIR / "unet").exists():
        from diffusers import UNet2DModel

        # a fresh --out folder starts from the shipped model (which stays as committed)
        out_dir = out_dir if (out_dir / "unet").exists() else MODEL_DIR
        committed = UNet2DModel.from_pretrained(out_dir / "unet", use_safetensors=True)
        # Only EMA weights are shipped: restart the raw weights from them (optimizer moments start afresh).
        model.load_state_dict(committed.state_dict())
        ema.load_state_dict(committed.state_dict())
        if (out_dir / STATE_FILE).exists():
            state.update(json.loads((out_dir / STATE_FILE).read_text()))
        print(f"resumed from committed model {out_dir} at step {state['step']} (fresh optimizer state)")
    else:
        print("nothing to resume from: starting from scratch")
    return state


def train(args) -> dict:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    data = load_faces(Path(args.data))
    schedule = Schedule.linear()
    abar = schedule.alpha_bar.float()
    # channels_last: faster convolutions on CPUs; bf16 only pays off with AMX (bench/RESULTS_engine.md)
    model = build_unet(norm_groups=args.norm_groups).to(memory_format=torch.channels_last)
    ema = build_unet(norm_groups=args.norm_groups)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    state = _load_start(args, model, ema, opt)
    _record_phase(state, args)
    start_step = state["step"]
    if start_step >= args.steps:
        print(f"already at step {start_step} >= {args.steps}; nothing to do")
        return state
    gen = torch.Generator().manual_seed(args.seed + start_step)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"faces64: {n_params / 1e6:.2f} M parameters, {len(data)} images, batch {args.batch_size}")

    model.train()
    stop = {"requested": False}

    def request_stop(signum, frame):  # SIGTERM / Ctrl-C: finish this step, save, export, exit cleanly
        stop["requested"] = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)
    t_begin = time.time()
    deadline = t_begin + 60 * args.max_minutes if args.max_minutes else math.inf
    running = None
    bar = tqdm(range(start_step, args.steps), initial=start_step, total=args.steps, desc="train", mininterval=5)
    step = start_step
    for step in bar:
        x_t, t, noise = _noised_batch(data, abar, args.batch_size, gen)
        loss, lr = _optimisation_step(model, opt, args, step, x_t, t, noise)
        _ema_update(ema, model, min(args.ema_decay, (1 + step) / (10 + step)))

        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        bar.set_postfix(loss=f"{running:.4f}", lr=f"{lr:.1e}")
        done = step + 1
        if done % 50 == 0:
            state["loss_history"].append([done, round(running, 5)])
        last = done == args.steps or time.time() > deadline or stop["requested"]
        if done % args.save_every == 0 or last:
            state.update(step=done, seconds=state["seconds"] + time.time() - t_begin, final_loss=running)
            t_begin = time.time()
            _save_checkpoint(args, model, ema, opt, state)
        if done % args.export_every == 0 or last:
            export(ema, Path(args.out), state)
        if last:
            break
    bar.close()
    print(dumps({"step": state["step"], "final_loss": state.get("final_loss"), "seconds": state["seconds"]}))
    return state


def _noised_batch(data: torch.Tensor, abar: torch.Tensor, batch_size: int, gen: torch.Generator):
    """One training batch (x_t, t, eps): random faces, half flipped left-right, noised to uniform t by eq. 3."""
    idx = torch.randint(len(data), (batch_size,), generator=gen)
    x0 = data[idx].contiguous(memory_format=torch.channels_last)
    flip = torch.rand(batch_size, generator=gen) < 0.5
    x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
    t = torch.randint(abar.shape[0], (batch_size,), generator=gen)
    noise = torch.randn(x0.shape, generator=gen).contiguous(memory_format=torch.channels_last)
    a = abar[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise, t, noise


def _optimisation_step(model, opt, args, step: int, x_t, t, noise) -> tuple[torch.Tensor, float]:
    """One AdamW step on ||eps - eps_theta(x_t, t)||^2 (Ho et al. eq. 14) plus the colour term (``dc_loss``), after
    a linear learning-rate warm-up, gradients clipped to norm 1; returns (the plain MSE, the learning rate)."""
    lr = args.lr * min(1.0, (step + 1) / args.warmup)
    for g in opt.param_groups:
        g["lr"] = lr
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
        pred = model(x_t, t).sample
    loss = F.mse_loss(pred.float(), noise)
    objective = loss + (args.dc_weight - 1) * dc_loss(pred.float(), noise)
    opt.zero_grad(set_to_none=True)
    objective.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss, lr


def _record_phase(state: dict, args) -> None:
    """Append the recipe (GroupNorm groups, colour-error weight, learning rate) to state["phases"] when it
    changes on resume (phases recorded before the lr was tracked ran at the default 3e-4)."""
    recipe = {"norm_groups": args.norm_groups, "dc_weight": args.dc_weight, "lr": args.lr}
    phases = state.setdefault("phases", [])
    if not phases or {k: phases[-1].get(k, DEFAULT_LR if k == "lr" else None) for k in recipe} != recipe:
        phases.append({"from_step": state["step"], **recipe})


def _save_checkpoint(args, model, ema, opt, state: dict) -> None:
    ckpt_dir = Path(args.ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    blob = {
        "model": model.state_dict(),
        "ema": ema.state_dict(),
        "opt": opt.state_dict(),
        "state_json": dumps(state),
    }
    tmp = ckpt_dir / "state.pt.tmp"
    torch.save(blob, tmp)
    tmp.replace(ckpt_dir / "state.pt")  # atomic: a kill mid-save never corrupts the checkpoint


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m diffdemo.train", description=__doc__)
    p.add_argument("--steps", type=int, default=8000, help="total optimisation steps to reach (default 8000)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=DEFAULT_LR, help="AdamW learning rate after the warm-up")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument(
        "--dc-weight",
        type=float,
        default=50.0,
        help="how many times the error of the per-channel mean (average colour) counts in the loss (1 = plain MSE)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--norm-groups",
        type=int,
        default=8,
        help="GroupNorm groups (8; 32 on 32 channels is instance norm and loses colour). Resuming from weights "
        "trained with another value warm-starts from them: GroupNorm's parameters do not depend on it",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast: faster on CPUs with AMX, slower without")
    p.add_argument("--resume", action="store_true", help="continue from the local checkpoint or the committed model")
    p.add_argument("--max-minutes", type=float, default=0, help="stop (and save) after this many minutes; 0 = no limit")
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--export-every", type=int, default=500)
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--out", default=str(MODEL_DIR))
    p.add_argument("--ckpt-dir", default=str(CKPT_DIR))
    return p.parse_args(argv)


def main(argv=None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
