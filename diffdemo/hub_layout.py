"""The architecture and folder layout of the poster's 256x256 hub model ``google/ddpm-celebahq-256``, rebuilt
with random weights, so its loading path and its cost can be proved without a network.

The config is the repository's own ``unet/config.json`` (DDPM's CelebA-HQ network: six levels, 128-512
channels, self-attention at 16x16) and its ``scheduler/scheduler_config.json`` (linear betas 1e-4..0.02,
T = 1000). ``widths`` shrinks the channels for tests; the block types and layout stay the same.
"""

from __future__ import annotations

from pathlib import Path

import torch

from diffdemo.jsonio import write_json

CELEBAHQ_256_ID = "google/ddpm-celebahq-256"
CELEBAHQ_256_UNET = {
    "sample_size": 256,
    "in_channels": 3,
    "out_channels": 3,
    "center_input_sample": False,
    "time_embedding_type": "positional",
    "freq_shift": 1,
    "flip_sin_to_cos": False,
    "down_block_types": [
        "DownBlock2D",
        "DownBlock2D",
        "DownBlock2D",
        "DownBlock2D",
        "AttnDownBlock2D",
        "DownBlock2D",
    ],
    "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"],
    "block_out_channels": [128, 128, 256, 256, 512, 512],
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "downsample_padding": 0,
    "act_fn": "silu",
    "attention_head_dim": None,
    "norm_num_groups": 32,
    "norm_eps": 1e-06,
}
CELEBAHQ_256_SCHEDULER = {
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "num_train_timesteps": 1000,
    "clip_sample": True,
    "variance_type": "fixed_small",
}


def celebahq_unet(
    widths: tuple[int, ...] | None = None, sample_size: int = 256, norm_groups: int | None = None, seed=0
):
    """A ``UNet2DModel`` with google/ddpm-celebahq-256's layout and seeded random weights; ``widths`` (six
    channel counts) shrinks it."""
    from diffusers import UNet2DModel

    config = dict(CELEBAHQ_256_UNET, sample_size=sample_size)
    if widths is not None:
        config["block_out_channels"] = list(widths)
        config["norm_num_groups"] = norm_groups or min(widths)
    torch.manual_seed(seed)
    return UNet2DModel(**config)


def save_pipeline_folder(unet, out: Path, weights: str = "safetensors") -> Path:
    """Write the hub repository's layout: model_index.json, unet/ (config + weights), scheduler/.

    ``weights``: "safetensors" or "bin" (only ``unet/diffusion_pytorch_model.bin``, a plain state-dict pickle,
    as the repository first shipped it)."""
    from diffusers import DDPMScheduler

    out = Path(out)
    (out / "unet").mkdir(parents=True, exist_ok=True)
    if weights == "safetensors":
        unet.save_pretrained(out / "unet", safe_serialization=True)
    elif weights == "bin":
        unet.save_config(out / "unet")
        torch.save(unet.state_dict(), out / "unet" / "diffusion_pytorch_model.bin")
    else:
        raise ValueError(f"weights must be 'safetensors' or 'bin', got {weights!r}")
    DDPMScheduler(**CELEBAHQ_256_SCHEDULER).save_pretrained(out / "scheduler")
    index = {
        "_class_name": "DDPMPipeline",
        "_diffusers_version": "0.0.4",
        "scheduler": ["diffusers", "DDPMScheduler"],
        "unet": ["diffusers", "UNet2DModel"],
    }
    write_json(out / "model_index.json", index, indent=2)
    return out
