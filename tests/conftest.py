"""Shared fixtures: tiny seeded UNets (fast on CPU), an exact Gaussian prior, a bundled face image."""

from __future__ import annotations

import json

import pytest
import torch

from diffdemo.imaging import bundled_images, load_image, to_tensor
from diffdemo.models import GaussianPrior, UNetModel
from diffdemo.train import export, load_faces, scheduler_config


def strict_loads(text: str):
    """json.loads that rejects NaN, Infinity and -Infinity, as a strict parser (a browser's JSON.parse) does."""

    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def make_tiny_unet(size: int = 16, seed: int = 0):
    """A 2-level UNet2DModel (~50k parameters) with seeded random weights."""
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=size,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
        attention_head_dim=8,
    )


@pytest.fixture(scope="session")
def tiny_model() -> UNetModel:
    """A random tiny UNet on 16x16 images with the faces schedule (linear betas, T=1000), on the CPU."""
    return UNetModel(make_tiny_unet(16), scheduler_config(), name="tiny", device="cpu")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The tiny UNet saved in DDPMPipeline layout (what load_model / the app / the CLI read)."""
    out = tmp_path_factory.mktemp("tiny_model")
    export(make_tiny_unet(16), out, {"step": 0})
    return out


@pytest.fixture(scope="session")
def faces8() -> torch.Tensor:
    """The training faces downsampled to 8x8 (N, 3, 8, 8) in [-1, 1]."""
    return torch.nn.functional.avg_pool2d(load_faces(), 8)


@pytest.fixture(scope="session")
def gaussian_prior(faces8) -> GaussianPrior:
    """A Gaussian prior fitted by PCA on 8x8 faces (D = 192): exact score, Jacobian and posterior."""
    return GaussianPrior.fit(faces8, rank=40, floor=1e-3)


@pytest.fixture(scope="session")
def face64() -> torch.Tensor:
    """A held-out test face at 64x64, (1, 3, 64, 64) in [-1, 1]."""
    return to_tensor(load_image(bundled_images()["london_006_neutral"], 64))
