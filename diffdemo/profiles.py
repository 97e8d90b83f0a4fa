"""Where a model's stability profile rho(J_s)(t) is stored: its path, strict-JSON save and a checked, cached load.

The profile is measured by ``diffdemo.stability.compute_profile`` (``python -m diffdemo profile --model M``) and
stored as ``stability_profile.json`` in the model's folder (hub models: ~/.cache/diffdemo/profiles/). Only the
layer that resolves a spacing name into a timestep list (``diffdemo.restore.timesteps_for``) and the commands
read it; the samplers never do.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from diffdemo.errors import InvalidParameter
from diffdemo.jsonio import write_json
from diffdemo.models import resolve_model_dir

PROFILE_NAME = "stability_profile.json"
CACHE_DIR = Path.home() / ".cache" / "diffdemo" / "profiles"
_loaded: dict[str, dict] = {}


def profile_path(name: str) -> Path:
    """Where a model's profile lives: next to a local model, else in the user cache (hub ids)."""
    local = resolve_model_dir(name)
    if local is not None:
        return local / PROFILE_NAME
    return CACHE_DIR / (name.replace("/", "__") + ".json")


def save_profile(profile: dict, path: Path) -> Path:
    """Strict JSON (no NaN / Infinity)."""
    write_json(path, profile)
    _loaded.pop(str(path), None)
    return path


def load_profile(name: str) -> dict:
    """The stored profile of model ``name``; an InvalidParameter naming the command to run when there is none."""
    path = profile_path(name)
    key = str(path)
    if key not in _loaded:
        if not path.is_file():
            raise InvalidParameter(
                f"no stability profile for model '{name}': run `python -m diffdemo profile --model {name}` first"
            )
        data = json.loads(path.read_text())
        if not all(math.isfinite(v) and v > 0 for v in data.get("rho_Js", [])) or len(data["t"]) != len(data["rho_Js"]):
            raise InvalidParameter(f"the stability profile of '{name}' is malformed: recompute it")
        _loaded[key] = data
    return _loaded[key]
