"""The Hugging Face hub models this project knows, and the one check that the hub can be reached.

No model code here (``diffdemo.models`` imports this, not the other way round).
"""

from __future__ import annotations

import os
import socket

HUB_HOST = "huggingface.co"

# The hub models offered, with their published sizes (Ho et al. 2020, appendix B: 35.7M parameters for CIFAR10,
# 114M for CelebA-HQ 256), used to estimate a run's cost before anything is downloaded.
HUB_MODELS = {
    "google/ddpm-celebahq-256": {"params": 114e6, "size": 256},
    "google/ddpm-ema-celebahq-256": {"params": 114e6, "size": 256},
    "google/ddpm-cifar10-32": {"params": 35.7e6, "size": 32},
}


def hub_reachable(host: str = HUB_HOST, timeout: float = 2.0) -> bool:
    """Whether a hub download can even start: not in offline mode (HF_HUB_OFFLINE), and a TCP connection to the
    host opens within ``timeout`` s.

    Without this check an offline machine spends about a minute in huggingface_hub's retries before failing."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def in_hf_cache(repo_id: str) -> bool:
    """Whether some snapshot of the repo is already in the local Hugging Face cache (so no network is needed)."""
    try:
        from huggingface_hub import scan_cache_dir

        return any(repo.repo_id == repo_id for repo in scan_cache_dir().repos)
    except Exception:
        return False
