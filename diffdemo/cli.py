"""``python -m diffdemo``: every result of the app from the command line.

Each command prints a strict JSON object as the last line of stdout. Bad input (the project's own error types,
``diffdemo.errors``) gives a one-line error on stderr and exit code 2, refused before any work; anything else is
a bug: its traceback and exit code 1.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
import traceback
from pathlib import Path

from diffdemo import defaults, threads, validation
from diffdemo.errors import DiffdemoError
from diffdemo.jsonio import dumps, write_json
from diffdemo.models import DEFAULT_MODEL

EXIT_USAGE = 2
EXIT_BUG = 1
OUT_IS_FILE = ("profile",)  # --out names a file for these commands, a folder for every other


class UsageError(DiffdemoError):
    """Bad input from the user: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other usage error here
        raise UsageError(message)


def _positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def _command(sub, name: str, adder):
    """The subcommand ``name``: its help is the first line of ``adder``'s docstring, its description the rest."""
    head, _, rest = inspect.cleandoc(adder.__doc__).partition("\n\n")
    return sub.add_parser(name, help=head, description=" ".join(rest.split()) or None)


def add_model_image_size(p) -> None:
    """The --model / --image / --size options shared by every command that works on one image."""
    p.add_argument("--model", default=DEFAULT_MODEL, help="embedded name, local diffusers folder or hub id")
    p.add_argument("--image", default=defaults.IMAGE, help="an image file or a bundled image name")
    p.add_argument("--size", type=_positive(int), help="working resolution (default: the model's)")


def add_precision(p, analysis: bool = False) -> None:
    """--precision: the network's number format (diffdemo/precision.py)."""
    from diffdemo.precision import PRECISIONS

    if analysis:
        text = "Jacobians are always differentiated in fp32 (bf16 would drown a 1e-2 difference): auto = fp32"
    else:
        text = "the network's number format: auto = bf16 where the device has fast bf16 (AVX512_BF16/AMX, CUDA)"
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help=text)


def analysis_precision(precision: str) -> str:
    """Analysis differentiates in fp32 only: auto and fp32 mean fp32, bf16 is refused."""
    if precision == "bf16":
        raise UsageError("--precision bf16 is not offered for Jacobians: they are differentiated in fp32")
    from diffdemo.experiments import ANALYSIS_PRECISION

    return ANALYSIS_PRECISION


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
        type=_positive(int),
        help=f"reverse steps (default: the method's few-step default, {defaults.FEW_STEPS} for the guided methods)",
    )
    add_schedule_option(p)
    p.add_argument("--seed", type=int, default=defaults.SEED)
    p.add_argument("--t0", type=int, help="starting timestep (sdedit, denoise)")
    p.add_argument("--scale", type=float, help="DPS step size lambda")
    p.add_argument("--zeta", type=float, help="Score-ALD likelihood weight")
    p.add_argument(
        "--samples",
        type=_positive(int),
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


def _check_images(args) -> None:
    """Image paths refused before they are opened: a FIFO, socket or device, a missing file, an over-long name."""
    from diffdemo.imaging import bundled_images

    image = getattr(args, "image", None)
    if image is not None and image not in bundled_images():
        validation.check_image_file(image, "--image")
    for name in ("image_a", "image_b"):
        if getattr(args, name, None) is not None:
            validation.check_image_file(getattr(args, name), name.replace("_", " "))


def resolve_image(name_or_path: str, size: int):
    """A bundled image name or a path -> uint8 (size, size, 3)."""
    from diffdemo.imaging import bundled_images, load_image

    bundled = bundled_images()
    return load_image(bundled.get(name_or_path, name_or_path), size)


def working_size(model, size: int | None) -> int:
    """The resolution to run at: the model's, or a requested one the UNet can take (multiple of 8, >= 16)."""
    return model.size if size is None else validation.check("size", size, "--size")


def check_args(args, *names: str) -> None:
    """Check the named options against defaults.RANGES (None = the default applies), before any work."""
    for name in names:
        value = getattr(args, name)
        if value is not None:
            setattr(args, name, validation.check(name, value, "--" + name.replace("_", "-")))


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
    overrides.update(schedule=args.schedule, normalize=False if args.raw_dps_step else None)
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
    p.add_argument("--n", type=_positive(int), default=defaults.SAMPLE["n"])
    p.add_argument("--steps", type=_positive(int), default=defaults.SAMPLE["steps"])
    add_schedule_option(p)
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
    kw = dict(n=args.n, steps=args.steps, seed=args.seed, schedule=args.schedule, precision=args.precision)
    done = run_sampling(model, **kw)
    out = Path(args.out)
    files = [str(save_png(done.frame.x_t[i : i + 1], out / f"sample_{i:03d}.png")) for i in range(args.n)]
    result = {
        "n": args.n,
        "steps": args.steps,
        "schedule": args.schedule,
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

    Writes the clean, noised and denoised pictures and denoise.json: the scores of the noisy input (as
    x_t / sqrt(abar_t)) and of the result (diffdemo.experiments.denoising).
    """
    p = _command(sub, "denoise", add_denoise)
    add_model_image_size(p)
    p.add_argument("--t", type=int, default=int(defaults.UI["denoise.t"][2]), help="timestep to noise to")
    p.add_argument("--steps", type=_positive(int), default=int(defaults.UI["denoise.steps"][2]))
    add_schedule_option(p)
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
    run = denoising(model, x0, t, steps=args.steps, seed=args.seed, every=None, schedule=args.schedule,
                    precision=args.precision)  # fmt: skip
    noisy, done = (item for item in run if isinstance(item, Row))
    out = Path(args.out)
    images = {"clean": x0, "noised": noisy.reconstruction, "denoised": done.reconstruction}
    files = [str(save_png(image, out / f"{name}.png")) for name, image in images.items()]
    result = {"model": args.model, "image": args.image, "size": size, "t": t, "seed": args.seed}
    result.update({"noisy": noisy.record(), "denoised": done.record(), "noisy_scored_as": "x_t / sqrt(abar_t)"})
    result.update(schedule=args.schedule, precision=done.precision, seconds=done.seconds, files=files)
    write_json(out / "denoise.json", result)
    return result


# --- reproduce -------------------------------------------------------------------------------------
def add_reproduce(sub) -> None:
    """regenerate the poster's figures 1-9 and the methods table (PNG + HTML, metrics.json, report)

    Seeded runs of every figure; writes PNG + interactive HTML per figure, metrics.json, report.md, report.html and
    claims.json into --out. The full budget (the claims table the app ships) takes about half an hour on a 2-core
    CPU; --quick (few steps, few images) is a smoke run of a few minutes, and its verdicts say so.
    """
    p = _command(sub, "reproduce", add_reproduce)
    p.add_argument("--out", required=True, help="output folder (created; files in it are overwritten)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="embedded name, local diffusers folder or hub id")
    p.add_argument("--quick", action="store_true", help="few steps, few images: a smoke run of every figure")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # the test suite's budget
    p.add_argument("--seed", type=int, default=defaults.SEED)
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument(
        "--threads", type=int, default=0, help="torch threads (default 0: the rule of diffdemo/threads.py, cores - 1)"
    )
    p.add_argument(
        "--claims-only",
        action="store_true",
        help="re-evaluate the claims of the finished run in --out from its metrics.json (no new computation)",
    )
    add_precision(p)
    p.set_defaults(run=run_reproduce)


def run_reproduce(args) -> dict:
    from diffdemo.models import load_model
    from diffdemo.reproduce import refresh_claims, reproduce

    if args.quick and args.tiny:
        raise UsageError("--quick and --tiny are exclusive")
    out = Path(args.out)
    if args.claims_only:
        if not (out / "metrics.json").is_file():
            raise UsageError("--claims-only needs a finished run in --out (its metrics.json)")
        return refresh_claims(out)
    check_args(args, "seed", "threads")
    model = load_model(args.model)
    budget = "tiny" if args.tiny else "quick" if args.quick else "full"
    result = reproduce(
        model,
        out,
        budget=budget,
        seed=args.seed,
        progress=not args.no_progress,
        threads=args.threads,
        precision=args.precision,
    )
    print(f"report: {result['report']}")
    return result


# --- probe / spectrum (analysis, poster 3.7-3.8) -------------------------------------------------
def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in str(text).replace(" ", "").split(",") if v]
    except ValueError:
        raise UsageError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise UsageError(f"{what} is empty")
    return values


def _check_timesteps(model, ts: list[int], what: str) -> list[int]:
    return [validation.check_timestep(t, model.schedule.T, what) for t in ts]


# --- probe and spectrum: Jacobians of the score -----------------------------------------------------------
def _add_analysis_run(p, run) -> None:
    """The options every Jacobian command ends with (--seed, --out, --precision) and the function that runs it."""
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    add_precision(p, analysis=True)
    p.set_defaults(run=run)


def _analysis_model(args, *checked: str):
    """The shared start of a Jacobian command: ``checked`` options validated, the precision (fp32), the model and
    the working size, all before any work."""
    from diffdemo.models import load_model

    check_args(args, *checked)
    precision = analysis_precision(args.precision)
    model = load_model(args.model)
    return model, working_size(model, args.size), precision


def _write_html(out: Path, figures: dict) -> list[Path]:
    """Plotly figures as HTML pages (plotly.js from its CDN) in ``out``; the paths written."""
    for name, fig in figures.items():
        fig.write_html(out / name, include_plotlyjs="cdn")
    return [out / name for name in figures]


def _summary(args, name: str, size: int, fields: dict, seconds: float, files: list) -> dict:
    """The command's JSON record (model, image, size, its own ``fields``, seconds, files), written to --out/name."""
    summary = {"model": args.model, "image": args.image, "size": size, **fields}
    summary.update(seconds=seconds, files=[str(f) for f in files])
    write_json(Path(args.out) / name, summary)
    return summary


def add_probe(sub) -> None:
    """Jacobian columns of the score at a pixel and energy vs radius (poster 3.7, Figure 7)

    Columns of J_s, J_f = (I + (1-alpha_t) J_s)/sqrt(alpha_t) and J_D = (I + (1-abar_t) J_s)/sqrt(abar_t) at pixel
    (X, Y) of the image noised to t (seeded), their energy within radius r, and the relative error of central
    differences against the exact JVP.
    """
    from diffdemo.analysis import METHODS

    p = _command(sub, "probe", add_probe)
    add_model_image_size(p)
    p.add_argument("--pixel", type=int, nargs=2, metavar=("X", "Y"), required=True, help="column X, row Y")
    p.add_argument("--t", type=int, required=True, help="timestep of the probe")
    p.add_argument("--t-sweep", help="comma-separated timesteps for the energy sweep, e.g. 50,100,200")
    p.add_argument("--channel", type=int, help="input channel of e_i (default: all channels at once)")
    p.add_argument("--method", default="jvp", choices=METHODS)
    p.add_argument("--eps", type=float, default=1e-2, help="finite-difference step in [-1, 1] units")
    p.add_argument("--energy-on", default="denoiser", choices=("denoiser", "score", "reverse"))
    p.add_argument("--exclude-centre", action="store_true", help="leave the probed pixel out of the energy")
    _add_analysis_run(p, run_probe)


def run_probe(args) -> dict:
    from diffdemo import charts, pictures, plots
    from diffdemo.experiments import probing
    from diffdemo.imaging import save_png, tile, to_tensor

    model, size, precision = _analysis_model(args, "eps", "seed", "size")
    x, y = args.pixel
    if not (0 <= x < size and 0 <= y < size):
        raise UsageError(f"--pixel {x} {y} is outside the {size}x{size} image")
    if args.channel is not None and not 0 <= args.channel < model.sample_shape[0]:
        raise UsageError(f"--channel must be in [0, {model.sample_shape[0] - 1}]")
    (t,) = _check_timesteps(model, [args.t], "--t")
    sweep = _check_timesteps(model, _int_list(args.t_sweep, "--t-sweep"), "--t-sweep") if args.t_sweep else []
    x0 = to_tensor(resolve_image(args.image, size))
    out = Path(args.out)
    start = time.perf_counter()
    kw = dict(channel=args.channel, energy_on=args.energy_on, exclude_centre=args.exclude_centre, eps=args.eps)
    found = list(probing(model, x0, t, (x, y), seed=args.seed, sweep=sweep, method=args.method,
                         sweep_method=args.method, **kw))  # fmt: skip
    result = found[0]
    curves = [result.energy] + (found[1] if sweep else [])
    seconds = time.perf_counter() - start
    files = [save_png(x0, out / "image.png"), save_png(result.x_t.clamp(-1, 1), out / f"x_t{t:04d}.png")]
    for kind, column in result.columns.items():
        files.append(save_png(pictures.column_image(column, (x, y)), out / f"column_{kind}_t{t:04d}.png"))
    if sweep:
        tiles = [pictures.column_image(c.column, (x, y), min_side=128) for c in curves[1:]]
        files.append(save_png(tile(tiles, ncol=5), out / f"sweep_columns_{args.energy_on}.png"))
    ordered = sorted(curves[1:], key=lambda c: c.t) if sweep else curves
    files.append(save_png(charts.energy_chart(ordered), out / "energy.png"))
    pages = {"columns.html": plots.probe_figure(result), "energy.html": plots.energy_figure(ordered)}
    if sweep:
        pages["energy_summary.html"] = plots.energy_summary_figure(ordered)
    files += _write_html(out, pages)
    fields = dict(pixel=[x, y], channel=args.channel, t=t, method=args.method, eps=args.eps, seed=args.seed)
    fields.update(energy_on=result.energy.label, fd_vs_jvp_rel_err=result.fd_vs_jvp_rel_err, precision=precision)
    return _summary(args, "probe.json", size, {**fields, "per_t": [c.summary() for c in curves]}, seconds, files)


def add_spectrum(sub) -> None:
    """singular values / vectors of J_s and J_f, spectral radius of J_f over timesteps (poster 3.8, Fig. 8-9)

    Subspace iteration on J^T J (one JVP + one VJP per iteration) and Arnoldi on J_s, never forming J. Also the
    explicit-Euler step limit h <= -2 Re(lambda)/|lambda|^2 over the Ritz values of J_s, next to the step h = 1 -
    abar_t/abar_(t-stride) of the strided run (--steps).
    """
    p = _command(sub, "spectrum", add_spectrum)
    add_model_image_size(p)
    p.add_argument("--t", default="50,200,500,800", help="comma-separated timesteps")
    p.add_argument("--k", type=_positive(int), default=4, help="singular triplets per operator")
    p.add_argument(
        "--iters",
        type=_positive(int),
        default=60,
        help="cap on Lanczos iterations (and Arnoldi steps): the run stops earlier once every value shown meets --tol",
    )
    p.add_argument(
        "--tol",
        type=float,
        default=1e-3,
        help="relative residual every value shown must meet (0: run the cap); "
        "values that miss it are listed under 'unconverged'",
    )
    p.add_argument("--arnoldi", type=_positive(int), help="Arnoldi steps (default: --iters)")
    p.add_argument("--steps", type=_positive(int), default=250, help="the strided run whose stride is compared")
    p.add_argument("--max-batch", type=_positive(int), help="rows per network call (default: everything at once)")
    _add_analysis_run(p, run_spectrum)


def run_spectrum(args) -> dict:
    from diffdemo import pictures, plots
    from diffdemo.experiments import spectra
    from diffdemo.imaging import save_png, tile, to_tensor

    model, size, precision = _analysis_model(args, "k", "iters", "arnoldi", "steps", "max_batch", "seed", "size")
    ts = _check_timesteps(model, _int_list(args.t, "--t"), "--t")
    if args.steps > model.schedule.T:
        raise UsageError(f"--steps must be at most {model.schedule.T}, the model's T")
    if not 0 <= args.tol < 1:
        raise UsageError(f"--tol must be in [0, 1), got {args.tol}")
    x0 = to_tensor(resolve_image(args.image, size))
    out = Path(args.out)
    start = time.perf_counter()
    results = list(spectra(model, x0, ts, k=args.k, iters=args.iters, seed=args.seed, steps=args.steps,
                           arnoldi_steps=args.arnoldi, max_batch=args.max_batch, tol=args.tol))  # fmt: skip
    seconds = time.perf_counter() - start
    files = [save_png(x0, out / "image.png")]
    for r in results:
        row = [pictures.vector_image(v) for v in (*r.singular_Js.right, *r.singular_Jf.right)]
        files.append(save_png(tile(row, ncol=len(r.singular_Js.right)), out / f"singular_vectors_t{r.t:04d}.png"))
    pages = {"spectrum.html": plots.spectrum_figure(results)}
    pages.update({f"singular_vectors_{j}.html": plots.singular_vectors_figure(results, j) for j in ("Jf", "Js")})
    files += _write_html(out, {**pages, "step_limit.html": plots.step_limit_figure(results)})
    fields = dict(seed=args.seed, k=args.k, iters=args.iters, tol=args.tol, steps=args.steps, precision=precision)
    fields["unconverged"] = {str(r.t): r.unconverged() for r in results if r.unconverged()}
    for t, names in fields["unconverged"].items():  # said in words too, not only in the JSON
        print(f"not converged at t={t} within --iters {args.iters}: {', '.join(names)}", file=sys.stderr)
    fields["singular_vector_png_rows"] = ["J_s right singular vectors", "J_f right singular vectors"]
    fields["euler_limit"] = "h_max = min over Ritz values lambda of J_s with Re < 0 of -2 Re(lambda)/|lambda|^2"
    return _summary(args, "spectrum.json", size, {**fields, "per_t": [r.summary() for r in results]}, seconds, files)


# --- lpips ---------------------------------------------------------------------------------------
def add_lpips(sub) -> None:
    """LPIPS distance between two images (offline, shipped v0.1 weights)

    Learned perceptual distance (Zhang et al. 2018, v0.1) between two images read as RGB in [-1, 1], centre-cropped
    to a square of --size (default: the first image's shorter side).
    """
    p = _command(sub, "lpips", add_lpips)
    p.add_argument("image_a")
    p.add_argument("image_b")
    p.add_argument("--net", default="alex", choices=["alex", "vgg"])
    p.add_argument("--weights", help="a safetensors file from python -m diffdemo.lpips_weights (default: shipped)")
    p.add_argument("--size", type=_positive(int), help="side of the centre crop both images are compared at")
    p.set_defaults(run=run_lpips)


def run_lpips(args) -> dict:
    from diffdemo import metrics
    from diffdemo.imaging import image_side, load_image, to_tensor

    status = metrics.lpips_status(args.net, args.weights)
    if status != "available":
        raise UsageError(status)
    size = args.size or image_side(args.image_a)
    a, b = (to_tensor(load_image(path, size)) for path in (args.image_a, args.image_b))
    return {"lpips": metrics.lpips(a, b, args.net, args.weights), "net": args.net, "size": size}


# --- stability profile (step allocation, poster section 6) -----------------------------------------
def add_schedule_option(p) -> None:
    from diffdemo.spacing import SCHEDULES

    p.add_argument(
        "--schedule",
        default=defaults.SPACING,
        choices=SCHEDULES,
        help="timestep list: uniform stride, quadratic (DDIM; the default), karras (rho=7 on the model's noise "
        "levels), spectral (from the model's stability profile; see the profile command) or logsnr (the spectral "
        "rule with the formula rho = 1/(1 - abar_t): nearly uniform in log-SNR)",
    )
    full = defaults.FULL_QUALITY
    p.add_argument(
        "--full-quality",
        action="store_true",
        help=f"the poster's setting, as its figures use: {full['steps']} steps on the {full['schedule']} stride "
        "(overrides --steps and --schedule; the step size follows the steps)",
    )


def apply_full_quality(args) -> None:
    """--full-quality: the steps and timestep list of the poster's figures (defaults.FULL_QUALITY)."""
    if getattr(args, "full_quality", False):
        args.steps, args.schedule = defaults.FULL_QUALITY["steps"], defaults.FULL_QUALITY["schedule"]


def add_profile(sub) -> None:
    """measure the model's stability profile rho(J_s)(t) once; the spectral schedule reads it

    Arnoldi on the score Jacobian at noised test faces over a grid of timesteps; writes stability_profile.json next
    to a local model (hub models: ~/.cache/diffdemo/profiles/).
    """
    p = _command(sub, "profile", add_profile)
    p.add_argument("--model", default=DEFAULT_MODEL, help="embedded name, local diffusers folder or hub id")
    p.add_argument("--iters", type=_positive(int), default=20, help="Arnoldi steps per (image, t)")
    p.add_argument("--images", type=_positive(int), default=2, help="bundled test faces averaged (1 or 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        help="output file (default: next to a local model or in the user cache for a hub id; for a model shipped in "
        "assets/, outputs/profiles/NAME.json unless --update-assets)",
    )
    p.add_argument(
        "--update-assets", action="store_true", help="replace a shipped model's committed profile (the spectral list)"
    )
    p.set_defaults(run=run_profile)


def run_profile(args) -> dict:
    from diffdemo.experiments import profiling
    from diffdemo.imaging import to_tensor
    from diffdemo.models import MODELS_DIR, load_model
    from diffdemo.profiles import profile_path, save_profile
    from diffdemo.stability import PROFILE_IMAGES

    if args.iters > 200 or args.images > len(PROFILE_IMAGES):
        raise UsageError(f"--iters must be <= 200 and --images <= {len(PROFILE_IMAGES)}")
    model = load_model(args.model)
    images = [to_tensor(resolve_image(n, model.size)) for n in PROFILE_IMAGES[: args.images]]
    profile = profiling(model, images, iters=args.iters, seed=args.seed)
    profile["model"] = args.model
    path = Path(args.out) if args.out else profile_path(args.model)
    if not args.out and not args.update_assets and path.resolve().is_relative_to(MODELS_DIR.resolve()):
        path = Path("outputs") / "profiles" / f"{path.parent.name}.json"  # the shipped profile stays as committed
    path = save_profile(profile, path)
    return {"profile": str(path), **{k: profile[k] for k in ("t", "rho_Js", "rho_Jf", "seconds")}}


# --- study ---------------------------------------------------------------------------------------
def add_study(sub) -> None:
    """run a grid of experiments from a study file (TOML) into a database; --report writes its tables

    Every run goes through the same path as the restore command; rows are stored in DIR/study.sqlite as they
    finish, so running the same command again resumes. Local by default (one run after another, or --workers
    processes); --ray (or RAY_ADDRESS set) sends one Ray task per run. --report writes DIR/report.md and a figure
    from the database alone; --results FILE also puts the tables into FILE between this study's markers.
    """
    p = _command(sub, "study", add_study)
    p.add_argument("file", help="the study file (TOML; see studies/)")
    p.add_argument("--out", required=True, help="output folder: its study.sqlite holds the rows")
    p.add_argument("--report", action="store_true", help="write the tables and figure from the database; no runs")
    p.add_argument("--results", help="with --report: also write the tables into this markdown file (its section)")
    p.add_argument("--ray", action="store_true", help="run on Ray (RAY_ADDRESS, else a local Ray)")
    p.add_argument("--workers", type=_positive(int), default=1, help="local processes (default 1: one at a time)")
    p.add_argument("--limit", type=_positive(int), help="run at most this many of the runs still to do")
    p.add_argument("--dry-run", action="store_true", help="print the plan only")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(run=run_study)


def run_study(args) -> dict:
    import os

    from diffdemo import study

    spec = study.load_study(args.file)
    out = Path(args.out)
    if args.report or args.results:
        figure = out / f"fig_study_{spec.name}.png"
        text = study.report(spec, out, figure)
        result = {"study": spec.name, "report": str(study.write_section(out / "report.md", spec.name, text))}
        if args.results:
            target = Path(args.results)
            shown = target.parent / f"fig_study_{spec.name}.png"
            if figure.exists():
                shown.write_bytes(figure.read_bytes())
            result["results"] = str(study.write_section(target, spec.name, text))
        return result
    executor = "ray" if args.ray or os.environ.get("RAY_ADDRESS") else "local"
    if executor == "ray" and args.workers > 1:
        raise UsageError("--workers is for the local executor; Ray places its own tasks")
    return study.run_study(spec, out, executor=executor, workers=args.workers, limit=args.limit,
                           progress=not args.no_progress, dry_run=args.dry_run)  # fmt: skip


# --- entry point -----------------------------------------------------------------------------------
COMMANDS = [add_restore, add_denoise, add_sample]
COMMANDS.append(add_reproduce)
COMMANDS += [add_probe, add_spectrum]
COMMANDS.append(add_lpips)
COMMANDS.append(add_profile)
COMMANDS.append(add_study)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m diffdemo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    """Run one command: 0 and a strict JSON line; 2 and one line for the user's errors; 1 and a traceback for bugs."""
    try:
        args = build_parser().parse_args([str(a) for a in argv] if argv is not None else None)
        if getattr(args, "out", None) is not None:  # wrong kind of path, or unwritable: refused before any work
            check_out = validation.check_out_file if args.command in OUT_IS_FILE else validation.check_out_dir
            check_out(args.out)
        _check_images(args)
        threads.configure()  # the app's rule (diffdemo/threads.py): the same request gives the same numbers
        result = args.run(args)
        line = dumps(result)
    except DiffdemoError as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug: keep its traceback
        traceback.print_exc()
        return EXIT_BUG
    print(line)
    return 0
