"""``python -m diffdemo``: every result of the app from the command line.

Each command prints a strict JSON object as the last line of stdout. Bad input (the project's own error types,
``diffdemo.errors``) gives a one-line error on stderr and exit code 2, refused before any work; anything else is
a bug: its traceback and exit code 1.

The commands live by group (restoration_commands, analysis_commands, tool_commands); this module builds the parser
from them and runs one command: ``main``.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from diffdemo import threads, validation
from diffdemo.cli.analysis_commands import add_probe, add_profile, add_spectrum
from diffdemo.cli.options import UsageError
from diffdemo.cli.restoration_commands import add_denoise, add_restore, add_sample
from diffdemo.cli.tool_commands import add_lpips, add_reproduce, add_study
from diffdemo.errors import DiffdemoError
from diffdemo.jsonio import dumps

EXIT_USAGE = 2
EXIT_BUG = 1
OUT_IS_FILE = ("profile",)  # --out names a file for these commands, a folder for every other


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other usage error here
        raise UsageError(message)


def _check_images(args) -> None:
    """Image paths refused before they are opened: a FIFO, socket or device, a missing file, an over-long name."""
    from diffdemo.imaging import bundled_images

    image = getattr(args, "image", None)
    if image is not None and image not in bundled_images():
        validation.check_image_file(image, "--image")
    for name in ("image_a", "image_b"):
        if getattr(args, name, None) is not None:
            validation.check_image_file(getattr(args, name), name.replace("_", " "))


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
