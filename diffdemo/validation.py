"""Every user parameter's type, finiteness and range, checked once, with one rule and one message each.

The app, its HTTP API and the CLI call these before any work, against the one table of ranges in
``diffdemo/defaults.py``; a refusal is an ``InvalidParameter`` (exit 2 on the CLI, a message in the app).
Free of torch, like defaults.py.
"""

from __future__ import annotations

import math
import os
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


def check_optional(name: str, value, label: str | None = None):
    """None stays None (the method's default applies); anything else is checked."""
    return None if value is None else check(name, value, label)


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


def _creatable(out: Path, path) -> Path:
    """``out`` if its nearest existing ancestor (itself, if it exists) is a folder that lets us create the rest."""
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InvalidParameter(f"--out {path} cannot be created: a folder on its way is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidParameter(f"--out {path} cannot be written here (no permission to create or write it)")
    return out


def check_out_dir(path) -> Path:
    """An output folder that can be written: not an existing file, and creatable here (refused before any work)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InvalidParameter(f"--out {path} exists and is not a folder")
    return _creatable(out, path)


def check_out_file(path) -> Path:
    """An output file that can be written: not an existing folder, and its folder creatable here."""
    out = Path(path)
    if out.is_dir():
        raise InvalidParameter(f"--out {path} is a folder: give a file name")
    if out.exists() and not os.access(out, os.W_OK):
        raise InvalidParameter(f"--out {path} cannot be written here (no permission to create or write it)")
    _creatable(out.parent, path)
    return out
