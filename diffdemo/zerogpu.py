"""ZeroGPU on Hugging Face Spaces: ``gpu`` is ``spaces.GPU`` where the ``spaces`` package is importable (a Space),
and does nothing elsewhere, so the same handlers run on a laptop, a CPU Space and a GPU Space.

On ZeroGPU a GPU is attached only while a decorated function runs; ``duration`` is the most seconds one call may
hold it (DIFFDEMO_GPU_SECONDS, default 120).
"""

from __future__ import annotations

import os

try:  # imported before torch touches CUDA, as ZeroGPU asks
    import spaces
except ImportError:
    spaces = None

GPU_SECONDS = int(os.environ.get("DIFFDEMO_GPU_SECONDS", "120"))
ZERO_GPU = spaces is not None and os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")


def gpu(fn):
    """``spaces.GPU(duration=GPU_SECONDS)(fn)`` on a Space, ``fn`` itself elsewhere."""
    if spaces is None:
        return fn
    return spaces.GPU(duration=GPU_SECONDS)(fn)
