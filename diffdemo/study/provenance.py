"""Where a row was made: this machine in one line and this checkout's git commit (both stored with every row)."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path


def machine() -> str:
    """This machine in one line: CPU model, its vector flags, cores, torch and its threads, and a GPU if any."""
    import torch

    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), cpu)
        words = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
        flags = {w for w in words if w == "avx2" or w.startswith(("avx512", "amx"))}
    except OSError:
        pass
    from diffdemo.threads import usable_cores

    text = f"{cpu} ({' '.join(sorted(flags)) or 'no AVX2'}), {usable_cores()} cores, torch {torch.__version__}, "
    text += f"{torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


_version: list[str] = []


def code_version() -> str:
    """The git commit of this checkout (with '-dirty' when it has uncommitted changes)."""
    if not _version:
        root = Path(__file__).resolve().parents[2]  # the checkout: diffdemo/study/ is two below it
        try:
            head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                                  text=True, timeout=10, check=True).stdout.strip()  # fmt: skip
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                   capture_output=True, text=True, timeout=10).stdout.strip()  # fmt: skip
            _version.append(head + ("-dirty" if dirty else ""))
        except (OSError, subprocess.SubprocessError):
            _version.append("unknown (not a git checkout)")
    return _version[0]
