"""Which number format the score network runs in: ``fp32``, ``bf16`` (autocast) or ``auto``.

Only the network's forward (and DPS's backward through it) changes; the sampler's own arithmetic (schedule,
likelihood step, chain averaging) and every Jacobian in ``analysis`` stay float32, because a bfloat16 output
(8-bit mantissa, ~4e-3 relative) would drown a finite difference of 1e-2.
``auto`` picks bf16 where the device has fast bf16 (a CPU with AVX512_BF16 or AMX, a CUDA GPU with bf16) and the
method's bf16 results matched fp32 in ``studies/precision.toml`` (bench/RESULTS_precision.md); fp32 everywhere
else.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}

# Methods kept in fp32 under ``auto`` because bf16 moved their mean PSNR on the six test images by more than
# 0.1 dB (bench/RESULTS_precision.md). Empty: none did.
AUTO_FP32_METHODS: frozenset[str] = frozenset()


def check_precision(name: str) -> str:
    """The precision name, or a ValueError naming the choices."""
    name = str(name).lower()
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}: use one of {', '.join(PRECISIONS)}")
    return name


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one), for benchmark headers."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fast_bf16(device) -> bool:
    """Whether ``device`` runs bfloat16 matrix work natively: AVX512_BF16 / AMX on a CPU, bf16 support on CUDA."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)
    return False


def resolve_precision(name: str, device, method: str | None = None) -> str:
    """``fp32`` or ``bf16`` for a run of ``method`` on ``device``: ``auto`` -> bf16 where fast and measured safe."""
    name = check_precision(name)
    if name != "auto":
        return name
    if method in AUTO_FP32_METHODS or not fast_bf16(device):
        return "fp32"
    return "bf16"
