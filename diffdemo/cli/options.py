"""What every command shares: the user's error (``UsageError``, exit code 2), option types and groups (--model /
--image / --size, --precision), the checks run before any work, and how an image name or path is read."""

from __future__ import annotations

import argparse
import inspect

from diffdemo import defaults, validation
from diffdemo.errors import DiffdemoError
from diffdemo.models import DEFAULT_MODEL


class UsageError(DiffdemoError):
    """Bad input from the user: reported in one line, exit code 2."""


def positive(kind):
    """An option type: ``kind`` (int or float) of the text, refused unless > 0."""

    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def subcommand(sub, name: str, adder):
    """The subcommand ``name``: its help is the first line of ``adder``'s docstring, its description the rest."""
    head, _, rest = inspect.cleandoc(adder.__doc__).partition("\n\n")
    return sub.add_parser(name, help=head, description=" ".join(rest.split()) or None)


def add_model_image_size(p) -> None:
    """The --model / --image / --size options shared by every command that works on one image."""
    p.add_argument("--model", default=DEFAULT_MODEL, help="embedded name, local diffusers folder or hub id")
    p.add_argument("--image", default=defaults.IMAGE, help="an image file or a bundled image name")
    p.add_argument("--size", type=positive(int), help="working resolution (default: the model's)")


def add_precision(p, analysis: bool = False) -> None:
    """--precision: the network's number format (diffdemo/precision.py)."""
    from diffdemo.precision import PRECISIONS

    if analysis:
        text = "Jacobians are always differentiated in fp32 (bf16 would drown a 1e-2 difference): auto = fp32"
    else:
        text = "the network's number format: auto = bf16 where the device has fast bf16 (AVX512_BF16/AMX, CUDA)"
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help=text)


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
