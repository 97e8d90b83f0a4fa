"""Classical restorations of the same measurement, through scikit-image: the yardstick for the diffusion methods.

Deblurring: Wiener (fixed balance, or unsupervised), Richardson-Lucy, total variation (proximal gradient with
scikit-image's TV denoiser as the proximal map). Inpainting: biharmonic. Tensors in [-1, 1] in and out, one
image at a time: a batch of several is refused (call once per image).
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.restoration import (
    denoise_tv_chambolle,
    inpaint_biharmonic,
    richardson_lucy,
    unsupervised_wiener,
    wiener,
)

from diffdemo.errors import InvalidParameter
from diffdemo.imaging import from_unit, to_unit
from diffdemo.metrics import one_image
from diffdemo.operators import GaussianBlur, Identity, MaskOperator, Operator

BASELINES = ("wiener", "richardson_lucy", "tv", "biharmonic")
DEBLUR_BASELINES = ("wiener", "richardson_lucy", "tv")


def _unit(y: torch.Tensor) -> np.ndarray:
    """Measurement in [0, 1] without clipping away its noise (skimage's deconvolvers work on floats)."""
    return one_image(y, "a classical baseline")[0].detach().double().cpu().add(1).div(2).permute(1, 2, 0).numpy()


def _per_channel(fn, img: np.ndarray, pad: int = 0) -> np.ndarray:
    """Apply fn to each channel; reflect-pad first (as the operator does) so FFT / zero borders do no harm."""
    if pad:
        img = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    out = np.stack([fn(img[..., c]) for c in range(img.shape[-1])], axis=-1)
    return out[pad:-pad, pad:-pad] if pad else out


def _require(op: Operator, kind, method: str):
    if not isinstance(op, kind):
        raise InvalidParameter(
            f"{method} restores {'blurred' if kind is GaussianBlur else 'masked'} images only, "
            f"not the '{op.name}' operator"
        )


def wiener_deconvolution(y: torch.Tensor, op: GaussianBlur, balance: float | None = 0.01) -> torch.Tensor:
    """Wiener-Hunt deconvolution; ``balance=None`` estimates it (unsupervised Gibbs sampler, seeded)."""
    _require(op, GaussianBlur, "wiener")
    psf = op.kernel.double().numpy()
    img = _unit(y)
    if balance is None:
        rng = np.random.default_rng(0)
        out = _per_channel(lambda c: unsupervised_wiener(c, psf, clip=False, rng=rng)[0], img, op.kernel_size)
    else:
        out = _per_channel(lambda c: wiener(c, psf, balance, clip=False), img, op.kernel_size)
    return from_unit(np.clip(out, 0, 1))


def richardson_lucy_deconvolution(y: torch.Tensor, op: GaussianBlur, num_iter: int = 30) -> torch.Tensor:
    """Richardson-Lucy (1972) multiplicative deconvolution."""
    _require(op, GaussianBlur, "richardson_lucy")
    psf = op.kernel.double().numpy()
    img = np.clip(_unit(y), 1e-4, 1)
    out = _per_channel(lambda c: richardson_lucy(c, psf, num_iter=num_iter, clip=False), img, op.kernel_size)
    return from_unit(np.clip(out, 0, 1))


def tv_restoration(y: torch.Tensor, op: Operator, weight: float = 0.02, num_iter: int = 60) -> torch.Tensor:
    """min_x 1/2 ||A x - y||^2 + weight TV(x) by proximal gradient (ISTA, step 1 since ||A|| <= 1)."""
    x = op.init_estimate(one_image(y, "a classical baseline")).double()
    y = y.double()
    for _ in range(num_iter):
        z = x - op.A_adjoint(op.A(x) - y)
        x = from_unit(denoise_tv_chambolle(to_unit(z.float()), weight=weight, channel_axis=-1)).double()
    return x.float()


def biharmonic_inpainting(y: torch.Tensor, op: MaskOperator) -> torch.Tensor:
    """Biharmonic inpainting of the holes (Damelin & Hoang 2018)."""
    _require(op, MaskOperator, "biharmonic")
    hole = op.mask[0, 0].numpy() < 0.5
    return from_unit(np.clip(inpaint_biharmonic(np.clip(_unit(y), 0, 1), hole, channel_axis=-1), 0, 1))


def applicable(op: Operator) -> tuple[str, ...]:
    """The baselines that make sense for this operator."""
    if isinstance(op, GaussianBlur):
        return DEBLUR_BASELINES
    if isinstance(op, MaskOperator):
        return ("tv", "biharmonic")
    if isinstance(op, Identity):
        return ("tv",)
    return ()


def restore_baseline(method: str, y: torch.Tensor, op: Operator, **params) -> torch.Tensor:
    """Dispatch a classical method by name."""
    if method == "wiener":
        return wiener_deconvolution(y, op, params.get("balance", 0.01))
    if method == "richardson_lucy":
        return richardson_lucy_deconvolution(y, op, int(params.get("num_iter", 30)))
    if method == "tv":
        return tv_restoration(y, op, float(params.get("weight", 0.02)), int(params.get("num_iter", 60)))
    if method == "biharmonic":
        return biharmonic_inpainting(y, op)
    raise ValueError(f"unknown baseline {method!r}; choose from {', '.join(BASELINES)}")
