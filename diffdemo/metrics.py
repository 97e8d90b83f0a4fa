"""Image quality: PSNR and SSIM (scikit-image) and LPIPS (the ``lpips`` package), on tensors in [-1, 1].

LPIPS needs torchvision's AlexNet weights, downloaded on first use; with no network and no cached copy it
is *unavailable*: ``lpips`` returns None and ``lpips_status()`` says why. Never a made-up number.
"""

from __future__ import annotations

import threading
import warnings

import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from diffdemo.imaging import to_unit

_lpips_lock = threading.Lock()
_lpips_net = None
_lpips_error: str | None = None


def psnr(x: torch.Tensor, reference: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB on the [0, 1] scale."""
    return float(peak_signal_noise_ratio(to_unit(reference), to_unit(x), data_range=1.0))


def ssim(x: torch.Tensor, reference: torch.Tensor) -> float:
    """Structural similarity (Wang et al. 2004), colour images, [0, 1] scale."""
    return float(structural_similarity(to_unit(reference), to_unit(x), data_range=1.0, channel_axis=-1))


def _load_lpips():
    global _lpips_net, _lpips_error
    with _lpips_lock:
        if _lpips_net is None and _lpips_error is None:
            try:
                import lpips

                with warnings.catch_warnings():  # torchvision's 'pretrained' deprecation noise
                    warnings.simplefilter("ignore")
                    _lpips_net = lpips.LPIPS(net="alex", verbose=False).eval()
            except Exception:  # typically: no network to fetch torchvision's AlexNet weights
                # said without the library's text (a URLError would name hosts and lookups of this server)
                _lpips_error = (
                    "LPIPS unavailable: its AlexNet backbone's weights are not on this machine and could not "
                    "be downloaded"
                )
    return _lpips_net


def lpips_status() -> str:
    """'available' or the reason LPIPS cannot be computed here."""
    return "available" if _load_lpips() is not None else str(_lpips_error)


def lpips(x: torch.Tensor, reference: torch.Tensor) -> float | None:
    """Learned perceptual distance (Zhang et al. 2018), lower is better; None when unavailable."""
    net = _load_lpips()
    if net is None:
        return None
    with torch.no_grad():
        return float(net(x.detach().float().cpu().clamp(-1, 1), reference.detach().float().cpu().clamp(-1, 1)).mean())


def all_metrics(x: torch.Tensor, reference: torch.Tensor) -> dict:
    """psnr, ssim and lpips (None when unavailable) of x against the reference."""
    return {"psnr": psnr(x, reference), "ssim": ssim(x, reference), "lpips": lpips(x, reference)}
