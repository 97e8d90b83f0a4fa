"""The work of one run, counted: network evaluations per task (forwards, gradient-sized ones, the batch, a second
phase), and their seconds from a model's timing (diffdemo/model_timing.py); durations said in words."""

from __future__ import annotations

from diffdemo.experiments import log_timesteps
from diffdemo.spacing import steps_from


def evaluations(task: str, **p) -> dict:
    """Network evaluations of one run: plain forwards, gradient-sized ones (JVP, VJP or backprop) and the batch
    they run in; a run in two phases of different batch gives the second as ``then`` (the same keys).

    task: denoise (t, steps), psnr_curve (steps, points), sample (n, steps), a restoration method (steps, t0,
    samples), probe (sweep), energy (n_t: an energy sweep alone) or spectrum (k, iters, n_t)."""
    steps = int(p.get("steps") or 0)
    chains = int(p.get("samples") or 1)  # posterior samples averaged: one batch of k chains
    if task == "denoise":
        return {"forwards": steps_from(steps, int(p["t"]))}
    if task == "psnr_curve":  # Figure 1: one denoising run from each of ``points`` log-spaced timesteps
        return {"forwards": sum(steps_from(steps, t) for t in log_timesteps(int(p.get("T", 1000)), int(p["points"])))}
    if task == "sample":
        return {"forwards": steps, "batch": int(p.get("n", 1))}
    if task == "sdedit":
        return {"forwards": steps_from(steps, int(p["t0"])), "batch": chains}
    if task == "score_ald":
        return {"forwards": steps, "batch": chains}
    if task == "denoise_restore":
        return {"forwards": steps}
    if task == "dps":
        return {"gradients": steps, "batch": chains}
    if task == "probe":  # exact JVP + central difference (2 rows) + one JVP row per timestep of the sweep
        return {"gradients": 1 + int(p.get("sweep", 0)), "forwards": 2}
    if task == "energy":  # analysis.energy_sweep by central differences: one forward of 2 rows per timestep
        return {"forwards": 1, "batch": 2 * int(p["n_t"])}
    if task == "spectrum":
        # analysis.spectrum_sweep: max(k, iters) Lanczos steps, each one JVP and one VJP batched over the 2 n_t rows
        # (J_s and J_f at every timestep), then iters Arnoldi steps, one JVP batched over the n_t rows
        k, iters, n_t = int(p["k"]), int(p["iters"]), int(p["n_t"])
        return {"gradients": 2 * max(k, iters), "batch": 2 * n_t, "then": {"gradients": iters, "batch": n_t}}
    raise ValueError(f"unknown task {task!r}")


def _phases(work: dict) -> list[dict]:
    phases = [work]
    while "then" in phases[-1]:
        phases.append(phases[-1]["then"])
    return phases


def image_evaluations(work: dict) -> int:
    """Network evaluations of one run counted per image: (forwards + gradient evaluations) x batch, every phase."""
    return sum((w.get("forwards", 0) + w.get("gradients", 0)) * w.get("batch", 1) for w in _phases(work))


def network_calls(work: dict) -> int:
    """Network calls of one run (a batch of k chains is one call), every phase."""
    return sum(int(w.get("forwards", 0) + w.get("gradients", 0)) for w in _phases(work))


def batch_factor(cost: dict, batch: int) -> float:
    """What a batch costs in batch-1 calls: 1 + (batch - 1) x the measured slope (1 where unknown)."""
    return 1 + (max(1, int(batch)) - 1) * cost.get("batch_slope", 1.0)


def run_seconds(cost: dict, forwards: int = 0, gradients: int = 0, batch: int = 1, then: dict | None = None) -> float:
    """Forward passes and gradient evaluations times their measured batch-1 cost, times the batch's cost
    1 + (batch - 1) x slope (``batch_slope`` measured with the model; 1, linear, when unknown); plus a second
    phase ``then`` (the same keys)."""
    seconds = (forwards * cost["forward_s"] + gradients * cost["grad_s"]) * batch_factor(cost, batch)
    return seconds + (run_seconds(cost, **then) if then else 0.0)


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


def format_range(low: float, high: float) -> str:
    """'4-7 s', '40 s-2 min': two durations, the unit said once where both share it."""
    a, b = format_seconds(low), format_seconds(high)
    a_num, _, a_unit = a.partition(" ")
    b_num, _, b_unit = b.partition(" ")
    if a == b:
        return a
    return f"{a_num}-{b}" if a_unit == b_unit else f"{a}-{b}"
