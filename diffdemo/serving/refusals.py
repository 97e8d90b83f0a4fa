"""A refused request's trace: one short line in the server's log, never a traceback, never a long input echoed."""

from __future__ import annotations


def cut(text, limit: int = 200) -> str:
    """``text`` at most ``limit`` characters, one line: a long input is never echoed whole."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def log_refusal(who: str, reason: str) -> None:
    """One line in the server's log per refused request (never a traceback), its parts cut short."""
    print(f"diffdemo: refused [{cut(who, 64)}]: {cut(reason)}", flush=True)
