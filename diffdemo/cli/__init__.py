"""``python -m diffdemo``: every result of the app from the command line.

The package, one group of commands a module: ``restoration_commands`` (restore, denoise, sample),
``analysis_commands`` (probe, spectrum, profile), ``tool_commands`` (reproduce, study, lpips); ``options`` (what
they share: option groups, the checks before any work, ``UsageError``); ``entry`` (the parser and ``main``). The
names below are importable from ``diffdemo.cli``.
"""

from __future__ import annotations

from diffdemo.cli.entry import COMMANDS, EXIT_BUG, EXIT_USAGE, OUT_IS_FILE, build_parser, main
from diffdemo.cli.options import UsageError, check_args, resolve_image, working_size

__all__ = [
    "COMMANDS",
    "EXIT_BUG",
    "EXIT_USAGE",
    "OUT_IS_FILE",
    "UsageError",
    "build_parser",
    "check_args",
    "main",
    "resolve_image",
    "working_size",
]
