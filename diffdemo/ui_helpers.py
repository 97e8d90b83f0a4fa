"""Engine-side helpers the app needs that are not the maths itself: run-time estimates measured on this machine,
a fast offline check before a hub download, drawn masks to holes and result files. No gradio here (the app
stays a thin layer over these).
"""

from __future__ import annotations

import math
import socket
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import torch

from diffdemo.models import DiffusionModel, ModelUnavailable, canonical_name, load_model, resolve_model_dir

# Published sizes of the hub models (Ho et al. 2020, appendix B: 35.7M parameters for CIFAR10, 114M for
# CelebA-HQ 256), used to estimate a run's cost before anything is downloaded.
HUB_SPECS = {
    "google/ddpm-celebahq-256": {"params": 114e6, "size": 256},
    "google/ddpm-ema-celebahq-256": {"params": 114e6, "size": 256},
    "google/ddpm-cifar10-32": {"params": 35.7e6, "size": 32},
}
HUB_HOST = "huggingface.co"


# --- models ----------------------------------------------------------------------------------------
def hub_reachable(host: str = HUB_HOST, timeout: float = 2.0) -> bool:
    """True when a TCP connection to the hub opens within ``timeout`` s (huggingface_hub itself retries for ~1 min)."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


_opened: set[str] = set()


def is_local(name: str) -> bool:
    """An embedded model or a local folder: opening it reads a few MB from disk, no download."""
    return resolve_model_dir(name) is not None


def is_open(name: str) -> bool:
    try:
        return canonical_name(name) in _opened
    except ModelUnavailable:
        return False


def open_model(name: str) -> DiffusionModel:
    """load_model, but a hub id with no network fails in ~2 s with a clear ModelUnavailable instead of a minute.

    The name is canonicalised first (one message for anything that is not a model, whatever is on disk)."""
    name = canonical_name(name)
    if not is_local(name) and not _in_hf_cache(name) and not hub_reachable():
        raise ModelUnavailable(
            f"'{name}' is a Hugging Face hub model and this machine cannot reach {HUB_HOST} (no network). "
            "Run where the hub is reachable, or download it there and give the local folder's path instead."
        )
    model = load_model(name)
    _opened.add(name)
    return model


def _in_hf_cache(repo_id: str) -> bool:
    """Whether some snapshot of the repo is already in the local Hugging Face cache (so no network is needed)."""
    try:
        from huggingface_hub import scan_cache_dir

        return any(repo.repo_id == repo_id for repo in scan_cache_dir().repos)
    except Exception:
        return False


# --- cost ------------------------------------------------------------------------------------------
_costs: dict[int, dict] = {}
_costs_lock = threading.Lock()
_reference: dict | None = None  # the last measured model, to scale estimates for models not loaded yet


def median_seconds(fn, repeats: int, warmup: bool = False) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` (after one untimed call if ``warmup``), synchronising
    CUDA around each call so that queued GPU work is counted. Shared with the benchmarks in bench/."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


STALE_S = 600.0  # a quick model's start-up timing is taken again when older than this (the load may have changed)


def _settle(fn, budget_s: float = 5.0, max_calls: int = 8) -> None:
    """Call ``fn`` until it stops getting faster (a call at least 0.8x the one before), ``max_calls`` calls or
    ``budget_s`` seconds, whichever comes first."""
    spent, previous = 0.0, math.inf
    for _ in range(max_calls):
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        spent += took
        if took >= 0.8 * previous or spent > budget_s:
            return
        previous = took


def measure_cost(model: DiffusionModel, max_age_s: float = STALE_S) -> dict:
    """Seconds for one network evaluation (batch 1) and one with the DPS gradient, measured once per model
    (median of 3 when a forward is quick), and ``batch_slope``: the extra cost of each further image in a batch,
    from a batch-4 forward (small images leave a CPU's cores idle at batch 1: faces64's slope is ~0.7, so 4
    chains cost ~3x one, not 4x). A model slower than 0.5 s a forward is not timed at batch 4: slope 1.
    A quick model's timing older than ``max_age_s`` is stale and taken again (a slow one's would cost too much);
    the estimates then lean on real runs (``diffdemo.estimates``)."""
    global _reference
    with _costs_lock:
        key = id(model)
        old = _costs.get(key)
        if old is not None and old["forward_s"] < 0.5 and time.monotonic() - old["measured_at"] > max_age_s:
            del _costs[key]
        if key not in _costs:
            x = torch.randn(1, *model.sample_shape, generator=torch.Generator().manual_seed(0)).to(model.device)
            t = model.schedule.T // 2

            def forward(batch: torch.Tensor):
                with torch.inference_mode():
                    model.eps(batch, t)

            def gradient():
                with torch.enable_grad():
                    x_in = x.clone().requires_grad_(True)
                    torch.autograd.grad(model.x0_hat(x_in, t).norm(), x_in)

            # warm-up calls pay for allocation and kernel selection (on a loaded machine the first calls ran 10-20x
            # slower than later ones); then a quick model is timed 3 times
            _settle(lambda: forward(x))
            one = median_seconds(lambda: forward(x), 1)
            repeats = 3 if one < 0.5 else 1
            if repeats > 1:
                one = median_seconds(lambda: forward(x), repeats)
            grad = median_seconds(gradient, repeats)
            slope = 1.0
            if repeats > 1:
                x4 = x.repeat(4, 1, 1, 1)
                four = median_seconds(lambda: forward(x4), repeats, warmup=True)
                slope = min(1.0, max(0.0, (four / one - 1) / 3))  # batch 4 costs 1 + 3 x slope of batch 1
            n_params = getattr(model, "n_params", None)
            _costs[key] = {
                "forward_s": one,
                "grad_s": grad,
                "batch_slope": slope,
                "params": n_params,
                "size": model.size,
                "measured_at": time.monotonic(),
            }
            if n_params:
                _reference = dict(_costs[key], name=model.name)
        return dict(_costs[key])


def estimate_unloaded(name: str) -> dict | None:
    """A hub model's cost scaled from the last measured model by parameters x pixels (rough: it is an estimate)."""
    spec = HUB_SPECS.get(name)
    ref = _reference
    if spec is None or ref is None:
        return None
    factor = (spec["params"] / ref["params"]) * (spec["size"] / ref["size"]) ** 2
    return {
        "forward_s": ref["forward_s"] * factor,
        "grad_s": ref["grad_s"] * factor,
        "params": spec["params"],
        "size": spec["size"],
        "scaled_from": ref["name"],
    }


def cost_for(name: str, reference: str | None = None) -> dict:
    """Measured cost of a local or already loaded model; for a hub model not loaded yet (no download just to
    time it) an estimate scaled from ``reference`` (measured first if need be), flagged ``estimated``."""
    if is_local(name) or is_open(name):
        return dict(measure_cost(open_model(name)), estimated=False)
    if _reference is None and reference and reference != name:
        try:
            measure_cost(open_model(reference))
        except ModelUnavailable:
            pass
    est = estimate_unloaded(name)
    if est is None:
        raise ModelUnavailable(f"no size known for '{name}' to estimate its cost; it is timed once it is loaded")
    return dict(est, estimated=True)


def evaluations(task: str, **p) -> dict:
    """Network evaluations of one run: plain forwards, gradient-sized ones (JVP, VJP or backprop) and the batch.

    task: denoise (t, steps), psnr_curve (steps, points), sample (n, steps), a restoration method (steps, t0,
    samples), probe (sweep) or spectrum (k, iters, n_t)."""
    steps = int(p.get("steps") or 0)
    chains = int(p.get("samples") or 1)  # posterior samples averaged: one batch of k chains
    if task == "denoise":
        return {"forwards": min(steps, int(p["t"]) + 1)}
    if task == "psnr_curve":  # Figure 1: one denoising run from each of ``points`` log-spaced timesteps
        from diffdemo.experiments import log_timesteps

        return {"forwards": sum(min(steps, t + 1) for t in log_timesteps(int(p.get("T", 1000)), int(p["points"])))}
    if task == "sample":
        return {"forwards": steps, "batch": int(p.get("n", 1))}
    if task == "sdedit":
        return {"forwards": min(steps, int(p["t0"]) + 1), "batch": chains}
    if task == "score_ald":
        return {"forwards": steps, "batch": chains}
    if task == "denoise_restore":
        return {"forwards": steps}
    if task == "dps":
        return {"gradients": steps, "batch": chains}
    if task == "probe":  # exact JVP + central difference (2 rows) + one JVP row per timestep of the sweep
        return {"gradients": 1 + int(p.get("sweep", 0)), "forwards": 2}
    if task == "spectrum":  # per timestep: max(k, iters) Lanczos steps (JVP + VJP on 2 rows) + iters Arnoldi JVPs
        k, iters, n_t = int(p["k"]), int(p["iters"]), int(p["n_t"])
        return {"gradients": n_t * (max(k, iters) * 2 * 2 + iters)}
    raise ValueError(f"unknown task {task!r}")


def image_evaluations(work: dict) -> int:
    """Network evaluations of one run counted per image: (forwards + gradient evaluations) x batch."""
    return (work.get("forwards", 0) + work.get("gradients", 0)) * work.get("batch", 1)


def run_seconds(cost: dict, forwards: int = 0, gradients: int = 0, batch: int = 1) -> float:
    """Forward passes and gradient evaluations times their measured batch-1 cost, times the batch's cost
    1 + (batch - 1) x slope (``batch_slope`` measured with the model; 1, linear, when unknown)."""
    batch_factor = 1 + (max(1, int(batch)) - 1) * cost.get("batch_slope", 1.0)
    return (forwards * cost["forward_s"] + gradients * cost["grad_s"]) * batch_factor


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


# --- masks -----------------------------------------------------------------------------------------
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


# --- files ---------------------------------------------------------------------------------------
def write_results(folder: Path, images: dict, record: dict) -> list[str]:
    """Save PNGs (tensors in [-1, 1] or uint8 arrays) and ``results.json``; return the file paths."""
    from diffdemo.imaging import save_png
    from diffdemo.jsonio import write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [str(save_png(img, folder / f"{name}.png")) for name, img in images.items() if img is not None]
    write_json(folder / "results.json", record)
    return [*paths, str(folder / "results.json")]
