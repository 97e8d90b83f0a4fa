"""The commands that run the samplers on an image or from noise, as the app's tabs do: restore (measure and
restore), denoise (Figure 1's single run) and sample (unconditional samples), with the timestep-list options
they share (--spacing, --full-quality)."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffdemo import defaults, validation
from diffdemo.cli.options import (
    UsageError,
    add_model_image_size,
    add_precision,
    check_args,
    positive,
    resolve_image,
    subcommand,
    working_size,
)
from diffdemo.jsonio import write_json
from diffdemo.models import DEFAULT_MODEL

# --- restore ---------------------------------------------------------------------------------------
RESTORE_HELP = """Operators: gaussian_blur (13x13, std 2 px at 64 px; DPS's 61x61, std 3 at 256 px),
box_inpaint (centred half-size box), random_inpaint (half the pixels dropped), noise (identity).
sigma_y is in [-1, 1] image units (0.05 = 0.025 on a [0, 1] scale); denoise starts from the t matched to sigma_y.
Defaults (64 px faces; steps are strided reverse steps):
"""


def add_restore(sub) -> None:
    from diffdemo.defaults import describe_defaults
    from diffdemo.operators import OPERATORS
    from diffdemo.restore import METHODS

    p = sub.add_parser(
        "restore",
        help="measure an image and restore it",
        epilog=RESTORE_HELP + describe_defaults(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_image_size(p)
    p.add_argument("--method", default="dps", choices=METHODS)
    p.add_argument("--operator", default="gaussian_blur", choices=OPERATORS)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--sigma-y", type=float, default=defaults.SIGMA_Y, help="measurement noise std in [-1, 1] units")
    p.add_argument(
        "--steps",
        type=positive(int),
        help=f"reverse steps (default: the method's few-step default, {defaults.FEW_STEPS} for the guided methods)",
    )
    add_spacing_option(p, per_task=True)
    p.add_argument("--seed", type=int, default=defaults.SEED)
    p.add_argument("--t0", type=int, help="starting timestep (sdedit, denoise)")
    p.add_argument("--scale", type=float, help="DPS step size lambda")
    p.add_argument("--zeta", type=float, help="Score-ALD likelihood weight")
    p.add_argument(
        "--samples",
        type=positive(int),
        help="posterior samples averaged (SDEdit, Score-ALD, DPS): k chains, their mean estimates E[x0|y]",
    )
    p.add_argument(
        "--raw-dps-step",
        action="store_true",
        help="DPS: step lambda g as in Chung et al.'s code instead of the normalised lambda g/||g|| of eq. 29",
    )
    p.add_argument("--box", type=int, nargs=4, metavar=("TOP", "LEFT", "H", "W"), help="box_inpaint hole (pixels)")
    p.add_argument("--box-preset", default="center", help="box_inpaint preset: center, eyes or mouth")
    p.add_argument("--drop", type=float, default=defaults.DROP, help="random_inpaint drop fraction")
    p.add_argument("--blur-std", type=float, help="gaussian_blur std in pixels")
    p.add_argument("--kernel-size", type=int, help="gaussian_blur kernel size (odd)")
    add_precision(p)
    p.set_defaults(run=run_restore)


def run_restore(args) -> dict:
    """Measure the image, restore it with one method (diffdemo.experiments), write the PNGs and metrics.json."""
    from diffdemo.experiments import run_restoration
    from diffdemo.imaging import save_png, to_tensor
    from diffdemo.metrics import psnr
    from diffdemo.models import load_model
    from diffdemo.restore import DIFFUSION_METHODS, make_problem

    apply_full_quality(args)
    check_args(args, "sigma_y", "steps", "seed", "scale", "zeta", "samples", "drop", "blur_std", "kernel_size", "size")
    model = load_model(args.model)
    if args.t0 is not None:
        args.t0 = validation.check_timestep(args.t0, model.schedule.T, "--t0")
    size = working_size(model, args.size)
    x0 = to_tensor(resolve_image(args.image, size))
    op = restore_operator(args, size)
    problem = make_problem(x0, op, args.sigma_y, args.seed)
    overrides = dict(steps=args.steps, t0=args.t0, scale=args.scale, zeta=args.zeta, samples=args.samples)
    overrides.update(spacing=args.spacing, normalize=False if args.raw_dps_step else None)
    network = model if args.method in DIFFUSION_METHODS else None
    (row,) = run_restoration(network, problem, [args.method], overrides=overrides, precision=args.precision)
    out = Path(args.out)
    for name, image in (("truth", x0), ("measurement", problem.y), ("reconstruction", row.reconstruction)):
        save_png(image, out / f"{name}.png")
    result = {**row.record(), "operator": op.name, "psnr_measurement": psnr(problem.y, x0)}
    result.update(model=args.model, image=args.image, size=size, sigma_y=args.sigma_y, seed=args.seed)
    result["operator_params"] = op.describe()
    write_json(out / "metrics.json", result)
    return result


def restore_operator(args, size: int):
    """The --operator with its options at ``size`` px (a box that does not fit, an unknown preset or a kernel
    larger than the image is the user's error)."""
    from diffdemo.operators import make_operator

    options = dict(box=args.box, preset=args.box_preset, drop=args.drop, std=args.blur_std)
    try:
        return make_operator(args.operator, size, kernel_size=args.kernel_size, mask_seed=args.seed, **options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# --- sample ----------------------------------------------------------------------------------------
def add_sample(sub) -> None:
    p = sub.add_parser("sample", help="unconditional DDPM samples")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--n", type=positive(int), default=defaults.SAMPLE["n"])
    p.add_argument("--steps", type=positive(int), default=defaults.SAMPLE["steps"])
    add_spacing_option(p)
    p.add_argument("--seed", type=int, default=defaults.SEED)
    p.add_argument("--out", required=True)
    add_precision(p)
    p.set_defaults(run=run_sample)


def run_sample(args) -> dict:
    from diffdemo.experiments import run_sampling
    from diffdemo.imaging import save_png
    from diffdemo.models import load_model

    apply_full_quality(args)
    check_args(args, "n", "steps", "seed")
    model = load_model(args.model)
    kw = dict(n=args.n, steps=args.steps, seed=args.seed, spacing=args.spacing, precision=args.precision)
    done = run_sampling(model, **kw)
    out = Path(args.out)
    files = [str(save_png(done.frame.x_t[i : i + 1], out / f"sample_{i:03d}.png")) for i in range(args.n)]
    result = {
        "n": args.n,
        "steps": args.steps,
        "spacing": args.spacing,
        "seed": args.seed,
        "model": args.model,
        "seconds": done.seconds,
        "nfe": done.nfe,
        "precision": done.precision,
        "files": files,
    }
    write_json(out / "samples.json", result)
    return result


# --- denoise (Figure 1's single run, the app's Denoise tab) -------------------------------------------
def add_denoise(sub) -> None:
    """noise an image to t (eq. 3) and run reverse diffusion back to 0 (eq. 24), as the app's Denoise tab

    Writes the clean, noised and denoised pictures and denoise.json: the metrics of the noisy input (as
    x_t / sqrt(abar_t)) and of the result (diffdemo.experiments.denoising).
    """
    p = subcommand(sub, "denoise", add_denoise)
    add_model_image_size(p)
    p.add_argument("--t", type=int, default=int(defaults.UI["denoise.t"][2]), help="timestep to noise to")
    p.add_argument("--steps", type=positive(int), default=int(defaults.UI["denoise.steps"][2]))
    add_spacing_option(p)
    p.add_argument("--seed", type=int, default=defaults.SEED)
    p.add_argument("--out", required=True, help="output folder")
    add_precision(p)
    p.set_defaults(run=run_denoise)


def run_denoise(args) -> dict:
    from diffdemo.experiments import Row, denoising
    from diffdemo.imaging import save_png, to_tensor
    from diffdemo.models import load_model

    check_args(args, "steps", "seed", "size")
    model = load_model(args.model)
    t = validation.check_timestep(args.t, model.schedule.T, "--t")
    size = working_size(model, args.size)
    x0 = to_tensor(resolve_image(args.image, size))
    run = denoising(model, x0, t, steps=args.steps, seed=args.seed, every=None, spacing=args.spacing,
                    precision=args.precision)  # fmt: skip
    noisy, done = (item for item in run if isinstance(item, Row))
    out = Path(args.out)
    images = {"clean": x0, "noised": noisy.reconstruction, "denoised": done.reconstruction}
    files = [str(save_png(image, out / f"{name}.png")) for name, image in images.items()]
    result = {"model": args.model, "image": args.image, "size": size, "t": t, "seed": args.seed}
    result.update({"noisy": noisy.record(), "denoised": done.record(), "noisy_scored_as": "x_t / sqrt(abar_t)"})
    result.update(spacing=args.spacing, precision=done.precision, seconds=done.seconds, files=files)
    write_json(out / "denoise.json", result)
    return result


# --- the timestep list (step allocation, poster section 6) ----------------------------------------


def add_spacing_option(p, per_task: bool = False) -> None:
    """--spacing and --full-quality; ``per_task``: no fixed default, each method and task takes its own tuned list
    (defaults.params_for: quadratic, DPS deblurring logsnr)."""
    from diffdemo.spacing import SPACINGS

    default = "the method's tuned list: quadratic, logsnr for DPS deblurring" if per_task else "quadratic"
    p.add_argument(
        "--spacing",
        dest="spacing",
        default=None if per_task else defaults.SPACING,
        choices=SPACINGS,
        help=f"timestep spacing, which timesteps the run visits (default: {default}): uniform stride, quadratic (DDIM), karras (rho=7 on the model's "
        "noise levels), spectral (from the model's stability profile; see the profile command) or logsnr (the "
        "spectral rule with the formula rho = 1/(1 - abar_t): nearly uniform in log-SNR)",
    )
    # --schedule: the option's deprecated name (from before the noise schedule and the timestep spacing had names of
    # their own), kept working and left out of the help; SUPPRESS: it sets no default of its own over --spacing's
    p.add_argument("--schedule", dest="spacing", choices=SPACINGS, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    full = defaults.FULL_QUALITY
    p.add_argument(
        "--full-quality",
        action="store_true",
        help=f"the poster's setting, as its figures use: {full['steps']} steps on the {full['spacing']} stride "
        "(overrides --steps and --spacing; the step size follows the steps)",
    )


def apply_full_quality(args) -> None:
    """--full-quality: the steps and timestep list of the poster's figures (defaults.FULL_QUALITY)."""
    if getattr(args, "full_quality", False):
        args.steps, args.spacing = defaults.FULL_QUALITY["steps"], defaults.FULL_QUALITY["spacing"]
