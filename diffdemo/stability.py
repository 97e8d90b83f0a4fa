"""A model's stability profile rho(J_s)(t) and the timestep lists built on it (poster section 6: spend steps where
the spectral radius is large).

``compute_profile`` measures the spectral radius of the score Jacobian J_s (and of the one-step reverse map J_f,
eq. 34) by Arnoldi on noised test faces over a grid of timesteps; ``python -m diffdemo profile --model M`` stores it
as ``stability_profile.json`` in the model's folder (hub models: ~/.cache/diffdemo/profiles/). ``model_timesteps``
is what every sampler calls to get its descending timestep list for a schedule name.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from diffdemo.errors import InvalidParameter
from diffdemo.jsonio import write_json
from diffdemo.models import DiffusionModel, resolve_model_dir
from diffdemo.schedule import SCHEDULES, make_timesteps

PROFILE_NAME = "stability_profile.json"
PROFILE_TIMESTEPS = (1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 400, 500, 600, 700, 800, 900, 999)
PROFILE_IMAGES = ("london_006_neutral", "london_081_neutral")
CACHE_DIR = Path.home() / ".cache" / "diffdemo" / "profiles"
_loaded: dict[str, dict] = {}


def profile_path(name: str) -> Path:
    """Where a model's profile lives: next to a local model, else in the user cache (hub ids)."""
    local = resolve_model_dir(name)
    if local is not None:
        return local / PROFILE_NAME
    return CACHE_DIR / (name.replace("/", "__") + ".json")


def compute_profile(
    model: DiffusionModel,
    images: list[torch.Tensor],
    timesteps=PROFILE_TIMESTEPS,
    iters: int = 20,
    seed: int = 0,
    max_batch: int = 16,
    progress=None,
) -> dict:
    """rho(J_s) and rho(J_f) (one step t -> t-1) at each timestep, geometric mean and spread over ``images``.

    Arnoldi with ``iters`` steps per (image, t) row, all rows sharing each batched JVP (``analysis`` owns the
    iteration; its accuracy against the dense Jacobian is in bench/RESULTS_dense.md).
    """
    from diffdemo import analysis

    T = model.schedule.T
    ts = sorted({min(max(int(t), 1), T - 1) for t in timesteps})  # clamped into the one rule, 1 <= t <= T - 1
    rows = [(i, t) for i in range(len(images)) for t in ts]
    rho_s = np.zeros((len(images), len(ts)))
    rho_f = np.zeros((len(images), len(ts)))
    start = time.perf_counter()
    for c in range(0, len(rows), max_batch):
        part = rows[c : c + max_batch]
        states = [analysis.state_at(model, images[i][:1], t, seed) for i, t in part]
        ops = analysis._row_ops(model, states, [t for _, t in part], ["score"] * len(part), [None] * len(part))
        H, steps = analysis._arnoldi(ops, iters, torch.Generator().manual_seed(int(seed)))
        for r, (i, t) in enumerate(part):
            eig = analysis._eig_result(model, H[r], t, t - 1, steps)
            rho_s[i, ts.index(t)], rho_f[i, ts.index(t)] = eig.rho_Js, eig.rho_Jf
        if progress:
            progress(min(1.0, (c + len(part)) / len(rows)), f"Arnoldi rows {c + len(part)}/{len(rows)}")
    log_s = np.log(rho_s)
    return {
        "t": ts,
        "rho_Js": np.exp(log_s.mean(0)).tolist(),  # geometric mean over images
        "rho_Js_min": rho_s.min(0).tolist(),
        "rho_Js_max": rho_s.max(0).tolist(),
        "rho_Jf": rho_f.mean(0).tolist(),
        "rho_Js_per_image": rho_s.tolist(),
        "rho_Jf_per_image": rho_f.tolist(),
        "one_over_1_minus_abar": [1.0 / (1.0 - model.schedule.abar(t)) for t in ts],
        "images": len(images),
        "arnoldi_steps": int(iters),
        "seed": int(seed),
        "seconds": time.perf_counter() - start,
        "rule": "spectral schedule: equal increments of C(t) = sum_{u<=t} beta_u rho(J_s)(u), i.e. the same "
        "explicit-Euler stability number h rho(J_s) for every step",
    }


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


def model_timesteps(
    model: DiffusionModel, steps: int, start: int | None = None, schedule: str = "uniform"
) -> list[int]:
    """The descending timestep list of a run of ``steps`` steps from ``start`` (default T-1) under ``schedule``."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    profile = load_profile(model.name) if schedule == "spectral" else None
    return make_timesteps(model.schedule, steps, start, schedule, profile)
