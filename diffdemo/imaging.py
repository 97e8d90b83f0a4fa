"""Image I/O and the one place where uint8 (H, W, C) pictures meet float (N, C, H, W) tensors in [-1, 1]."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

ROOT = Path(__file__).resolve().parent.parent
IMAGES_DIR = ROOT / "assets" / "images"
MIN_SIDE = 16
MAX_PIXELS = 50_000_000  # refuse decompression bombs before decoding


class ImageError(ValueError):
    """An image that cannot be used (unreadable, too small, too large)."""


def bundled_images() -> dict[str, Path]:
    """The bundled test images (held out of training), name -> path."""
    return {p.stem: p for p in sorted(IMAGES_DIR.glob("*.png"))}


def _to_rgb(img: Image.Image) -> Image.Image:
    """Grayscale, palette and alpha images become RGB (alpha composited on white)."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")


def center_crop_resize(img: Image.Image, size: int) -> Image.Image:
    """Largest centred square, resized to size x size (Lanczos)."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    return img if side == size else img.resize((size, size), Image.LANCZOS)


def load_image(source, size: int) -> np.ndarray:
    """Read a path, bytes, PIL image or array; return uint8 (size, size, 3) RGB, centre-cropped and resized."""
    if isinstance(source, np.ndarray):
        arr = source
        if arr.dtype != np.uint8:
            arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
        img = Image.fromarray(arr if arr.ndim == 2 or arr.shape[-1] in (3, 4) else arr[..., 0])
    elif isinstance(source, Image.Image):
        img = source
    else:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        try:
            data = source if isinstance(source, bytes) else Path(source).read_bytes()
            img = Image.open(io.BytesIO(data))
            img.load()
        except FileNotFoundError as exc:
            raise ImageError(f"no such image file: {source}") from exc
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
            what = "the uploaded data" if isinstance(source, bytes) else str(source)
            raise ImageError(f"{what} is not a readable image (PNG, JPEG, WebP, BMP, GIF, TIFF...)") from exc
    w, h = img.size
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"image is {w}x{h}: each side must be at least {MIN_SIDE} px")
    if w * h > MAX_PIXELS:
        raise ImageError(f"image is {w}x{h}: more than {MAX_PIXELS // 1_000_000} megapixels")
    return np.asarray(center_crop_resize(_to_rgb(img), int(size)), dtype=np.uint8).copy()


def image_side(path) -> int:
    """The shorter side of an image file, read from its header."""
    try:
        with Image.open(path) as img:
            return min(img.size)
    except FileNotFoundError as exc:
        raise ImageError(f"no such image file: {path}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"{path} is not a readable image (PNG, JPEG, WebP, BMP, GIF, TIFF...)") from exc


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (1, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (1, 3, H, W) or (3, H, W) in [-1, 1] -> uint8 (H, W, 3), clipped."""
    if x.ndim == 4:
        x = x[0]
    x = x.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round()
    return x.permute(1, 2, 0).to(torch.uint8).numpy()


def to_unit(x: torch.Tensor) -> np.ndarray:
    """float (1, 3, H, W) in [-1, 1] -> float64 (H, W, 3) in [0, 1] (for metrics and scikit-image)."""
    if x.ndim == 4:
        x = x[0]
    return x.detach().double().cpu().clamp(-1, 1).add(1).div(2).permute(1, 2, 0).numpy()


def from_unit(arr: np.ndarray) -> torch.Tensor:
    """float (H, W, 3) in [0, 1] -> (1, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(arr)).float().permute(2, 0, 1)[None].mul(2).sub(1)


def save_png(x, path) -> Path:
    """Save a tensor in [-1, 1] or a uint8 array as PNG."""
    arr = x if isinstance(x, np.ndarray) else to_uint8(x)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def grid(images: torch.Tensor, nrow: int = 4, pad: int = 2) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> one uint8 picture, ``nrow`` images per row, white gaps."""
    n, _, h, w = images.shape
    rows = (n + nrow - 1) // nrow
    out = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = to_uint8(
            images[i]
        )
    return out
