"""Every user parameter's type, finiteness and range, checked once, with one rule and one message each.

The app, its HTTP API and the CLI call these before any work, against the one table of ranges in
``diffdemo/defaults.py``; a refusal is an ``InvalidParameter`` (exit 2 on the CLI, a message in the app).
Free of torch, like defaults.py.
"""

from __future__ import annotations

import math
import os
import stat
import tempfile
from pathlib import Path

from diffdemo.defaults import LABELS, OPEN_LOW, RANGES
from diffdemo.errors import InvalidParameter


def _number(label: str, value, kind: str) -> int | float:
    """The value as a finite int or float (bools, text and None refused; 3.0 is an int, 3.5 is not)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidParameter(f"{label} is missing")
    if isinstance(value, bool):
        raise InvalidParameter(f"{label} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidParameter(f"{label} must be a number, got {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise InvalidParameter(f"{label} must be a finite number, got {number}")
    if kind == "int":
        if number != int(number):
            raise InvalidParameter(f"{label} must be a whole number, got {number:g}")
        return int(number)
    return number


def _show(x) -> str:
    """A number as people write it: 2147483647, 0.3, 1e+30."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def check(name: str, value, label: str | None = None) -> int | float:
    """``value`` as the parameter ``name`` of defaults.RANGES: the right type, finite and in range."""
    low, high, kind = RANGES[name]
    label = label or LABELS.get(name, name)
    number = _number(label, value, kind)
    above_low = number > low if name in OPEN_LOW else number >= low
    if not (above_low and number <= high):
        if name in OPEN_LOW:
            raise InvalidParameter(f"{label} must be above {_show(low)} and at most {_show(high)}, got {_show(number)}")
        raise InvalidParameter(f"{label} must be between {_show(low)} and {_show(high)}, got {_show(number)}")
    if name == "kernel_size" and number % 2 == 0:
        raise InvalidParameter(f"{label} must be odd, got {number}")
    if name == "size" and number % 8:
        raise InvalidParameter(f"{label} must be a multiple of 8, got {number}")
    return number


def check_timestep(value, T: int, label: str = "t") -> int:
    """The one timestep rule: an integer with 1 <= t <= T - 1 (t = 0 is the clean image: nothing to do)."""
    t = _number(label, value, "int")
    if not 1 <= t <= T - 1:
        raise InvalidParameter(f"{label} must be between 1 and {T - 1}, got {t}")
    return t


def check_timesteps(values, T: int, label: str = "timesteps") -> list[int]:
    """A non-empty list of timesteps, each by the one rule, sorted and without repeats."""
    if isinstance(values, str):
        values = [v for v in values.replace(",", " ").split() if v]
    if not values:
        raise InvalidParameter(f"{label}: choose at least one timestep")
    return sorted({check_timestep(v, T, label) for v in values})


def check_pixel(x, y, size: int) -> tuple[int, int]:
    """A pixel (column x, row y) inside a size x size image."""
    if x is None or y is None or x == "" or y == "":
        raise InvalidParameter("no pixel chosen: click a pixel of the noised image first (or give its x, y)")
    x, y = _number("x", x, "int"), _number("y", y, "int")
    for label, v in (("x", x), ("y", y)):
        if not 0 <= v <= size - 1:
            raise InvalidParameter(f"pixel {label} must be between 0 and {size - 1}, got {v}")
    return x, y


def check_choice(label: str, value, choices) -> str:
    """One of a fixed set of names."""
    if value not in choices:
        raise InvalidParameter(f"unknown {label} {str(value)[:40]!r}: choose one of {', '.join(map(str, choices))}")
    return value


def _shown(path) -> str:
    """A path as messages show it: cut short (a 4,000-character name is not echoed whole)."""
    text = str(path)
    return text if len(text) <= 80 else text[:77] + "..."


def _sane_name(path, option: str) -> None:
    """Refuse names the file system cannot take (a component over 255 bytes, the whole over 4,095) before any call
    that would fail on them with a library's error."""
    raw = os.fsencode(str(path))
    if b"\x00" in raw or len(raw) > 4095 or any(len(part) > 255 for part in raw.split(b"/")):
        raise InvalidParameter(f"{option} {_shown(path)}: the name is too long (or holds a NUL byte)")


def _creatable(out: Path, path) -> Path:
    """``out`` if its nearest existing ancestor (itself, if it exists) is a folder we can really create in: tried
    with a folder made and removed there (os.access cannot judge /proc or read-only mounts)."""
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InvalidParameter(f"--out {_shown(path)} cannot be created: a folder on its way is a file")
    try:
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError
        os.rmdir(tempfile.mkdtemp(prefix=".diffdemo-probe-", dir=parent))
    except OSError:
        raise InvalidParameter(
            f"--out {_shown(path)} cannot be written here (no permission to create or write it)"
        ) from None
    return out


def check_out_dir(path) -> Path:
    """An output folder that can be written: not an existing file, and creatable here (refused before any work)."""
    _sane_name(path, "--out")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InvalidParameter(f"--out {_shown(path)} exists and is not a folder")
    return _creatable(out, path)


def check_out_file(path) -> Path:
    """An output file that can be written: not an existing folder, and its folder creatable here."""
    _sane_name(path, "--out")
    out = Path(path)
    if out.is_dir():
        raise InvalidParameter(f"--out {_shown(path)} is a folder: give a file name")
    if out.exists() and not os.access(out, os.W_OK):
        raise InvalidParameter(f"--out {_shown(path)} cannot be written here (no permission to create or write it)")
    _creatable(out.parent, path)
    return out


def check_image_file(path, option: str = "--image") -> Path:
    """An image path that is a plain file: a FIFO, socket or device is refused before it is opened (reading a FIFO
    would wait forever, a device never ends); a missing file or an over-long name too, in one line."""
    _sane_name(path, option)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InvalidParameter(f"{option} {_shown(path)}: no such image file") from None
    except OSError:
        raise InvalidParameter(f"{option} {_shown(path)}: cannot be read here") from None
    if not stat.S_ISREG(mode):
        raise InvalidParameter(f"{option} {_shown(path)} is not a regular file (a folder, FIFO, socket or device)")
    return Path(path)


def check_flag(label: str, value) -> bool:
    """A yes/no parameter: True or False only (the text "no", 0 or {} are not read as anything)."""
    if isinstance(value, bool):
        return value
    shown = str(value)[:40]
    raise InvalidParameter(f"{label} must be true or false, got {type(value).__name__} {shown!r}")
