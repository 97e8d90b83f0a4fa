"""Image I/O and the one place where uint8 (H, W, C) pictures meet float (N, C, H, W) tensors in [-1, 1].

Every picture that enters, whatever its mode (8/16-bit gray, gray + alpha, RGB, RGBA, palette, CMYK, EXIF
orientation), becomes RGB here, and its size is checked from its header before any pixel is decoded (Pillow's
limit is set on import). torch is imported only by the functions that make tensors, so the app can check
uploads without loading the engine.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from diffdemo.errors import DiffdemoError

if TYPE_CHECKING:
    import torch

ROOT = Path(__file__).resolve().parent.parent
IMAGES_DIR = ROOT / "assets" / "images"
MIN_SIDE = 16
MAX_PIXELS = 50_000_000  # refuse decompression bombs before decoding
# Pillow raises DecompressionBombError past twice its limit as soon as a header is read (Image.open), so a bomb
# never reaches the decoder, whichever code opens it (gradio's image editor included); check_size then
# refuses anything past MAX_PIXELS itself.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
TOO_LARGE = f"more than {MAX_PIXELS // 1_000_000} megapixels"


class ImageError(DiffdemoError, ValueError):
    """An image that cannot be used (unreadable, too small, too large)."""


def bundled_images() -> dict[str, Path]:
    """The bundled test images (held out of training), name -> path."""
    return {p.stem: p for p in sorted(IMAGES_DIR.glob("*.png"))}


def check_size(img: Image.Image, label: str = "the image") -> Image.Image:
    """Refuse pictures too small to work on or too large to decode, from the header alone."""
    w, h = img.size
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"{label} is {w}x{h}: each side must be at least {MIN_SIDE} px")
    if w * h > MAX_PIXELS:
        raise ImageError(f"{label} is {w}x{h}: {TOO_LARGE}")
    return img


def open_image(source, label: str = "the image") -> Image.Image:
    """Open a path or bytes, check its size from the header, then decode it (bombs are refused undecoded).

    Messages name ``label``, never a server path, and carry no library's exception text."""
    try:  # reads the header only; Pillow refuses past twice its limit, check_size past MAX_PIXELS
        img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except FileNotFoundError:
        raise ImageError(f"{label}: no such image file") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{label} is {TOO_LARGE}: refused before decoding") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ImageError(f"{label} is not a readable image (PNG, JPEG, WebP, BMP, GIF, TIFF...)") from None
    try:
        check_size(img, label)
    except ImageError:
        img.close()
        raise
    try:
        img.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise ImageError(f"{label} is not a readable image (truncated or corrupt)") from None
    return img


def check_header(source, label: str = "the image") -> tuple[int, int]:
    """Width and height from the header of a path or bytes, refused past MAX_PIXELS; nothing is decoded."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            w, h = img.size
    except Image.DecompressionBombError:
        raise ImageError(f"{label} is {TOO_LARGE}: refused before decoding") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ImageError(f"{label} is not a readable image (PNG, JPEG, WebP, BMP, GIF, TIFF...)") from None
    if w * h > MAX_PIXELS:
        raise ImageError(f"{label} is {w}x{h}: {TOO_LARGE}")
    return w, h


def to_rgb(img: Image.Image) -> Image.Image:
    """Any mode -> 8-bit RGB: EXIF orientation applied; 16-bit and 32-bit gray scaled to 8 bits (a plain
    convert would clip them to white); alpha (and palette transparency) composited on white; CMYK converted."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode == "I" and arr.max(initial=0) <= 255:  # 8-bit data stored as 32-bit
            scale = 1.0
        else:
            scale = 255.0 / 65535.0
        img = Image.fromarray(np.clip(np.round(arr * scale), 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if np.nanmax(arr, initial=0) <= 1.0 else 1.0  # float images in [0, 1] or in 0..255
        img = Image.fromarray(np.clip(np.round(np.nan_to_num(arr) * scale), 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode in ("P", "L", "RGB") and "transparency" in img.info):
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


def load_image(source, size: int, label: str | None = None) -> np.ndarray:
    """Read a path, bytes, PIL image or array; return uint8 (size, size, 3) RGB, centre-cropped and resized.

    ``label`` names the picture in error messages (default: the path as given, or "the image" for data)."""
    if label is None:
        label = str(source) if isinstance(source, (str, Path)) else "the image"
    if isinstance(source, np.ndarray):
        arr = source
        if arr.dtype != np.uint8:
            arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
        img = Image.fromarray(arr if arr.ndim == 2 or arr.shape[-1] in (3, 4) else arr[..., 0])
    elif isinstance(source, Image.Image):
        img = source
    else:
        img = open_image(source, label)
    check_size(img, label)
    return np.asarray(center_crop_resize(to_rgb(img), int(size)), dtype=np.uint8).copy()


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
    import torch

    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (1, 3, H, W) or (3, H, W) in [-1, 1] -> uint8 (H, W, 3), clipped."""
    import torch

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
    import torch

    return torch.from_numpy(np.ascontiguousarray(arr)).float().permute(2, 0, 1)[None].mul(2).sub(1)


def save_png(x, path) -> Path:
    """Save a tensor in [-1, 1] or a uint8 array as PNG."""
    arr = x if isinstance(x, np.ndarray) else to_uint8(x)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


ENLARGED_PX = 512  # downloads: each picture also enlarged to about this size, for a slide


def zoom_factor(side: int, size: int) -> int:
    """The whole factor that enlarges ``side`` px to ``size`` px or just past it (at least 1)."""
    return max(1, -(-int(size) // int(side)))


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """A uint8 (H, W, C) picture enlarged ``factor`` times by nearest neighbour: each pixel an f x f block."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def save_pngs(x, path) -> list[Path]:
    """Save a picture as PNG and, where it is smaller than ENLARGED_PX, beside it ``<name>_512px.png``: the same
    picture enlarged by a whole factor with nearest neighbour (no smoothing), large enough for a slide."""
    arr = x if isinstance(x, np.ndarray) else to_uint8(x)
    path = Path(path)
    paths = [save_png(arr, path)]
    side = max(arr.shape[:2])
    if side < ENLARGED_PX:
        paths.append(
            save_png(enlarge(arr, zoom_factor(side, ENLARGED_PX)), path.with_name(f"{path.stem}_{ENLARGED_PX}px.png"))
        )
    return paths


def tile(pictures, ncol: int | None = None, pad: int = 4) -> np.ndarray:
    """Equal-size uint8 (H, W, 3) pictures side by side, rows of ``ncol`` (default: one row), white gaps."""
    n = len(pictures)
    ncol = n if ncol is None else max(1, ncol)
    rows = (n + ncol - 1) // ncol
    h, w = pictures[0].shape[:2]
    out = np.full((rows * (h + pad) + pad, ncol * (w + pad) + pad, 3), 255, np.uint8)
    for i, im in enumerate(pictures):
        r, c = divmod(i, ncol)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = im
    return out


def grid(images: torch.Tensor, nrow: int = 4, pad: int = 2) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> one uint8 picture, ``nrow`` images per row, white gaps (``tile``)."""
    return tile([to_uint8(im) for im in images], ncol=nrow, pad=pad)
