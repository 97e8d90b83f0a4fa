"""Image I/O and the one place where uint8 (H, W, C) pictures meet float (N, C, H, W) tensors in [-1, 1].

Every picture that enters, whatever its mode (8/16-bit gray, gray + alpha, RGB, RGBA, palette, CMYK, EXIF
orientation), becomes RGB here, and its size is checked from its header before any pixel is decoded (Pillow's
limit is set on import). torch is imported only by the functions that make tensors, so the app can check
uploads without loading the engine.
"""

from __future__ import annotations

import io
import os
import stat
import threading
from collections import OrderedDict
from contextlib import contextmanager
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
MASK_MAX_PIXELS = 4_000_000  # a drawn mask layer: the editor's canvas is about 256 px a side


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


# Decoding is bounded across the whole process: at most DIFFDEMO_DECODES pictures decode at once and together they
# may hold DIFFDEMO_DECODE_MB of pixels (Pillow's own buffers); a decode that would pass either waits, then is
# refused. One 50 MP picture holds at most 200 MB (4 bytes a pixel), so two fit in the default 512 MB.
DECODES = max(1, int(os.environ.get("DIFFDEMO_DECODES", "2")))
DECODE_BYTES = int(float(os.environ.get("DIFFDEMO_DECODE_MB", "512")) * 2**20)
REDUCE_ABOVE = 1_000_000  # pixels: larger pictures are cut to their centre square and reduced before converting
BUSY = "the server is busy decoding other images: try again in a moment"


class DecodeBudget:
    """At most ``slots`` decodes at once, holding at most ``max_bytes`` together (a process-wide semaphore)."""

    def __init__(self, slots: int, max_bytes: int):
        self.slots, self.max_bytes = slots, max_bytes
        self.running, self.held = 0, 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, nbytes: int, timeout: float = 30.0):
        nbytes = min(int(nbytes), self.max_bytes)  # one picture larger than the budget runs alone
        with self._cond:
            fits = lambda: self.running < self.slots and self.held + nbytes <= self.max_bytes  # noqa: E731
            if not self._cond.wait_for(fits, timeout):
                raise ImageError(BUSY)
            self.running, self.held = self.running + 1, self.held + nbytes
        try:
            yield
        finally:
            with self._cond:
                self.running, self.held = self.running - 1, self.held - nbytes
                self._cond.notify_all()


DECODE_BUDGET = DecodeBudget(DECODES, DECODE_BYTES)


def decoded_bytes(mode: str, size: tuple[int, int]) -> int:
    """Bytes Pillow holds for a decoded picture: 1 a pixel for 1 / L / P, 2 for 16-bit gray, 4 for the rest."""
    per_pixel = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    return per_pixel * size[0] * size[1]


def _shrink(img: Image.Image, size: int) -> Image.Image:
    """A large decoded picture's centre square, reduced by a whole factor to 2-4x ``size`` a side, in its own mode
    (16-bit stays 16-bit) and read straight from the decoded picture (``box``: no full-size copy), so that nothing
    after it (mode conversion, float arrays) sees full size."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    box = (left, top, left + side, top + side)
    factor = side // (2 * size)
    if factor < 2:
        return img.crop(box)
    try:
        return img.reduce(factor, box=box)
    except (ValueError, OSError):  # modes reduce does not take (16-bit gray, palette, 1-bit)
        resample = Image.NEAREST if img.mode in ("1", "P", "PA") else Image.BOX
        return img.resize((side // factor, side // factor), resample, box=box)


def _give_back_memory() -> None:
    """Return freed pixel buffers to the system after a large decode (glibc keeps them otherwise: a server's
    resident memory would stay at its largest decode)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def open_image(source, label: str = "the image", size: int | None = None) -> Image.Image:
    """Open a path or bytes, check its size from the header, then decode it within the process-wide decode budget
    (bombs are refused undecoded). With ``size`` (the model's side), a JPEG is decoded at reduced scale (draft) and
    any picture over REDUCE_ABOVE pixels is cut to its centre square and reduced (``_shrink``) at once.

    Messages name ``label``, never a server path, and carry no library's exception text."""
    if isinstance(source, (str, Path)):  # a FIFO or a device would block or never end: plain files only
        try:
            regular = stat.S_ISREG(os.stat(source).st_mode)
        except FileNotFoundError:
            raise ImageError(f"{label}: no such image file") from None
        except OSError:
            regular = False
        if not regular:
            raise ImageError(f"{label} is not a readable image file")
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
        w, h = img.size
        if size and w * h > REDUCE_ABOVE and img.format == "JPEG":
            scale = 2 * size / min(w, h)  # JPEG's DCT scaling: decode at 1/2, 1/4 or 1/8 a side
            img.draft(img.mode, (max(1, int(w * scale)), max(1, int(h * scale))))
        with DECODE_BUDGET.hold(decoded_bytes(img.mode, img.size)):
            try:
                img.load()
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
                raise ImageError(f"{label} is not a readable image (truncated or corrupt)") from None
            if size and img.size[0] * img.size[1] > REDUCE_ABOVE:
                full, img = img, _shrink(img, size)
                full.close()
                del full
                _give_back_memory()
    except ImageError:
        img.close()
        raise
    return img


def check_header(source, label: str = "the image", max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """Width and height from the header of a path or bytes, refused past ``max_pixels``; nothing is decoded."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            w, h = img.size
    except Image.DecompressionBombError:
        raise ImageError(f"{label} is {TOO_LARGE}: refused before decoding") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ImageError(f"{label} is not a readable image (PNG, JPEG, WebP, BMP, GIF, TIFF...)") from None
    if w * h > max_pixels:
        raise ImageError(f"{label} is {w}x{h}: more than {max_pixels / 1e6:g} megapixels")
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
        return _load_file(source, int(size), label)
    check_size(img, label)
    return np.asarray(center_crop_resize(to_rgb(img), int(size)), dtype=np.uint8).copy()


_recent: OrderedDict = OrderedDict()  # (path, size, mtime, bytes, model side) -> the picture: light events re-read
_recent_lock = threading.Lock()
_decoding: dict = {}  # key -> the lock of the decode in progress


def _load_file(source, size: int, label: str) -> np.ndarray:
    """load_image of a path or bytes: decoded within the budget, at reduced size; a file read in the last few
    calls (the previews of one upload) is not decoded again."""
    key = None
    if isinstance(source, (str, Path)):
        try:
            st = os.stat(source)
            key = (str(source), size, st.st_mtime_ns, st.st_size)
        except OSError:
            pass
    with _recent_lock:
        if key in _recent:
            _recent.move_to_end(key)
            return _recent[key].copy()
        one_at_a_time = _decoding.setdefault(key, threading.Lock()) if key else threading.Lock()
    with one_at_a_time:  # six previews of one new upload decode it once, the others wait for the result
        with _recent_lock:
            if key in _recent:
                return _recent[key].copy()
        try:
            img = open_image(source, label, size=size)
            check_size(img, label)
            arr = np.asarray(center_crop_resize(to_rgb(img), size), dtype=np.uint8).copy()
        finally:
            with _recent_lock:
                _decoding.pop(key, None)
        if key is not None:
            with _recent_lock:
                _recent[key] = arr
                while len(_recent) > 16:
                    _recent.popitem(last=False)
    return arr.copy()


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
