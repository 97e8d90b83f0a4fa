"""``python -m diffdemo``: every result of the app from the command line.

Each command prints a JSON object as the last line of stdout. Bad input gives a one-line error on stderr and
exit code 2 (no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from diffdemo.models import DEFAULT_MODEL

EXIT_USAGE = 2


class UsageError(Exception):
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


# --- restore ---------------------------------------------------------------------------------------
RESTORE_HELP = """Defaults (64 px faces): denoise steps=250 from the t matched to sigma_y; sdedit t0=300, steps=150;
score_ald zeta=1.0, steps=250; dps scale=3.0, steps=250; wiener balance=0.03; richardson_lucy 30 iterations;
tv weight=0.01. Operators: gaussian_blur (13x13, std 2 px at 64 px; DPS's 61x61, std 3 at 256 px),
box_inpaint (centred half-size box), random_inpaint (half the pixels dropped), noise (identity).
sigma_y is in [-1, 1] image units (0.05 = 0.025 on a [0, 1] scale)."""


def add_restore(sub) -> None:
    from diffdemo.operators import OPERATORS
    from diffdemo.restore import METHODS

    p = sub.add_parser(
        "restore",
        help="measure an image and restore it",
        epilog=RESTORE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help="embedded name, local diffusers folder or hub id")
    p.add_argument("--method", default="dps", choices=METHODS)
    p.add_argument("--operator", default="gaussian_blur", choices=OPERATORS)
    p.add_argument("--image", default="london_006_neutral", help="an image file or a bundled image name")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--size", type=_positive(int), help="working resolution (default: the model's)")
    p.add_argument("--sigma-y", type=float, default=0.05, help="measurement noise std in [-1, 1] units")
    p.add_argument("--steps", type=_positive(int), help="reverse steps (strided)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--t0", type=int, help="starting timestep (sdedit, denoise)")
    p.add_argument("--scale", type=float, help="DPS step size lambda")
    p.add_argument("--zeta", type=float, help="Score-ALD likelihood weight")
    p.add_argument("--box", type=int, nargs=4, metavar=("TOP", "LEFT", "H", "W"), help="box_inpaint hole (pixels)")
    p.add_argument("--box-preset", default="center", help="box_inpaint preset: center, eyes or mouth")
    p.add_argument("--drop", type=float, default=0.5, help="random_inpaint drop fraction")
    p.add_argument("--blur-std", type=float, help="gaussian_blur std in pixels")
    p.add_argument("--kernel-size", type=int, help="gaussian_blur kernel size (odd)")
    p.set_defaults(run=run_restore)


def resolve_image(name_or_path: str, size: int):
    """A bundled image name or a path -> uint8 (size, size, 3)."""
    from diffdemo.imaging import bundled_images, load_image

    bundled = bundled_images()
    return load_image(bundled.get(name_or_path, name_or_path), size)


def working_size(model, size: int | None) -> int:
    """The resolution to run at: the model's, or a requested one the UNet can take (multiple of 8, >= 16)."""
    if size is None:
        return model.size
    if size < 16 or size % 8 or size > 1024:
        raise UsageError(f"impossible size {size}: use a multiple of 8 between 16 and 1024 (model: {model.size})")
    return size


def run_restore(args) -> dict:
    from diffdemo.imaging import save_png, to_tensor
    from diffdemo.models import load_model
    from diffdemo.operators import make_operator
    from diffdemo.restore import DIFFUSION_METHODS, make_problem, restore

    if args.steps is not None and args.steps > 1000:
        raise UsageError(f"--steps must be <= 1000, got {args.steps}")
    model = load_model(args.model)
    size = working_size(model, args.size)
    x0 = to_tensor(resolve_image(args.image, size))
    op = make_operator(
        args.operator,
        size,
        box=args.box,
        preset=args.box_preset,
        drop=args.drop,
        std=args.blur_std,
        kernel_size=args.kernel_size,
        mask_seed=args.seed,
    )
    problem = make_problem(x0, op, args.sigma_y, args.seed)
    overrides = dict(steps=args.steps, t0=args.t0, scale=args.scale, zeta=args.zeta)
    result = restore(model if args.method in DIFFUSION_METHODS else None, args.method, problem, **overrides)
    out = Path(args.out)
    save_png(x0, out / "truth.png")
    save_png(problem.y, out / "measurement.png")
    save_png(result.pop("reconstruction"), out / "reconstruction.png")
    result.update(
        model=args.model,
        image=args.image,
        size=size,
        sigma_y=args.sigma_y,
        seed=args.seed,
        operator_params=op.describe(),
    )
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    return result


# --- sample ----------------------------------------------------------------------------------------
def add_sample(sub) -> None:
    p = sub.add_parser("sample", help="unconditional DDPM samples")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--n", type=_positive(int), default=4)
    p.add_argument("--steps", type=_positive(int), default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(run=run_sample)


def run_sample(args) -> dict:
    from diffdemo.imaging import save_png
    from diffdemo.models import load_model
    from diffdemo.samplers import last_frame, sample

    if args.steps > 1000 or args.n > 256:
        raise UsageError("--steps must be <= 1000 and --n <= 256")
    model = load_model(args.model)
    start = time.perf_counter()
    frame = last_frame(sample(model, args.n, args.steps, args.seed, every=args.steps))
    seconds = time.perf_counter() - start
    out = Path(args.out)
    files = [str(save_png(frame.x_t[i : i + 1], out / f"sample_{i:03d}.png")) for i in range(args.n)]
    result = {
        "n": args.n,
        "steps": args.steps,
        "seed": args.seed,
        "model": args.model,
        "seconds": seconds,
        "nfe": frame.nfe,
        "files": files,
    }
    (out / "samples.json").write_text(json.dumps(result, indent=1))
    return result


# --- entry point -----------------------------------------------------------------------------------
COMMANDS = [add_restore, add_sample]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m diffdemo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    from diffdemo.imaging import ImageError
    from diffdemo.models import ModelUnavailable

    try:
        args = build_parser().parse_args(argv)
        result = args.run(args)
    except (UsageError, ImageError, ModelUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    print(json.dumps(result, default=str))
    return 0
