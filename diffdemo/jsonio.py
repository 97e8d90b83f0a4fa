"""The one JSON writer: every file and stdout line the project writes is strict JSON.

Non-finite floats become null (a strict parser rejects NaN and Infinity) and ``allow_nan=False`` proves none
is left; tensors, numpy values and paths are turned into plain values first.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

_SMALL = 64  # arrays up to this many elements are written out; larger ones as a shape note


def plain(value):
    """A JSON-ready copy of ``value``: dicts, lists, str, int, finite float, bool or None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    kind = type(value).__module__.split(".")[0]
    if kind in ("numpy", "torch"):
        shape = tuple(getattr(value, "shape", ()))
        size = math.prod(shape) if shape else 1
        if size <= _SMALL:
            return plain(value.tolist() if hasattr(value, "tolist") else value.item())
        return f"{'array' if kind == 'numpy' else 'tensor'}{shape}"
    return str(value)


def dumps(value, indent: int | None = None) -> str:
    """Strict JSON text of ``value`` (non-finite numbers as null)."""
    return json.dumps(plain(value), indent=indent, allow_nan=False)


def write_json(path, value, indent: int | None = 1) -> Path:
    """Write ``value`` as strict JSON to ``path`` (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(value, indent=indent) + "\n")
    return path


def write_results(folder: Path, images: dict, record: dict) -> list[str]:
    """A run folder: PNGs (tensors in [-1, 1] or uint8 arrays), each with its enlarged copy for slides
    (``imaging.save_pngs``), and its record as ``results.json``; returns the file paths."""
    from diffdemo.imaging import save_pngs

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [str(p) for name, img in images.items() if img is not None for p in save_pngs(img, folder / f"{name}.png")]
    write_json(folder / "results.json", record)
    return [*paths, str(folder / "results.json")]
