"""Image quality: PSNR and SSIM (scikit-image) and LPIPS (the ``lpips`` package), on tensors in [-1, 1].

LPIPS loads its v0.1 AlexNet weights from ``assets/lpips`` (converted by ``diffdemo.lpips_weights``) and never
downloads anything; if the file is missing, or the images are smaller than AlexNet can take, it is
*unavailable*: ``lpips`` returns None and ``lpips_status()`` says why in one sentence. Never a made-up number.

Each score compares one image ((1, C, H, W) or (C, H, W)) with its reference and refuses a batch of several;
``per_image`` scores a batch image by image.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from diffdemo.imaging import to_unit

LPIPS_MIN_SIDE = 32  # AlexNet's stride-4 stem and two 3x3/2 poolings leave nothing of a smaller image
_lpips_lock = threading.Lock()
_lpips_nets: dict[tuple[str, str], object] = {}
_lpips_errors: dict[tuple[str, str], str] = {}


def one_image(x: torch.Tensor, what: str = "this score") -> torch.Tensor:
    """x itself when it holds one image; a ValueError for a batch of several (no silent first image)."""
    if x.ndim == 4 and x.shape[0] != 1:
        raise ValueError(f"{what} takes one image, got a batch of {x.shape[0]}: call it once per image")
    return x


def per_image(score, x: torch.Tensor, reference: torch.Tensor) -> list:
    """``score`` (psnr, ssim, lpips or all_metrics) of each image of a batch against its reference (one
    reference per image, or one for all)."""
    if reference.shape[0] == 1:
        reference = reference.expand(x.shape[0], *reference.shape[1:])
    if reference.shape[0] != x.shape[0]:
        raise ValueError(f"{x.shape[0]} images against {reference.shape[0]} references")
    return [score(x[i : i + 1], reference[i : i + 1]) for i in range(x.shape[0])]


def mean_psnr(x: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR of each image of a batch against its reference, averaged (dB)."""
    values = per_image(psnr, x.detach().cpu(), reference.detach().cpu())
    return float(sum(values) / len(values))


def psnr(x: torch.Tensor, reference: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB on the [0, 1] scale, of one image."""
    x, reference = one_image(x, "psnr"), one_image(reference, "psnr")
    return float(peak_signal_noise_ratio(to_unit(reference), to_unit(x), data_range=1.0))


def ssim(x: torch.Tensor, reference: torch.Tensor) -> float:
    """Structural similarity (Wang et al. 2004) of one colour image, [0, 1] scale."""
    x, reference = one_image(x, "ssim"), one_image(reference, "ssim")
    return float(structural_similarity(to_unit(reference), to_unit(x), data_range=1.0, channel_axis=-1))


def _load_lpips(net: str = "alex", weights: Path | None = None):
    """The LPIPS network for ``net`` from ``weights`` (default: the shipped file), cached; None if missing."""
    from diffdemo import lpips_weights

    path = _weights_path(net, weights)
    key = (net, str(path))
    with _lpips_lock:
        if key not in _lpips_nets and key not in _lpips_errors:
            if path.is_file():
                try:
                    _lpips_nets[key] = lpips_weights.load_network(path, net)
                except Exception:  # truncated or foreign file: say so plainly, no library text
                    _lpips_errors[key] = f"LPIPS unavailable: the {net} weights file could not be read."
            elif weights is None:
                _lpips_errors[key] = (
                    f"LPIPS unavailable: its {net} weights are not installed (python -m diffdemo.lpips_weights makes them)."
                )
            else:
                _lpips_errors[key] = f"LPIPS unavailable: no {net} weights file at the given path."
    return _lpips_nets.get(key)


def lpips_status(net: str = "alex", weights: Path | None = None, *, size: int | None = None) -> str:
    """'available' or one sentence saying why LPIPS cannot be computed here (for images of side ``size``)."""
    if _load_lpips(net, weights) is None:
        return _lpips_errors[(net, str(_weights_path(net, weights)))]
    if size is not None and size < LPIPS_MIN_SIDE:
        return f"LPIPS unavailable: it needs images of at least {LPIPS_MIN_SIDE}x{LPIPS_MIN_SIDE} px."
    return "available"


def _weights_path(net: str, weights: Path | None) -> Path:
    from diffdemo.lpips_weights import default_path

    return Path(weights) if weights is not None else default_path(net)


def lpips(x: torch.Tensor, reference: torch.Tensor, net: str = "alex", weights: Path | None = None) -> float | None:
    """Learned perceptual distance (Zhang et al. 2018) of one image, lower is better; None when unavailable."""
    x, reference = one_image(x, "lpips"), one_image(reference, "lpips")
    model = _load_lpips(net, weights)
    if model is None or min(x.shape[-2:]) < LPIPS_MIN_SIDE:
        return None
    with torch.no_grad():
        a = x.detach().float().cpu().clamp(-1, 1)
        b = reference.detach().float().cpu().clamp(-1, 1)
        return float(model(a, b).mean())


def all_metrics(x: torch.Tensor, reference: torch.Tensor) -> dict:
    """psnr, ssim and lpips (None when unavailable) of one image against the reference."""
    return {"psnr": psnr(x, reference), "ssim": ssim(x, reference), "lpips": lpips(x, reference)}


# --- aggregates over images -------------------------------------------------------------------------------------
MEAN_SD = "mean ± sd over the images (sd: the sample standard deviation, ddof = 1)"  # said beside every such table


def mean_sd(values) -> tuple[float, float]:
    """The one "mean ± sd" over images (``MEAN_SD``): the mean and the sample standard deviation (ddof = 1; 0 for
    one image) of the values that are not None; (nan, nan) when none is."""
    import numpy as np

    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def mean_interval(values, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """The Student t interval of the mean of ``values`` (scipy.stats.t: mean ± t sd / sqrt(n), sd with ddof = 1);
    (None, None) with fewer than 2 values; (mean, mean) when they are all equal."""
    import numpy as np
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return None, None
    sem = float(v.std(ddof=1) / np.sqrt(v.size))
    if sem == 0:
        return float(v.mean()), float(v.mean())
    low, high = stats.t.interval(confidence, v.size - 1, loc=float(v.mean()), scale=sem)
    return float(low), float(high)


def format_mean_sd(values, digits: int = 2) -> str:
    """'25.31 ± 1.20': ``mean_sd`` of ``values`` at ``digits`` decimals."""
    mean, sd = mean_sd(values)
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"
