"""Linear measurement operators y = A x + sigma_y n, with A, its adjoint A^T and a seeded ``measure``.

Images are (N, C, H, W) in [-1, 1]; measurements live in the same space (masked pixels are zero), so every
operator can be shown as a picture. ``sigma_y`` is in [-1, 1] units (0.05 here = 0.025 on a [0, 1] scale).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from diffdemo.defaults import BLUR, DROP

OPERATORS = ("gaussian_blur", "box_inpaint", "random_inpaint", "noise")


class Operator:
    """A linear operator; ``A_adjoint`` defaults to the exact vector-Jacobian product of the linear map ``A``."""

    name = "operator"

    @property
    def task(self) -> str:
        """The task whose tuned defaults apply (``defaults.TASK_DEFAULTS`` is keyed by it): the operator's name."""
        return self.name

    def A(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """A^T y via autograd: for a linear map the VJP at any point is exactly A^T."""
        with torch.enable_grad():
            x = torch.zeros_like(y).requires_grad_(True)
            (out,) = torch.autograd.grad(self.A(x), x, grad_outputs=y)
        return out

    def norm_sq(self, like: torch.Tensor, iters: int = 50) -> float:
        """||A||_2^2 on images shaped like ``like``: the top eigenvalue of A^T A by seeded power iteration
        (cached per shape). It converges from below; callers keep a margin. A blur with reflect padding sits a
        little above 1 (~1.03-1.05: its edge pixels count twice)."""
        key = tuple(like.shape[1:])
        cache = self.__dict__.setdefault("_norm_sq", {})
        if key not in cache:
            v = torch.randn(1, *key, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
            top = 0.0
            for _ in range(iters):
                v = v / v.norm()
                w = self.A_adjoint(self.A(v.to(like.device, like.dtype))).double().cpu()
                top = float((v * w).sum())
                v = w
            cache[key] = top
        return cache[key]

    def measure(self, x: torch.Tensor, sigma_y: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """y = A x + sigma_y n, n ~ N(0, I) drawn from ``generator``."""
        y = self.A(x)
        if sigma_y > 0:
            noise = torch.randn(y.shape, generator=generator, dtype=y.dtype, device="cpu").to(y.device)
            y = y + sigma_y * noise
        return y

    def init_estimate(self, y: torch.Tensor) -> torch.Tensor:
        """A measurement-consistent starting image (SDEdit's y_init): y itself unless overridden."""
        return y.clone()

    def describe(self) -> dict:
        return {"operator": self.name}


class Identity(Operator):
    """Plain denoising: A = I."""

    name = "noise"

    def A(self, x):
        return x

    def A_adjoint(self, y):
        return y


def gaussian_kernel(kernel_size: int, std: float) -> torch.Tensor:
    """Normalised 2-D Gaussian kernel, (k, k)."""
    r = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    g = torch.exp(-(r**2) / (2 * std**2))
    k2 = torch.outer(g, g)
    return (k2 / k2.sum()).float()


def default_blur(size: int) -> tuple[int, float]:
    """(kernel_size, std) by image size: defaults.BLUR (13x13, std 2 px) at <= 128 px; DPS's 61x61, std 3.0 scaled
    from 256 px above."""
    if size <= 128:
        return BLUR["kernel_size"], BLUR["std"]
    scale = size / 256
    k = max(3, int(round(61 * scale)) | 1)
    return k, 3.0 * scale


class GaussianBlur(Operator):
    """Convolution with a Gaussian kernel, reflect padding at the border (as DPS's reference code)."""

    name = "gaussian_blur"

    def __init__(self, kernel_size: int = 13, std: float = 2.0):
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        if not std > 0:
            raise ValueError(f"blur std must be > 0, got {std}")
        self.kernel_size, self.std = int(kernel_size), float(std)
        self.kernel = gaussian_kernel(self.kernel_size, self.std)

    def A(self, x):
        c = x.shape[1]
        pad = self.kernel_size // 2
        if pad >= min(x.shape[-2:]):
            raise ValueError(f"blur kernel {self.kernel_size} is too large for a {x.shape[-1]} px image")
        w = self.kernel.to(x.device, x.dtype).expand(c, 1, -1, -1)
        return F.conv2d(F.pad(x, (pad,) * 4, mode="reflect"), w, groups=c)

    def describe(self):
        return {"operator": self.name, "kernel_size": self.kernel_size, "std": self.std}


class MaskOperator(Operator):
    """Inpainting: A = diag(mask), mask 1 where a pixel is kept (self-adjoint)."""

    def __init__(self, mask: torch.Tensor):
        self.mask = mask.float()  # (1, 1, H, W)

    def A(self, x):
        return x * self.mask.to(x.device, x.dtype)

    def A_adjoint(self, y):
        return self.A(y)

    def init_estimate(self, y):
        """Holes filled with the mean of the kept pixels (per channel)."""
        m = self.mask.to(y.device, y.dtype)
        kept = (y * m).sum(dim=(-2, -1), keepdim=True) / m.sum().clamp(min=1)
        return y * m + kept * (1 - m)


BOX_PRESETS = {  # (top, left, height, width) as fractions of the side, for aligned face crops
    "center": (0.25, 0.25, 0.5, 0.5),
    "eyes": (0.30, 0.15, 0.20, 0.70),
    "mouth": (0.62, 0.28, 0.18, 0.44),
}


class BoxInpaint(MaskOperator):
    """A rectangular hole (top, left, height, width in pixels)."""

    name = "box_inpaint"

    def __init__(self, size: int, box: tuple[int, int, int, int] | None = None, preset: str = "center"):
        if box is None:
            if preset not in BOX_PRESETS:
                raise ValueError(f"unknown box preset {preset!r}; choose from {sorted(BOX_PRESETS)}")
            box = tuple(int(round(f * size)) for f in BOX_PRESETS[preset])
        top, left, h, w = (int(v) for v in box)
        if h <= 0 or w <= 0 or top < 0 or left < 0 or top + h > size or left + w > size:
            raise ValueError(f"box {box} does not fit inside a {size}x{size} image")
        mask = torch.ones(1, 1, size, size)
        mask[..., top : top + h, left : left + w] = 0
        super().__init__(mask)
        self.box = (top, left, h, w)

    def describe(self):
        return {"operator": self.name, "box": list(self.box)}


class RandomInpaint(MaskOperator):
    """Each pixel dropped independently with probability ``drop`` (the mask drawn from ``seed``)."""

    name = "random_inpaint"

    def __init__(self, size: int, drop: float = 0.5, seed: int = 0):
        if not 0.0 <= drop < 1.0:
            raise ValueError(f"drop fraction must be in [0, 1), got {drop}")
        g = torch.Generator().manual_seed(int(seed))
        super().__init__((torch.rand(1, 1, size, size, generator=g) >= drop).float())
        self.drop = float(drop)

    def describe(self):
        return {"operator": self.name, "drop": self.drop}


class DrawnMask(MaskOperator):
    """A user-drawn hole: ``hole`` is a boolean (H, W) array, True where pixels are missing. It takes the
    defaults tuned for box inpainting (its ``task``): a painted region is a box hole of another shape."""

    name = "drawn_mask"
    task = "box_inpaint"

    def __init__(self, hole):
        hole = torch.as_tensor(hole, dtype=torch.bool)
        if hole.ndim != 2 or not hole.any():
            raise ValueError("the drawn mask is empty: paint over the region to hide")
        super().__init__((~hole).float()[None, None])

    def describe(self):
        return {"operator": self.name, "hole_fraction": float(1 - self.mask.mean())}


def hole_from_layers(layers: list[np.ndarray], size: int, coverage: float = 0.25) -> np.ndarray:
    """Painted pixels of an image editor's layers (RGBA, any size) -> a boolean (size, size) hole.

    A model pixel is missing when at least ``coverage`` of its area was painted (strokes are drawn on an
    enlarged canvas, so a thin stroke still removes the pixels it crosses)."""
    from PIL import Image

    painted = None
    for layer in layers or []:
        arr = np.asarray(layer)
        if arr.ndim != 3:
            continue
        alpha = arr[..., 3] > 0 if arr.shape[-1] == 4 else arr.max(axis=-1) > 0
        painted = alpha if painted is None else painted | alpha
    if painted is None or not painted.any():
        return np.zeros((size, size), bool)
    h, w = painted.shape
    side = min(h, w)  # the same centred square the image went through
    top, left = (h - side) // 2, (w - side) // 2
    square = Image.fromarray((painted[top : top + side, left : left + side] * 255).astype(np.uint8))
    return np.asarray(square.resize((size, size), Image.BOX), dtype=np.float32) / 255.0 >= coverage


def make_operator(name: str, size: int, **params) -> Operator:
    """Build an operator by name with its parameters (unknown names raise ValueError)."""
    if name == "gaussian_blur":
        k, s = default_blur(size)
        return GaussianBlur(int(params.get("kernel_size") or k), float(params.get("std") or s))
    if name == "box_inpaint":
        return BoxInpaint(size, params.get("box"), params.get("preset") or "center")
    if name == "random_inpaint":
        return RandomInpaint(size, float(params.get("drop", DROP)), int(params.get("mask_seed", 0)))
    if name == "noise":
        return Identity()
    raise ValueError(f"unknown operator {name!r}; choose from {', '.join(OPERATORS)}")


def as_matrix(op: Operator, shape: tuple[int, ...]) -> torch.Tensor:
    """Dense (D, D) matrix of A on images of ``shape`` (C, H, W) -- for small test problems only."""
    d = math.prod(shape)
    eye = torch.eye(d).reshape(d, *shape)
    return op.A(eye).reshape(d, d).T
