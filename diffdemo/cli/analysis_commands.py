"""The Jacobian commands (poster 3.7-3.8, section 6): probe (columns of the score Jacobians at a pixel and energy
vs radius), spectrum (singular values and spectral radii over timesteps) and profile (the model's stability
profile, which the spectral spacing reads). Jacobians are always differentiated in fp32."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from diffdemo import validation
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


def analysis_precision(precision: str) -> str:
    """Analysis differentiates in fp32 only: auto and fp32 mean fp32, bf16 is refused."""
    if precision == "bf16":
        raise UsageError("--precision bf16 is not offered for Jacobians: they are differentiated in fp32")
    from diffdemo.experiments import ANALYSIS_PRECISION

    return ANALYSIS_PRECISION


# --- probe / spectrum: timesteps given on the command line, checked against the model's T --------
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

    p = subcommand(sub, "probe", add_probe)
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
    p = subcommand(sub, "spectrum", add_spectrum)
    add_model_image_size(p)
    p.add_argument("--t", default="50,200,500,800", help="comma-separated timesteps")
    p.add_argument("--k", type=positive(int), default=4, help="singular triplets per operator")
    p.add_argument(
        "--iters",
        type=positive(int),
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
    p.add_argument("--arnoldi", type=positive(int), help="Arnoldi steps (default: --iters)")
    p.add_argument("--steps", type=positive(int), default=250, help="the strided run whose stride is compared")
    p.add_argument("--max-batch", type=positive(int), help="rows per network call (default: everything at once)")
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


# --- stability profile (step allocation, poster section 6) -----------------------------------------


def add_profile(sub) -> None:
    """measure the model's stability profile rho(J_s)(t) once; the spectral spacing reads it

    Arnoldi on the score Jacobian at noised test faces over a grid of timesteps; writes stability_profile.json next
    to a local model (hub models: ~/.cache/diffdemo/profiles/).
    """
    p = subcommand(sub, "profile", add_profile)
    p.add_argument("--model", default=DEFAULT_MODEL, help="embedded name, local diffusers folder or hub id")
    p.add_argument("--iters", type=positive(int), default=20, help="Arnoldi steps per (image, t)")
    p.add_argument("--images", type=positive(int), default=2, help="bundled test faces averaged (1 or 2)")
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
