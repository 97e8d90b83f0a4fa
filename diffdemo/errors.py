"""The project's own error types: bad input from a user, said in one line (exit 2 on the CLI).

Anything else raised inside diffdemo is a bug and keeps its traceback. Subclasses that live beside their code:
``imaging.ImageError``, ``models.ModelUnavailable``, ``serving.TimeCapReached``, ``cli.UsageError``. Messages
name no server path and carry no library's exception text (a public Space must not let a caller probe the machine).
"""

from __future__ import annotations


class DiffdemoError(Exception):
    """Base of every error that is the user's input, not the code: one line, exit code 2."""


class InvalidParameter(DiffdemoError, ValueError):
    """A parameter of the wrong type, not finite, or outside its range (diffdemo/validation.py)."""


class OverBudget(InvalidParameter):
    """A request that asks for more work than this deployment allows (diffdemo/serving/work.py)."""
