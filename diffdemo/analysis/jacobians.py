"""The three Jacobians of the analysis and what a probe needs to take one column or row of them.

Every Jacobian here is of the score s(x, t) = -eps(x, t) / sqrt(1 - abar_t) (eq. 22) and the two affine maps of it:
reverse step J_f = (I + (1 - alpha_t) J_s) / sqrt(alpha_t) (eq. 34) and denoiser J_D = (I + (1 - abar_t) J_s) /
sqrt(abar_t) (Tweedie, eq. 11). So one network Jacobian-vector product gives all three columns (``jacobian_columns``),
one vector-Jacobian product all three rows. Pixels are (x, y) = (column, row), as the UI's click gives them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from diffdemo.analysis.products import score_jvp, score_vjp
from diffdemo.models import DiffusionModel
from diffdemo.validation import check_timestep

KINDS = ("score", "reverse", "denoiser")
LABELS = {"score": "J_s", "reverse": "J_f", "denoiser": "J_D"}
_ALIASES = {
    "score": "score",
    "js": "score",
    "j_s": "score",
    "s": "score",
    "reverse": "reverse",
    "jf": "reverse",
    "j_f": "reverse",
    "f": "reverse",
    "denoiser": "denoiser",
    "jd": "denoiser",
    "j_d": "denoiser",
    "d": "denoiser",
}


def operator_kind(name: str) -> str:
    """Normalise an operator name ("Js", "J_f", "denoiser", ...) to one of KINDS."""
    kind = _ALIASES.get(str(name).lower())
    if kind is None:
        raise ValueError(f"unknown operator {name!r}: use one of Js, Jf, JD (score, reverse, denoiser)")
    return kind


def checked_timestep(model: DiffusionModel, t) -> int:
    """The one timestep rule (``validation.check_timestep``) against this model's T."""
    return check_timestep(t, model.schedule.T, "timestep")


def checked_pixel(shape: Sequence[int], pixel: Sequence[int], channel: int | None) -> tuple[int, int]:
    """Pixel (x, y) as ints inside an image of ``shape`` (..., C, H, W), and a channel in range or None; else a
    ValueError saying which is out."""
    h, w = int(shape[-2]), int(shape[-1])
    x, y = (int(p) for p in pixel)
    if not (0 <= x < w and 0 <= y < h):
        raise ValueError(f"pixel ({x}, {y}) is outside the {w}x{h} image (x in [0, {w - 1}], y in [0, {h - 1}])")
    if channel is not None and not 0 <= int(channel) < int(shape[-3]):
        raise ValueError(f"channel must be in [0, {int(shape[-3]) - 1}] or None, got {channel}")
    return x, y


def pixel_basis(shape: Sequence[int], pixel: Sequence[int], channel: int | None = None) -> torch.Tensor:
    """The unit input direction e_i at pixel (x, y): one channel, or all channels at once (summed column)."""
    x, y = checked_pixel(shape, pixel, channel)
    e = torch.zeros(1, *shape[-3:])
    if channel is None:
        e[0, :, y, x] = 1.0
    else:
        e[0, int(channel), y, x] = 1.0
    return e


def affine_coefficients(model: DiffusionModel, kind: str, t: int, t_prev: int | None = None) -> tuple[float, float]:
    """(a, b) with J = a I + b J_s: (0, 1) score; J_f eq. 34 with alpha = abar_t / abar_t'; J_D from eq. 11."""
    kind = operator_kind(kind)
    s = model.schedule
    if kind == "score":
        return 0.0, 1.0
    if kind == "reverse":
        alpha = s.step_alpha(t, t - 1 if t_prev is None else t_prev)
        return 1.0 / alpha**0.5, (1.0 - alpha) / alpha**0.5
    a = s.abar(t)
    return 1.0 / a**0.5, (1.0 - a) / a**0.5


def state_at(model: DiffusionModel, x0: torch.Tensor, t: int, seed: int = 0) -> torch.Tensor:
    """The probe's input x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) z with a seeded z (eq. 3); same z for every t."""
    return model.schedule.noise_image(x0, checked_timestep(model, t), seed, model.device)


def _derive(model: DiffusionModel, v: torch.Tensor, js_v: torch.Tensor, t: int, t_prev: int | None) -> dict:
    """Score, reverse-step and denoiser products from one J_s product (eq. 34 and eq. 11 are affine in J_s)."""
    out = {}
    for kind in KINDS:
        a, b = affine_coefficients(model, kind, t, t_prev)
        # float64 because J_D's identity and J_s terms cancel to ~abar_t at high noise
        out[kind] = (a * v.double() + b * js_v.double()).float()
    return out


def jacobian_columns(
    model, x_t, t: int, pixel, channel: int | None = None, method="jvp", eps=1e-2, t_prev: int | None = None
) -> dict[str, torch.Tensor]:
    """Columns J e_i, (C, H, W), of J_s, J_f (eq. 34) and J_D from ONE network Jacobian-vector product at ``pixel``
    (x, y) of x_t; ``channel=None`` sums the input channels; ``method`` and ``eps`` as for ``score_jvp``."""
    t = checked_timestep(model, t)
    v = pixel_basis(x_t.shape, pixel, channel).to(model.device)
    js_v = score_jvp(model, x_t[:1], t, v, method, eps)
    return {k: c[0].cpu() for k, c in _derive(model, v, js_v, t, t_prev).items()}


def jacobian_column(model, x_t, t: int, pixel, *options, kind: str = "score", **named) -> torch.Tensor:
    """One column J e_i (C, H, W) of J_s (eq. 32), J_f (eq. 34) or J_D (``kind``); the other arguments as for
    ``jacobian_columns``."""
    return jacobian_columns(model, x_t, t, pixel, *options, **named)[operator_kind(kind)]


def jacobian_rows(model, x_t, t: int, pixel, channel: int | None = None, t_prev=None) -> dict[str, torch.Tensor]:
    """Rows e_i^T J, (C, H, W), of J_s, J_f and J_D from ONE vector-Jacobian product: how output i sees the input."""
    t = checked_timestep(model, t)
    u = pixel_basis(x_t.shape, pixel, channel).to(model.device)
    js_u = score_vjp(model, x_t[:1], t, u)
    return {k: r[0].cpu() for k, r in _derive(model, u, js_u, t, t_prev).items()}


def jacobian_row(model, x_t, t: int, pixel, *options, kind: str = "score", **named) -> torch.Tensor:
    """One row e_i^T J (C, H, W) of J_s, J_f or J_D (``kind``) by torch.func.vjp; the other arguments as for
    ``jacobian_rows``."""
    return jacobian_rows(model, x_t, t, pixel, *options, **named)[operator_kind(kind)]
