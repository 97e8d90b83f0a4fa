"""Default parameters of every restoration method: per method, and per task where a task is better served.

Tuned on the six bundled held-out test images at 64 px with faces64 at step 6,250: the best mean PSNR of each
method on Gaussian deblurring and on box inpainting (the sweeps were flat: DPS scale 1-2 within 0.03 dB); the
default rows were re-run on the step-11,116 weights (``bench/RESULTS_faces.md``, also in the README), where
DPS scale 2 and 500 steps matched scale 1 and 250 steps to 0.04 dB and the deterministic (eta = 0) loop lost
2-8 dB. The method-level values are the inpainting ones; deblurring overrides where it differs.
Free of torch so that the app can show them before the engine loads.
"""

from __future__ import annotations

DEFAULTS: dict[str, dict] = {
    "denoise": {"steps": 250},
    "sdedit": {"t0": 100, "steps": 150, "samples": 1},
    "score_ald": {"zeta": 1.0, "steps": 250, "samples": 1},
    "dps": {"scale": 1.0, "steps": 250, "samples": 1},
    "wiener": {"balance": 0.03},
    "richardson_lucy": {"num_iter": 30},
    "tv": {"weight": 0.01, "num_iter": 60},
    "biharmonic": {},
}

MAX_SAMPLES = 16  # posterior samples averaged per image (each is a full chain: k times the work)

# Per-task values, keyed by operator name, where a task is better served than by DEFAULTS (same tuning run).
TASK_DEFAULTS: dict[str, dict[str, dict]] = {
    # DPS deblurring: the mean of 4 chains (an estimate of E[x0|y]; ~4x one chain's time on a CPU) scores
    # +1.2 dB over one draw at step 11,116, whose texture PSNR penalises; one draw is only +0.9 dB over Wiener.
    "gaussian_blur": {"score_ald": {"zeta": 4.0}, "dps": {"samples": 4}},
}


def describe_defaults() -> str:
    """One line per method with its defaults and per-task values, for help texts."""
    lines = []
    for method, params in DEFAULTS.items():
        text = ", ".join(f"{k}={v:g}" for k, v in params.items()) or "no parameters"
        per_task = [
            f"{task}: " + ", ".join(f"{k}={v:g}" for k, v in methods[method].items())
            for task, methods in TASK_DEFAULTS.items()
            if method in methods
        ]
        lines.append(f"  {method}: {text}" + (f" ({'; '.join(per_task)})" if per_task else ""))
    return "\n".join(lines)


def params_for(method: str, task: str | None = None, **overrides) -> dict:
    """The method's defaults, then its defaults for ``task`` (an operator name), then the non-None overrides."""
    params = dict(DEFAULTS.get(method, {}))
    params.update(TASK_DEFAULTS.get(task, {}).get(method, {}))
    params.update({k: v for k, v in overrides.items() if v is not None})
    return params
