"""Every common image mode loads to the right RGB pixel values, and bombs are refused before decoding."""

from __future__ import annotations

import io
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

from diffdemo.imaging import MAX_PIXELS, ImageError, check_header, load_image, to_rgb

SIDE = 32


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def gray16(value: int) -> Image.Image:
    return Image.fromarray(np.full((SIDE, SIDE), value, np.uint16))


def palette(transparent: bool) -> Image.Image:
    img = Image.new("P", (SIDE, SIDE), 1)
    img.putpalette([0, 0, 0, 200, 10, 50] + [0] * 762)
    if transparent:
        img.info["transparency"] = 1
    return img


def exif_rotated() -> Image.Image:
    """Stored 32 wide x 16 high, left half red, right half blue, EXIF orientation 6 (display rotated 90 deg
    clockwise): shown 16 wide x 32 high, red on top."""
    arr = np.zeros((16, 32, 3), np.uint8)
    arr[:, :16] = (255, 0, 0)
    arr[:, 16:] = (0, 0, 255)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6
    return Image.open(io.BytesIO(encode(img, "PNG", exif=exif.tobytes())))


# (name, encoded image, expected RGB of its centre pixel)
CASES = [
    ("8-bit gray", encode(Image.new("L", (SIDE, SIDE), 77)), (77, 77, 77)),
    ("16-bit gray", encode(gray16(200 * 257)), (200, 200, 200)),  # a plain convert clips this to white
    ("16-bit gray, dark", encode(gray16(3 * 257)), (3, 3, 3)),
    ("1-bit", encode(Image.new("1", (SIDE, SIDE), 1)), (255, 255, 255)),
    ("gray + alpha, opaque", encode(Image.new("LA", (SIDE, SIDE), (100, 255))), (100, 100, 100)),
    ("gray + alpha, half", encode(Image.new("LA", (SIDE, SIDE), (100, 128))), (177, 177, 177)),  # on white
    ("RGB", encode(Image.new("RGB", (SIDE, SIDE), (10, 20, 30))), (10, 20, 30)),
    ("RGBA, opaque", encode(Image.new("RGBA", (SIDE, SIDE), (10, 20, 30, 255))), (10, 20, 30)),
    ("RGBA, transparent", encode(Image.new("RGBA", (SIDE, SIDE), (10, 20, 30, 0))), (255, 255, 255)),
    ("palette", encode(palette(False)), (200, 10, 50)),
    ("palette, transparent index", encode(palette(True)), (255, 255, 255)),
    ("CMYK (TIFF), cyan", encode(Image.new("CMYK", (SIDE, SIDE), (255, 0, 0, 0)), "TIFF"), (0, 255, 255)),
    ("CMYK (TIFF), white", encode(Image.new("CMYK", (SIDE, SIDE), (0, 0, 0, 0)), "TIFF"), (255, 255, 255)),
    ("16-bit gray TIFF", encode(gray16(128 * 257), "TIFF"), (128, 128, 128)),
    ("RGB JPEG", encode(Image.new("RGB", (SIDE, SIDE), (0, 128, 255)), "JPEG", quality=100), (0, 128, 255)),
]


@pytest.mark.parametrize("name,data,rgb", CASES, ids=[c[0] for c in CASES])
def test_every_mode_loads_to_known_pixels(name, data, rgb):
    arr = load_image(data, SIDE)
    assert arr.shape == (SIDE, SIDE, 3) and arr.dtype == np.uint8
    got = arr[SIDE // 2, SIDE // 2].astype(int)
    assert np.abs(got - np.array(rgb)).max() <= (2 if "JPEG" in name else 1), (name, got, rgb)


def test_exif_orientation_is_applied():
    arr = load_image(exif_rotated(), 16)  # 16 x 32 after the rotation; its centre square is rows 8..23
    assert tuple(arr[0, 8]) == (255, 0, 0) and tuple(arr[15, 8]) == (0, 0, 255)


def test_to_rgb_of_a_16_bit_ramp_keeps_its_order():
    ramp = Image.fromarray((np.arange(SIDE * SIDE).reshape(SIDE, SIDE) * 64).astype(np.uint16))
    out = np.asarray(to_rgb(ramp))[..., 0].astype(int).ravel()
    assert out[0] == 0 and out[-1] == round((SIDE * SIDE - 1) * 64 / 257) and np.all(np.diff(out) >= 0)


def bomb_png(side: int) -> bytes:
    """A side x side 1-bit PNG of zeros, a few hundred kB (the header says side^2 pixels)."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    raw = zlib.compress(row * side, 9)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    ihdr = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_before_decoding():
    data = bomb_png(9999)
    assert len(data) < 500_000 and 9999**2 > MAX_PIXELS
    tracemalloc.start()
    for call in (lambda: load_image(data, 64), lambda: check_header(data, "a mask layer")):
        with pytest.raises(ImageError, match="megapixels"):
            call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10_000_000  # the image would take 100 MB decoded (300 MB as RGB)


def test_messages_name_no_server_path(tmp_path):
    missing = tmp_path / "secret" / "nothing.png"
    with pytest.raises(ImageError) as info:
        load_image(missing, 64, label="the uploaded file")
    assert str(tmp_path) not in str(info.value) and "the uploaded file" in str(info.value)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(ImageError) as info:
        load_image(junk, 64, label="the uploaded file")
    assert str(tmp_path) not in str(info.value)


def test_saved_pictures_come_with_a_512_px_copy_for_slides(tmp_path):
    """A 64 px result is saved as is and beside it enlarged 8x by nearest neighbour (each pixel an 8x8 block)."""
    from diffdemo.imaging import save_pngs

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    paths = save_pngs(small, tmp_path / "result.png")
    assert [p.name for p in paths] == ["result.png", "result_512px.png"]
    assert np.array_equal(np.asarray(Image.open(paths[0])), small)
    big = np.asarray(Image.open(paths[1]))
    assert big.shape == (512, 512, 3)
    assert np.array_equal(big, np.repeat(np.repeat(small, 8, axis=0), 8, axis=1))
    large = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    assert [p.name for p in save_pngs(large, tmp_path / "big.png")] == ["big.png"]  # already slide-sized
