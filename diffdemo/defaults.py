"""Default parameters of every restoration method: per method, and per task where a task is better served.

Tuned on the six bundled held-out test images at 64 px with faces64: the best mean PSNR of each method on
Gaussian deblurring and on box inpainting, re-checked on later weights (the sweeps, their margins and the
re-runs: ``bench/RESULTS_faces.md``, also in the README). The method-level values are the inpainting ones;
deblurring overrides where it differs.
Free of torch so that the app can show them before the engine loads.
"""

from __future__ import annotations

# Every diffusion run's default is a few-step one: about FEW_STEPS network evaluations over the SPACING timestep list,
# with the guidance step size that belongs to that many steps (STEP_SIZES). Tuned on one fold of the six bundled
# test faces and reported on the other, against the 250-step uniform run (bench/RESULTS_fewstep.md); where 50 steps
# lost more than 0.3 dB that way, the task keeps more (Score-ALD inpainting 100) or takes the list that kept it
# within 0.3 dB (DPS deblurring: logsnr, cross-fitted -0.22 dB at 50 against quadratic's -0.36). FULL_QUALITY is
# the poster's setting (its figures, the app's "Full quality" button, ``--full-quality`` on the CLI).
FEW_STEPS = 50
SPACING = "quadratic"  # DDIM's quadratic list: no profile to load, so it serves every model (hub ones too)
FULL_QUALITY = {"steps": 250, "spacing": "uniform"}

DEFAULTS: dict[str, dict] = {
    # plain reverse diffusion (no data term) scores the same from 20 NFE as from 250 (bench/RESULTS_spacing.md,
    # "reverse diffusion from t = 300"): the Denoise tab and its 6-point curve need no more
    "denoise": {"steps": 20, "spacing": SPACING},
    # SDEdit is that same plain reverse diffusion, from t0: 25 steps scored +0.11 dB (deblurring) and +0.07 dB
    # (inpainting) against 250 on the six test faces (bench/RESULTS_fewstep.md; nothing tuned)
    "sdedit": {"t0": 100, "steps": 25, "samples": 1, "spacing": SPACING},
    # inpainting keeps 100 steps: at 50 its step size tuned on three faces lost 0.48 dB on the other three
    "score_ald": {"steps": 100, "samples": 1, "spacing": SPACING},
    "dps": {"steps": FEW_STEPS, "samples": 1, "spacing": SPACING},
    "wiener": {"balance": 0.03},
    "richardson_lucy": {"num_iter": 30},
    "tv": {"weight": 0.01, "num_iter": 60},
    "biharmonic": {},
}

# The guidance step size (DPS's scale, Score-ALD's zeta) against the run's network evaluations, per method and
# task: measured with SPACING below 250 steps and with the uniform stride at 250 (bench/RESULTS_fewstep.md), linear
# in log(steps) in between and held beyond the ends. Fewer steps leave each step a larger share of the pull toward y.
# "box_inpaint" is the method-level table (every task without its own: random and drawn inpainting, noise).
STEP_SIZES: dict[str, dict[str, dict[int, float]]] = {
    "dps": {
        "gaussian_blur": {20: 6.0, 50: 3.0, 70: 2.0, 100: 1.5, 250: 1.0},  # 50: tuned on the logsnr list
        "box_inpaint": {20: 3.0, 50: 1.5, 100: 1.0, 250: 1.0},
    },
    "score_ald": {  # zeta_t is capped at 0.75 / ||A||^2 (samplers.ald_step_size): past it a larger zeta changes little
        "gaussian_blur": {20: 16.0, 50: 16.0, 100: 8.0, 250: 4.0},
        "box_inpaint": {20: 1.0, 50: 2.0, 100: 2.0, 250: 1.0},
    },
}
STEP_SIZE_PARAM = {"dps": "scale", "score_ald": "zeta"}


def step_size(method: str, task: str | None, steps: int) -> float:
    """The tuned guidance step size of ``method`` for ``task`` at ``steps`` network evaluations (STEP_SIZES)."""
    import math

    tables = STEP_SIZES[method]
    table = sorted(tables.get(task or "", tables["box_inpaint"]).items())
    n = max(1, int(steps))
    if n <= table[0][0]:
        return table[0][1]
    for (n0, v0), (n1, v1) in zip(table, table[1:]):
        if n <= n1:
            w = (math.log(n) - math.log(n0)) / (math.log(n1) - math.log(n0))
            return round(v0 + w * (v1 - v0), 3)
    return table[-1][1]


MAX_SAMPLES = 16  # posterior samples averaged per image (each is a full chain: k times the work)

# What a run uses where the user gives nothing: the CLI's option defaults, ``reproduce`` and the app's initial
# values read these (tests/test_cli_io.py checks the CLI's parser against them).
SIGMA_Y = 0.05  # measurement noise std, [-1, 1] image units (0.025 on a [0, 1] scale)
IMAGE = "london_006_neutral"  # the bundled test face every command starts from
SEED = 0
DROP = 0.5  # random_inpaint: fraction of pixels dropped
# unconditional DDPM samples (eq. 25): two at first, so that the first demo finishes within 10 s on a 2-core CPU
# (a batch of 4 costs 3.6x one image there: bench/RESULTS_estimates.md); the slider goes to 16
SAMPLE = {"n": 2, "steps": FEW_STEPS, "spacing": SPACING}

# Per-task values, keyed by operator name, where a task is better served than by DEFAULTS (same tuning run).
TASK_DEFAULTS: dict[str, dict[str, dict]] = {
    "gaussian_blur": {
        "score_ald": {"steps": FEW_STEPS},
        # DPS deblurring on the logsnr list: at 50 steps its step size tuned on three faces lost 0.22 dB on the other
        # three; quadratic lost 0.36 there, more than the 0.3 dB asked (and needed 70 steps to lose 0.28)
        "dps": {"steps": FEW_STEPS, "spacing": "logsnr"},
    },
}


# The allowed range of every user parameter: (low, high, kind), kind "int" or "float"; the bounds are inclusive
# unless named in OPEN_LOW (strictly above low). One table for the app, its API and the CLI alike
# (diffdemo/validation.py checks against it). Timesteps are checked against the model's T (1 <= t <= T - 1).
RANGES: dict[str, tuple[float, float, str]] = {
    "seed": (0, 2**31 - 1, "int"),
    "steps": (1, 1000, "int"),
    "samples": (1, MAX_SAMPLES, "int"),
    "n": (1, 256, "int"),  # unconditional samples in one run (CLI); the app's slider stops at 16
    "scale": (0.0, 100.0, "float"),  # DPS step size lambda
    "zeta": (0.0, 100.0, "float"),  # Score-ALD likelihood weight
    "sigma_y": (0.0, 1.0, "float"),  # measurement noise std, [-1, 1] image units
    "blur_std": (0.3, 10.0, "float"),  # pixels; below 0.3 px the kernel is a delta
    "kernel_size": (3, 63, "int"),  # odd
    "drop": (0.0, 0.95, "float"),  # random inpainting: fraction of pixels dropped
    "eps": (0.0, 1.0, "float"),  # finite-difference step, [-1, 1] units (OPEN_LOW)
    "points": (2, 30, "int"),  # timesteps of the PSNR-vs-t curve
    "k": (1, 64, "int"),  # singular triplets per operator
    "iters": (2, 1000, "int"),  # Lanczos / Arnoldi steps
    "arnoldi": (2, 1000, "int"),
    "max_batch": (1, 4096, "int"),
    "threads": (0, 256, "int"),  # 0 = automatic
    "size": (16, 1024, "int"),  # working resolution, a multiple of 8
}
OPEN_LOW = frozenset({"eps"})
LABELS = {  # how a parameter is called in messages (the CLI adds its own --option spelling)
    "seed": "seed",
    "steps": "steps",
    "samples": "posterior samples averaged",
    "n": "number of samples",
    "scale": "DPS scale",
    "zeta": "Score-ALD zeta",
    "sigma_y": "sigma_y",
    "blur_std": "blur std",
    "kernel_size": "kernel size",
    "drop": "drop fraction",
    "eps": "finite-difference eps",
    "points": "points",
    "k": "k",
    "iters": "iterations",
    "arnoldi": "Arnoldi steps",
    "max_batch": "max batch",
    "threads": "threads",
    "size": "size",
}


def describe_defaults() -> str:
    """One line per method with its defaults and per-task values, for help texts."""

    def text(params: dict) -> str:
        return ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in params.items())

    lines = []
    for method, params in DEFAULTS.items():
        line = f"  {method}: {text(params) or 'no parameters'}"
        per_task = [f"{task}: {text(methods[method])}" for task, methods in TASK_DEFAULTS.items() if method in methods]
        line += f" ({'; '.join(per_task)})" if per_task else ""
        if method in STEP_SIZES:
            name = STEP_SIZE_PARAM[method]
            line += f"; {name} by steps: " + "; ".join(
                f"{task} " + ", ".join(f"{n}: {v:g}" for n, v in sorted(table.items()))
                for task, table in STEP_SIZES[method].items()
            )
        lines.append(line)
    return "\n".join(lines)


def params_for(method: str, task: str | None = None, **overrides) -> dict:
    """The method's defaults, then its defaults for ``task`` (an operator name), then the non-None overrides;
    the guidance step size, unless given, is the one tuned for the resolved number of steps (``step_size``)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    per_task = TASK_DEFAULTS.get(task, {}).get(method, {})
    params = dict(DEFAULTS.get(method, {}))
    name = STEP_SIZE_PARAM.get(method)
    if name is not None:
        params[name] = step_size(method, task, {**params, **per_task, **given}["steps"])
    params.update(per_task)
    params.update(given)
    return params


# --- the app's controls ---------------------------------------------------------------------------------------------
BLUR = {"kernel_size": 13, "std": 2.0}  # Gaussian blur up to 128 px; operators.default_blur scales it above
MEASUREMENT = {"operator": "gaussian_blur", "method": "dps", "box": "center"}  # the restore form's first choices


def _start(method: str, name: str):
    """A restoration parameter's initial value for the app's first operator (the tuned default)."""
    return params_for(method, MEASUREMENT["operator"])[name]


# The app's sliders: (low, high, initial value, step). The bounds are RANGES' where a slider can span them, narrower
# where it cannot be set by hand (a 0-100 slider for a value near 1); the initial values are the tuned defaults
# above, except where a tab deliberately starts quick, said beside it. Sliders that follow the operator or the
# method (t0, zeta, scale, chains, steps) are set again from params_for when those change.
UI: dict[str, tuple[float, float, float, float]] = {
    # Denoise starts quick on purpose: from t = 100 the person comes back in at most t + 1 = 101 steps
    "denoise.t": (1, 999, 100, 1),
    "denoise.steps": (1, RANGES["steps"][1], DEFAULTS["denoise"]["steps"], 1),
    "denoise.points": (*RANGES["points"][:2], 6, 1),
    "sample.n": (1, MAX_SAMPLES, SAMPLE["n"], 1),  # the CLI takes up to RANGES' 256; one page shows 16
    "sample.steps": (1, RANGES["steps"][1], SAMPLE["steps"], 1),
    "restore.steps": (1, RANGES["steps"][1], _start(MEASUREMENT["method"], "steps"), 1),
    "restore.blur_std": (0.5, 6.0, BLUR["std"], 0.1),
    "restore.kernel_size": (3, RANGES["kernel_size"][1], BLUR["kernel_size"], 2),
    "restore.drop": (*RANGES["drop"][:2], DROP, 0.05),
    "restore.sigma_y": (0.0, 0.5, SIGMA_Y, 0.01),
    "restore.t0": (1, 999, _start("sdedit", "t0"), 1),
    "restore.zeta": (0.0, 20.0, _start("score_ald", "zeta"), 0.1),  # reaches the step-size table's 16
    "restore.scale": (0.0, 20.0, _start("dps", "scale"), 0.1),
    "restore.samples": (*RANGES["samples"][:2], _start(MEASUREMENT["method"], "samples"), 1),
    "probe.t": (1, 999, 200, 1),
    # Spectrum starts quick on purpose (the CLI's spectrum is the full run, 30 steps): k = 3, 12 Lanczos / Arnoldi
    # steps and one timestep, a first view in seconds (bench/RESULTS_estimates.md); more steps converge further
    "spectrum.k": (1, 8, 3, 1),
    "spectrum.iters": (2, 60, 12, 1),
}
SPECTRUM_START = (500,)  # the timestep ticked at first (each one more costs as much again: tick 50 beside it)
