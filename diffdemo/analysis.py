"""Sensitivity and spectral analysis of the score network (poster sections 3.7, 3.8, 4.6, 4.7; eqs. 31-35).

Every Jacobian here is of the score s(x, t) = -eps(x, t) / sqrt(1 - abar_t) (eq. 22) and the two affine maps of it:
reverse step J_f = (I + (1 - alpha_t) J_s) / sqrt(alpha_t) (eq. 34) and denoiser J_D = (I + (1 - abar_t) J_s) /
sqrt(abar_t) (Tweedie, eq. 11). So one network Jacobian-vector product gives all three columns, and spectra need
only J_s v and J_s^T u products: no Jacobian is ever materialised.

Pixels are (x, y) = (column, row), as the UI's click gives them. Autograd is switched on only inside this module's
JVP/VJP calls; finite differences run under ``torch.no_grad``. The network always runs in float32 here, whatever
precision the model view carries (bf16's ~4e-3 relative rounding would drown a 1e-2 finite difference), with the
cheaper JVP / VJP rules of ``diffdemo/autodiff.py`` (same values).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from diffdemo.checkpoint import checkpoint
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
METHODS = ("jvp", "central", "forward")
Progress = Callable[[float, str], None] | None


# --- helpers ---------------------------------------------------------------------------------------
def operator_kind(name: str) -> str:
    """Normalise an operator name ("Js", "J_f", "denoiser", ...) to one of KINDS."""
    kind = _ALIASES.get(str(name).lower())
    if kind is None:
        raise ValueError(f"unknown operator {name!r}: use one of Js, Jf, JD (score, reverse, denoiser)")
    return kind


# A Ritz value or singular triplet counts as converged when its residual is below this fraction of the value: the
# Spectrum tab, `spectrum` and `reproduce` mark the others, and iterate until the values shown meet it when asked.
RESIDUAL_TOL = 1e-3

_tf32_lock = threading.Lock()
_tf32_users = 0
_tf32_saved: tuple[bool, bool] | None = None


def _tf32_acquire() -> None:
    """Switch TF32 off for CUDA matmuls while at least one analysis runs; the first user saves the flags.

    The flags are process-wide, so a save / restore per call would race under DIFFDEMO_CONCURRENCY > 1 (one call
    restoring TF32 while another still differentiates); the reference count restores them only when the last ends.
    Meanwhile other GPU work runs without TF32 too: slower, never less exact.
    """
    global _tf32_users, _tf32_saved
    with _tf32_lock:
        if _tf32_users == 0:
            _tf32_saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        _tf32_users += 1


def _tf32_release() -> None:
    global _tf32_users
    with _tf32_lock:
        _tf32_users -= 1
        if _tf32_users == 0 and _tf32_saved is not None:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = _tf32_saved


@contextmanager
def _exact_autodiff(device=None):
    """Math SDPA kernel, and no TF32 on CUDA, while differentiating (on the CPU no flag is touched: TF32 is CUDA's).

    The flash / memory-efficient attention kernels have no forward-mode AD formula (NotImplementedError on CPU and
    CUDA), and TF32 matmuls would add ~1e-3 relative error to every Jacobian product.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    cuda = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
    if cuda:
        _tf32_acquire()
    try:
        with sdpa_kernel(SDPBackend.MATH), torch.enable_grad():
            yield
    finally:
        if cuda:
            _tf32_release()


def _check_t(model: DiffusionModel, t) -> int:
    """The one timestep rule (``validation.check_timestep``) against this model's T."""
    return check_timestep(t, model.schedule.T, "timestep")


def _check_pixel(shape: Sequence[int], pixel: Sequence[int], channel: int | None) -> tuple[int, int]:
    h, w = int(shape[-2]), int(shape[-1])
    x, y = (int(p) for p in pixel)
    if not (0 <= x < w and 0 <= y < h):
        raise ValueError(f"pixel ({x}, {y}) is outside the {w}x{h} image (x in [0, {w - 1}], y in [0, {h - 1}])")
    if channel is not None and not 0 <= int(channel) < int(shape[-3]):
        raise ValueError(f"channel must be in [0, {int(shape[-3]) - 1}] or None, got {channel}")
    return x, y


def pixel_basis(shape: Sequence[int], pixel: Sequence[int], channel: int | None = None) -> torch.Tensor:
    """The unit input direction e_i at pixel (x, y): one channel, or all channels at once (summed column)."""
    x, y = _check_pixel(shape, pixel, channel)
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
    return model.schedule.noise_image(x0, _check_t(model, t), seed, model.device)


def _timesteps(t, n: int, device) -> torch.Tensor:
    if isinstance(t, torch.Tensor) and t.ndim > 0:
        return t.to(device=device, dtype=torch.long)
    return torch.full((n,), int(t), dtype=torch.long, device=device)


# --- Jacobian-vector products ---------------------------------------------------------------------
def _jvp(model: DiffusionModel, X: torch.Tensor, T: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """J_s(X) V for every row, exactly; call inside ``_exact_autodiff``.

    On a UNet the forward-mode pass is traced once per input shape (``make_fx``) into a plain graph of aten ops:
    the same operations as ``torch.func.jvp``, without its per-op dispatch through the dual-tensor machinery,
    which costs about as much as the arithmetic on a 64 px model. The trace takes a few seconds, once.
    """
    f = lambda z: model.score(z, T)  # noqa: E731
    if not getattr(model, "autodiff", False) or not hasattr(model, "derived"):
        return torch.func.jvp(f, (X,), (V,))[1]

    def trace():
        from torch.fx.experimental.proxy_tensor import make_fx

        graph = make_fx(lambda x, v, t: torch.func.jvp(lambda z: model.score(z, t), (x,), (v,))[1])(X, V, T)
        graph.graph.eliminate_dead_code()
        graph.recompile()
        return graph

    key = ("jvp_graph", tuple(X.shape), str(X.device), T.dtype)
    return model.derived(key, trace)(X, V.contiguous(), T)


def prepare_probe(model: DiffusionModel, batches: tuple[int, ...] = (1,)) -> None:
    """Trace the JVP graph for each batch size now (a few seconds each, once per model), so that the first probe
    (batch 1) or spectrum (2 rows per timestep, 1 Arnoldi row) of that size does not pay it."""
    for n in batches:
        x = torch.zeros(n, *model.sample_shape)
        score_jvp(model, x, model.schedule.T // 2, x, method="jvp")


def score_jvp(
    model: DiffusionModel, x: torch.Tensor, t, v: torch.Tensor, method: str = "jvp", eps: float = 1e-2
) -> torch.Tensor:
    """J_s v row by row (eqs. 31-32): exact by torch.func.jvp, or by forward / central differences.

    Rows of ``x`` are independent states (``t`` an int or one timestep per row). Finite differences put base and
    perturbed inputs through the network in one batch.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {METHODS}")
    model = model.for_autodiff()
    x = x.to(model.device, torch.float32)
    v = v.to(model.device, torch.float32).expand_as(x)
    T = _timesteps(t, x.shape[0], model.device)
    n = x.shape[0]
    checkpoint()
    if method == "jvp":
        with _exact_autodiff(model.device):
            out = _jvp(model, x, T, v.contiguous())
        return out.detach()
    if not eps > 0:
        raise ValueError(f"finite-difference eps must be > 0, got {eps}")
    with torch.no_grad():
        if method == "forward":
            both = model.score(torch.cat([x, x + eps * v]), torch.cat([T, T]))
            return (both[n:] - both[:n]) / eps
        both = model.score(torch.cat([x + eps * v, x - eps * v]), torch.cat([T, T]))
        return (both[:n] - both[n:]) / (2 * eps)


def score_vjp(model: DiffusionModel, x: torch.Tensor, t, u: torch.Tensor) -> torch.Tensor:
    """J_s^T u row by row, exactly by torch.func.vjp (a Jacobian row when u = e_i)."""
    model = model.for_autodiff()
    x = x.to(model.device, torch.float32)
    T = _timesteps(t, x.shape[0], model.device)
    checkpoint()
    with _exact_autodiff(model.device):
        _, pullback = torch.func.vjp(lambda z: model.score(z, T), x)
        (out,) = pullback(u.to(model.device, torch.float32).expand_as(x).contiguous())
    return out.detach()


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
    t = _check_t(model, t)
    v = pixel_basis(x_t.shape, pixel, channel).to(model.device)
    js_v = score_jvp(model, x_t[:1], t, v, method, eps)
    return {k: c[0].cpu() for k, c in _derive(model, v, js_v, t, t_prev).items()}


def jacobian_column(model, x_t, t: int, pixel, *options, kind: str = "score", **named) -> torch.Tensor:
    """One column J e_i (C, H, W) of J_s (eq. 32), J_f (eq. 34) or J_D (``kind``); the other arguments as for
    ``jacobian_columns``."""
    return jacobian_columns(model, x_t, t, pixel, *options, **named)[operator_kind(kind)]


def jacobian_rows(model, x_t, t: int, pixel, channel: int | None = None, t_prev=None) -> dict[str, torch.Tensor]:
    """Rows e_i^T J, (C, H, W), of J_s, J_f and J_D from ONE vector-Jacobian product: how output i sees the input."""
    t = _check_t(model, t)
    u = pixel_basis(x_t.shape, pixel, channel).to(model.device)
    js_u = score_vjp(model, x_t[:1], t, u)
    return {k: r[0].cpu() for k, r in _derive(model, u, js_u, t, t_prev).items()}


def jacobian_row(model, x_t, t: int, pixel, *options, kind: str = "score", **named) -> torch.Tensor:
    """One row e_i^T J (C, H, W) of J_s, J_f or J_D (``kind``) by torch.func.vjp; the other arguments as for
    ``jacobian_rows``."""
    return jacobian_rows(model, x_t, t, pixel, *options, **named)[operator_kind(kind)]


# --- energy vs radius ------------------------------------------------------------------------------
@dataclass(frozen=True)
class EnergyCurve:
    """Fraction of the squared response within radius r of the probed pixel (poster Figure 7)."""

    radii: np.ndarray  # r = 0, 1, ..., ceil(largest distance in the image), pixels
    fraction: np.ndarray  # sum_{|p - p0| <= r} e_p / sum_p e_p,  e_p = sum_c v_c(p)^2
    r50: float  # smallest pixel distance holding >= 50 % of the energy
    r90: float
    n_eff: float  # effective number of pixels (sum e_p)^2 / sum e_p^2
    total: float  # sum_p e_p that the fractions divide by
    operator: str = "J_D"
    exclude_centre: bool = False
    pixel: tuple[int, int] = (0, 0)
    t: int | None = None
    column: torch.Tensor | None = field(default=None, repr=False)  # the (C, H, W) column it was computed on

    @property
    def label(self) -> str:
        """What the curve was computed on, e.g. "J_D" or "J_s (centre excluded)"."""
        return self.operator + (" (centre excluded)" if self.exclude_centre else "")

    def summary(self) -> dict:
        """JSON-ready scalars."""
        scalars = {k: getattr(self, k) for k in ("operator", "exclude_centre", "r50", "r90", "n_eff")}
        return {"t": self.t, "on": self.label, **scalars, "total_energy": self.total}


def energy_vs_radius(
    column_map,
    pixel: Sequence[int],
    exclude_centre: bool = False,
    operator: str = "J_D",
    t: int | None = None,
) -> EnergyCurve:
    """Energy within radius r of the probed pixel, r50 / r90 and n_eff = (sum v^2)^2 / sum v^4 (poster 4.6).

    ``column_map`` is (C, H, W) or (H, W); channels are summed in energy, e_p = sum_c v_c(p)^2, so n_eff counts pixels.
    """
    v = column_map.detach().double().cpu().numpy() if isinstance(column_map, torch.Tensor) else np.asarray(column_map)
    v = v.astype(np.float64)
    if v.ndim == 2:
        v = v[None]
    if v.ndim != 3:
        raise ValueError(f"column map must be (C, H, W) or (H, W), got shape {v.shape}")
    x0, y0 = _check_pixel(v.shape, pixel, None)
    e = (v**2).sum(0)
    if exclude_centre:
        e[y0, x0] = 0.0
    h, w = e.shape
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.hypot(xx - x0, yy - y0).ravel()
    order = np.argsort(dist, kind="stable")
    d_sorted, cum = dist[order], np.cumsum(e.ravel()[order])
    total = float(cum[-1])
    radii = np.arange(int(math.ceil(dist.max())) + 1, dtype=np.float64)
    if total <= 0:
        return EnergyCurve(
            radii, np.zeros_like(radii), math.nan, math.nan, 0.0, 0.0, operator, exclude_centre, (x0, y0), t
        )
    # cumulative energy at integer radii: everything with distance <= r (a tiny slack for float hypot)
    upto = np.searchsorted(d_sorted, radii + 1e-9, side="right")
    fraction = np.where(upto > 0, cum[np.maximum(upto - 1, 0)], 0.0) / total

    def quantile_radius(q: float) -> float:
        return float(d_sorted[min(int(np.searchsorted(cum, q * total * (1 - 1e-12))), len(cum) - 1)])

    n_eff = total**2 / float((e**2).sum())
    return EnergyCurve(
        radii,
        fraction,
        quantile_radius(0.5),
        quantile_radius(0.9),
        n_eff,
        total,
        operator,
        bool(exclude_centre),
        (x0, y0),
        t,
        torch.from_numpy(v).float(),
    )


# --- one probe ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeResult:
    """A click on pixel (x, y) at timestep t: the three Jacobian columns, the energy curve, the FD error."""

    t: int
    pixel: tuple[int, int]
    channel: int | None
    method: str
    eps: float
    columns: dict  # {"score", "reverse", "denoiser"} -> (C, H, W) float32 on the CPU, computed by ``method``
    energy: EnergyCurve
    fd_vs_jvp_rel_err: float | None  # ||J_s e_i (finite difference) - J_s e_i (jvp)|| / ||J_s e_i (jvp)||
    x_t: torch.Tensor = field(repr=False)
    t_prev: int = -1

    def summary(self) -> dict:
        """JSON-ready scalars."""
        return dict(
            t=self.t,
            t_prev=self.t_prev,
            pixel=list(self.pixel),
            channel=self.channel,
            method=self.method,
            eps=self.eps,
            fd_vs_jvp_rel_err=self.fd_vs_jvp_rel_err,
            **{k: v for k, v in self.energy.summary().items() if k != "t"},
        )


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    """||approx - exact||_2 / ||exact||_2."""
    num = (approx.double() - exact.double()).norm()
    den = exact.double().norm()
    return float(num / den) if den > 0 else float(num)


def probe(
    model: DiffusionModel,
    x_t: torch.Tensor,
    t: int,
    pixel: Sequence[int],
    channel: int | None = None,
    method: str = "jvp",
    eps: float = 1e-2,
    energy_on: str = "denoiser",
    exclude_centre: bool = False,
    compare: bool = True,
    t_prev: int | None = None,
) -> ProbeResult:
    """Columns of J_s, J_f, J_D at a pixel (eqs. 31-34), their energy curve, and FD-vs-JVP error when ``compare``.

    With ``compare`` a second column is computed by the other kind of method (central differences for ``jvp``,
    the exact JVP for a difference method) so the finite-difference error is always on show.
    """
    t = _check_t(model, t)
    t_prev = t - 1 if t_prev is None else int(t_prev)
    columns = jacobian_columns(model, x_t, t, pixel, channel, method, eps, t_prev)
    err = None
    if compare:
        other = jacobian_columns(model, x_t, t, pixel, channel, "central" if method == "jvp" else "jvp", eps, t_prev)
        fd, exact = (other, columns) if method == "jvp" else (columns, other)
        err = relative_error(fd["score"], exact["score"])  # on J_s: J_f / J_D would hide it behind the identity
    kind = operator_kind(energy_on)
    curve = energy_vs_radius(columns[kind], pixel, exclude_centre, LABELS[kind], t)
    x, y = _check_pixel(x_t.shape, pixel, channel)
    return ProbeResult(t, (x, y), channel, method, float(eps), columns, curve, err, x_t.detach().cpu(), t_prev)


def energy_sweep(
    model: DiffusionModel,
    x0: torch.Tensor,
    pixel: Sequence[int],
    timesteps: Sequence[int],
    seed: int = 0,
    channel: int | None = None,
    energy_on: str = "denoiser",
    exclude_centre: bool = False,
    method: str = "central",
    eps: float = 1e-2,
    max_batch: int | None = None,
    progress: Progress = None,
) -> list[EnergyCurve]:
    """Energy vs radius at many timesteps (poster Figure 7), timesteps batched into as few network calls as allowed.

    Each state is ``state_at(model, x0, t, seed)``; ``max_batch`` bounds the states per call (default: all at once).
    Central differences by default: one batch-2n forward, cheaper than the batched forward-mode JVP (timings:
    bench/RESULTS_analysis.md), at a small relative error (``probe`` reports it for each click).
    J_f uses the single step t -> t-1. Each curve keeps its column in ``.column``.
    """
    ts = [_check_t(model, t) for t in timesteps]
    if not ts:
        raise ValueError("energy_sweep needs at least one timestep")
    kind = operator_kind(energy_on)
    shape = x0.shape
    v = pixel_basis(shape, pixel, channel).to(model.device)
    chunk = len(ts) if max_batch is None else max(1, int(max_batch) // (1 if method == "jvp" else 2))
    curves: list[EnergyCurve] = []
    for start in range(0, len(ts), chunk):
        checkpoint()
        part = ts[start : start + chunk]
        if progress:
            progress(start / len(ts), f"timesteps {part[0]}..{part[-1]}")
        X = torch.cat([state_at(model, x0[:1], t, seed) for t in part])
        js_v = score_jvp(model, X, torch.tensor(part), v, method, eps)
        for i, t in enumerate(part):
            a, b = affine_coefficients(model, kind, t, None)
            col = (a * v[0] + b * js_v[i]).cpu()
            curves.append(energy_vs_radius(col, pixel, exclude_centre, LABELS[kind], t))
    if progress:
        progress(1.0, "done")
    return curves


# --- spectra --------------------------------------------------------------------------------------
class RowOperators:
    """J = a_r I + b_r J_s(x_r, t_r) for every row r of a batch; one network JVP / VJP serves all rows at once.

    The VJP's forward graph is built once and reused (every power iteration then costs one backward pass).
    """

    def __init__(self, model: DiffusionModel, X: torch.Tensor, T: torch.Tensor, a: torch.Tensor, b: torch.Tensor):
        self.model, self.X, self.T = model.for_autodiff(), X.to(model.device, torch.float32), T.to(model.device)
        shape = (-1,) + (1,) * (X.ndim - 1)
        self.a = a.to(model.device, torch.float64).view(shape)
        self.b = b.to(model.device, torch.float64).view(shape)
        self._pullback = None
        self.n_jvp = self.n_vjp = 0

    def _f(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.score(z, self.T)

    def matvec(self, V: torch.Tensor) -> torch.Tensor:
        """Row-wise J v (float64 in and out; the network runs in float32)."""
        checkpoint()  # the traced JVP graph never calls model.eps: every Krylov iteration checks here
        with _exact_autodiff(self.X.device):
            js = _jvp(self.model, self.X, self.T, V.to(torch.float32))
        self.n_jvp += 1
        return self.a * V + self.b * js.detach().double()

    def rmatvec(self, U: torch.Tensor) -> torch.Tensor:
        """Row-wise J^T u."""
        checkpoint()  # the reused pullback never calls model.eps either
        with _exact_autodiff(self.X.device):
            if self._pullback is None:
                _, self._pullback = torch.func.vjp(self._f, self.X)
            (js,) = self._pullback(U.to(torch.float32).contiguous())
        self.n_vjp += 1
        return self.a * U + self.b * js.detach().double()


@dataclass(frozen=True)
class SingularResult:
    """Top-k singular triplets of J_s or J_f at (x_t, t) by Krylov (Lanczos) iteration on J^T J (poster 3.8, Fig. 9)."""

    operator: str  # "J_s" or "J_f"
    t: int
    values: np.ndarray  # (k,) descending
    right: torch.Tensor  # (k, C, H, W) input directions v_i
    left: torch.Tensor  # (k, C, H, W) output directions u_i = J v_i / sigma_i
    residual: np.ndarray  # (k,) ||J^T u_i - sigma_i v_i|| / sigma_i at the last iteration
    history: np.ndarray  # (iters,) sigma_max after each iteration
    residual_history: np.ndarray  # (iters,) max residual after each iteration
    iters: int

    @property
    def converged(self) -> np.ndarray:
        """(k,) bool: which triplets have a relative residual below RESIDUAL_TOL."""
        return np.asarray(self.residual) <= RESIDUAL_TOL

    def summary(self) -> dict:
        return dict(
            operator=self.operator,
            t=self.t,
            singular_values=self.values.tolist(),
            residual=self.residual.tolist(),
            converged=self.converged.tolist(),
            iters=self.iters,
        )


@dataclass(frozen=True)
class EigResult:
    """Dominant eigenvalues of J_s and J_f (= a + b lambda_s) by Arnoldi on J_s; complex pairs kept (eq. 35)."""

    t: int
    t_prev: int
    eigenvalues_Js: np.ndarray  # complex Ritz values of J_s, largest |.| first
    eigenvalues_Jf: np.ndarray  # the same Ritz vectors' values for J_f, largest |.| first
    rho_Jf: float  # spectral radius estimate of J_f
    rho_Js: float
    residual_Jf: float  # ||J_f y - theta y|| / |theta| for the dominant J_f Ritz pair
    residual_Js: float
    iters: int  # Krylov dimension (JVPs spent)
    residuals_Js: np.ndarray | None = (
        None  # ||J_s y - theta y|| / |theta| for every Ritz value, in eigenvalues_Js order
    )
    residuals_Jf: np.ndarray | None = None  # the same for J_f, in eigenvalues_Jf order

    def converged(self, k: int, tol: float = RESIDUAL_TOL) -> np.ndarray:
        """(k,) bool: which of the k largest-modulus Ritz values of J_s meet the residual tolerance."""
        return np.asarray(self.residuals_Js[:k]) <= tol


def _bidiagonalization(
    ops: RowOperators, k: int, iters: int, generator: torch.Generator, tol: float = 0.0, progress=None
):
    """Golub-Kahan-Lanczos bidiagonalisation of each row's J: one batched JVP + one batched VJP per iteration.

    It is subspace iteration on J^T J accelerated by keeping the whole Krylov basis: after m steps J V_m = U_m B_m
    with B_m upper triangular (bidiagonal up to round-off; full reorthogonalisation keeps V, U orthonormal), and the
    SVD of B_m gives the Ritz triplets. Plain power iteration stalls when the top singular values cluster, as they
    do for J_f ~ I + O(beta_t); Krylov convergence depends on the square root of the gap instead. The residual of
    triplet i is ||J^T u_i - sigma_i v_i|| = beta_m |x_i[m]| (J v_i = sigma_i u_i holds exactly).
    """
    B = ops.X.shape[0]
    shape = ops.X.shape[1:]
    D = int(np.prod(shape))
    m = max(int(k), min(int(iters), D))
    dev = ops.X.device
    V = torch.zeros(B, m + 1, D, dtype=torch.float64, device=dev)
    U = torch.zeros(B, m, D, dtype=torch.float64, device=dev)
    Bm = torch.zeros(B, m, m, dtype=torch.float64)
    v = torch.randn(B, D, generator=generator, dtype=torch.float64).to(dev)
    V[:, 0] = v / v.norm(dim=1, keepdim=True)
    beta = torch.zeros(B, dtype=torch.float64)
    hist, rhist = [], []
    steps = m
    for j in range(m):
        u = ops.matvec(V[:, j].reshape(B, *shape)).reshape(B, D)
        for _ in range(2):  # Gram-Schmidt twice against the previous u's: orthogonal to working precision
            c = torch.einsum("bid,bd->bi", U[:, :j], u)
            u = u - torch.einsum("bid,bi->bd", U[:, :j], c)
            Bm[:, :j, j] += c.cpu()
        alpha = u.norm(dim=1)
        Bm[:, j, j] = alpha.cpu()
        U[:, j] = u / alpha.clamp(min=1e-300)[:, None]
        w = ops.rmatvec(U[:, j].reshape(B, *shape)).reshape(B, D)
        for _ in range(2):
            c = torch.einsum("bid,bd->bi", V[:, : j + 1], w)
            w = w - torch.einsum("bid,bi->bd", V[:, : j + 1], c)
        beta = w.norm(dim=1)
        V[:, j + 1] = w / beta.clamp(min=1e-300)[:, None]
        X, S, Yh = torch.linalg.svd(Bm[:, : j + 1, : j + 1])
        res = beta.cpu()[:, None] * X[:, j, :].abs() / S.clamp(min=1e-300)
        hist.append(S[:, 0].numpy())
        rhist.append(res[:, : min(k, j + 1)].max(dim=1).values.numpy())
        if progress:
            progress((j + 1) / m, f"singular vectors: iteration {j + 1}/{m}")
        converged = j + 1 >= k and tol > 0 and float(res[:, :k].max()) < tol
        if converged or float(beta.max()) < 1e-12 * float(S.max()):
            steps = j + 1  # converged, or an invariant subspace was found (then the triplets are exact)
            break
    X, S, Yh = X[:, :, :k].to(dev), S[:, :k], Yh[:, :k, :].to(dev)
    right = torch.einsum("bjd,bij->bdi", V[:, :steps], Yh)  # (B, D, k): V_m y_i
    left = torch.einsum("bjd,bji->bdi", U[:, :steps], X)  # (B, D, k): U_m x_i
    return S.numpy(), right.cpu(), left.cpu(), res[:, :k].numpy(), np.stack(hist, 1), np.stack(rhist, 1)


def arnoldi(ops: RowOperators, m: int, generator: torch.Generator, progress=None, tol: float = 0.0, k: int = 1):
    """Up to m steps of Arnoldi on each row's J (row-batched, one JVP per step): Hessenberg H (B, m+1, m).

    With ``tol`` > 0 it stops as soon as every row's k largest-modulus Ritz values have a residual
    ||J y - theta y|| / |theta| = h_{j+1,j} |y_j| / |theta| below ``tol`` (``m`` is then the cap).
    """
    B = ops.X.shape[0]
    shape = ops.X.shape[1:]
    D = int(np.prod(shape))
    m = max(1, min(int(m), D))
    Q = torch.zeros(B, m + 1, D, dtype=torch.float64, device=ops.X.device)
    H = torch.zeros(B, m + 1, m, dtype=torch.float64)
    q = torch.randn(B, D, generator=generator, dtype=torch.float64).to(ops.X.device)
    Q[:, 0] = q / q.norm(dim=1, keepdim=True)
    steps = m
    for j in range(m):
        w = ops.matvec(Q[:, j].reshape(B, *shape)).reshape(B, D)
        for _ in range(2):  # classical Gram-Schmidt twice: orthogonal to working precision
            c = torch.einsum("bid,bd->bi", Q[:, : j + 1], w)
            w = w - torch.einsum("bid,bi->bd", Q[:, : j + 1], c)
            H[:, : j + 1, j] += c.cpu()
        h = w.norm(dim=1)
        H[:, j + 1, j] = h.cpu()
        if progress:
            progress((j + 1) / m, f"Arnoldi: step {j + 1}/{m}")
        if float(h.min()) < 1e-12 * max(float(H[:, : j + 2, : j + 1].abs().max()), 1e-300):
            steps = j + 1  # invariant subspace found: the Ritz values are exact
            break
        if tol > 0 and j + 1 >= k and all(_top_residuals(H[b, : j + 2, : j + 1], k).max() < tol for b in range(B)):
            steps = j + 1
            break
        Q[:, j + 1] = w / h[:, None]
    return H[:, : steps + 1, :steps], steps


def _top_residuals(H: torch.Tensor, k: int) -> np.ndarray:
    """Relative residuals of the k largest-modulus Ritz values of one (m+1, m) Hessenberg matrix."""
    theta, res = _ritz(H, 0.0, 1.0)[:2]
    return res[:k] / np.maximum(np.abs(theta[:k]), 1e-300)


def _ritz(H: torch.Tensor, a: float, b: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ritz values of J_s and of a I + b J_s from one Hessenberg matrix, with their residuals ||J y - theta y||."""
    m = H.shape[1]
    theta, Y = np.linalg.eig(H[:m, :m].numpy())
    h_next = float(H[m, m - 1]) if H.shape[0] > m else 0.0
    res_s = np.abs(h_next * Y[-1, :])  # Y's columns are unit vectors, so this is ||J_s y - theta y||
    order_s = np.argsort(-np.abs(theta), kind="stable")
    theta_f = a + b * theta
    order_f = np.argsort(-np.abs(theta_f), kind="stable")
    return theta[order_s], res_s[order_s], theta_f[order_f], (abs(b) * res_s)[order_f]


def euler_step_limit(eigenvalues: np.ndarray) -> float:
    """Largest h with |1 + h lambda| <= 1 for every given eigenvalue lambda of J_s (explicit-Euler stability, [11]).

    The reverse step (eq. 17) for a jump with alpha = abar_t / abar_t' is x' = (x + h s(x)) / sqrt(1 - h), h = 1 - alpha:
    an explicit-Euler step of size h on dx/dtau = s(x) followed by the non-stiff rescale 1/sqrt(1 - h) (the VP drift's
    x/2 term). |1 + h lambda|^2 = 1 + 2 h Re(lambda) + h^2 |lambda|^2 <= 1  <=>  h <= -2 Re(lambda) / |lambda|^2.
    Modes with Re(lambda) >= 0 grow under the exact flow as well and set no limit (inf if no mode does).
    """
    lam = np.asarray(eigenvalues, dtype=np.complex128)
    neg = lam[lam.real < 0]
    if neg.size == 0:
        return math.inf
    return float(np.min(-2 * neg.real / np.abs(neg) ** 2))


def max_stable_stride(model: DiffusionModel, t: int, h_max: float) -> int:
    """Largest stride k >= 1 whose jump t -> t-k has h = 1 - abar_t / abar_{t-k} <= h_max (0 if even k = 1 fails)."""
    s = model.schedule
    best = 0
    for k in range(1, t + 2):  # t - k = -1 is the clean end
        if 1 - s.step_alpha(t, t - k) <= h_max:
            best = k
        else:
            break
    return best


@dataclass(frozen=True)
class SpectrumResult:
    """Spectra of J_s and J_f at one timestep (poster Figures 8, 9) and the explicit-Euler step-size limit."""

    t: int
    t_prev: int  # J_f is the jump t -> t_prev (default the single step t - 1)
    singular_Js: SingularResult
    singular_Jf: SingularResult
    eig: EigResult
    h_max: float  # euler_step_limit of the Ritz values of J_s
    h_max_sigma: float  # 2 / sigma_max(J_s): the same bound if J_s's spectrum were real negative (|lambda| <= sigma)
    max_stride: int  # largest stride t -> t-k with 1 - abar_t / abar_{t-k} <= h_max
    stride_used: int  # the stride of the default strided run
    h_used: float  # 1 - abar_t / abar_{t - stride_used}
    x_t: torch.Tensor = field(repr=False)

    @property
    def sigma_max_Js(self) -> float:
        return float(self.singular_Js.values[0])

    @property
    def sigma_max_Jf(self) -> float:
        return float(self.singular_Jf.values[0])

    @property
    def rho_Jf(self) -> float:
        return self.eig.rho_Jf

    def unconverged(self) -> list[str]:
        """The values shown (k singular values of J_s and J_f, the k largest Ritz values of J_s) whose relative
        residual is above RESIDUAL_TOL, by name ("sigma_2(J_s)", "lambda_3(J_s)")."""
        k = len(self.singular_Js.values)
        parts = (("sigma", "J_s", self.singular_Js.converged), ("sigma", "J_f", self.singular_Jf.converged),
                 ("lambda", "J_s", self.eig.converged(k)))  # fmt: skip
        return [f"{sym}_{i + 1}({op})" for sym, op, flags in parts for i, ok in enumerate(flags) if not ok]

    @property
    def all_converged(self) -> bool:
        """Every value shown meets RESIDUAL_TOL."""
        return not self.unconverged()

    def summary(self) -> dict:
        """JSON-ready numbers (complex eigenvalues as [re, im])."""

        def pairs(z):
            return [[float(c.real), float(c.imag)] for c in z]

        return dict(
            t=self.t,
            t_prev=self.t_prev,
            sigma_max_Js=self.sigma_max_Js,
            sigma_max_Jf=self.sigma_max_Jf,
            rho_Jf=self.rho_Jf,
            rho_Js=self.eig.rho_Js,
            singular_values_Js=self.singular_Js.values.tolist(),
            singular_values_Jf=self.singular_Jf.values.tolist(),
            residual_Js=self.singular_Js.residual.tolist(),
            residual_Jf=self.singular_Jf.residual.tolist(),
            svd_iters=self.singular_Js.iters,
            eigenvalues_Jf=pairs(self.eig.eigenvalues_Jf[:4]),
            eigenvalues_Js=pairs(self.eig.eigenvalues_Js[:4]),
            eig_residual_Jf=self.eig.residual_Jf,
            eig_residual_Js=self.eig.residual_Js,
            eig_residuals_Js=self.eig.residuals_Js[:4].tolist(),
            converged_Js=self.singular_Js.converged.tolist(),
            converged_Jf=self.singular_Jf.converged.tolist(),
            eig_converged_Js=self.eig.converged(4).tolist(),
            all_converged=self.all_converged,
            unconverged=self.unconverged(),
            arnoldi_steps=self.eig.iters,
            h_max=self.h_max,
            h_max_sigma=self.h_max_sigma,
            max_stride=self.max_stride,
            stride_used=self.stride_used,
            h_used=self.h_used,
            euler_stable_at_used_stride=bool(self.h_used <= self.h_max),
        )


def row_operators(
    model: DiffusionModel, states: list[torch.Tensor], ts: list[int], kinds: list[str], t_prevs
) -> RowOperators:
    """The batched operators a_r I + b_r J_s(x_r, t_r), one row per state: ``kinds`` picks each row's operator
    ("score": J_s, "reverse": J_f of the step t -> t_prev, "denoiser"), ``t_prevs`` None for the single step."""
    coef = [affine_coefficients(model, k, t, tp) for k, t, tp in zip(kinds, ts, t_prevs)]
    return RowOperators(
        model,
        torch.cat(states),
        torch.tensor(ts),
        torch.tensor([c[0] for c in coef], dtype=torch.float64),
        torch.tensor([c[1] for c in coef], dtype=torch.float64),
    )


def top_singular(
    model: DiffusionModel,
    x_t: torch.Tensor,
    t: int,
    k: int = 4,
    iters: int = 30,
    operator: str = "Js",
    seed: int = 0,
    t_prev: int | None = None,
    tol: float = 0.0,
    progress: Progress = None,
) -> SingularResult:
    """Top-k singular values / vectors of J_s or J_f (eq. 34) by Golub-Kahan-Lanczos, one JVP + one VJP per iteration."""
    t = _check_t(model, t)
    kind = operator_kind(operator)
    ops = row_operators(model, [x_t[:1]], [t], [kind], [t_prev])
    gen = torch.Generator().manual_seed(int(seed))
    S, R, P, res, hist, rhist = _bidiagonalization(ops, int(k), int(iters), gen, tol, progress)
    return _singular_result(LABELS[kind], t, S[0], R[0], P[0], res[0], hist[0], rhist[0], x_t.shape[1:])


def _singular_result(label, t, S, R, P, res, hist, rhist, shape) -> SingularResult:
    right, left = R.T, P.T  # (k, D) rows
    # singular pairs are defined up to a joint sign: make each v_i's largest entry positive, flip u_i with it
    idx = right.abs().argmax(dim=1, keepdim=True)
    signs = torch.sign(right.gather(1, idx))
    right, left = right * signs, left * signs
    return SingularResult(
        label,
        t,
        S.astype(np.float64),
        right.float().reshape(-1, *shape),
        left.float().reshape(-1, *shape),
        res,
        hist,
        rhist,
        len(hist),
    )


def spectral_radius(
    model, x_t, t: int, iters: int = 30, seed: int = 0, t_prev: int | None = None, progress: Progress = None,
    tol: float = 0.0, k: int = 1,
) -> EigResult:  # fmt: skip
    """Spectral radius of J_f (eq. 34/35) and J_s by ``iters`` Arnoldi steps on J_s (one JVP each); with ``tol``
    it stops once the k largest Ritz values of J_s have relative residuals below it (``iters`` the cap).

    J_f = a I + b J_s shares J_s's Krylov space and eigenvectors, so its Ritz values are a + b theta; Arnoldi's
    Hessenberg eigenvalues handle complex-conjugate pairs, where plain power iteration would oscillate.
    """
    t = _check_t(model, t)
    tp = t - 1 if t_prev is None else int(t_prev)
    ops = row_operators(model, [x_t[:1]], [t], ["score"], [tp])
    H, steps = arnoldi(ops, iters, torch.Generator().manual_seed(int(seed)), progress, tol, k)
    return eig_result(model, H[0], t, tp, steps)


def eig_result(model: DiffusionModel, H: torch.Tensor, t: int, tp: int, steps: int) -> EigResult:
    """The spectral radii of J_s and of J_f (step t -> tp) from one row's Arnoldi Hessenberg matrix ``H``."""
    a, b = affine_coefficients(model, "reverse", t, tp)
    th_s, res_s, th_f, res_f = _ritz(H, a, b)
    rel_s, rel_f = res_s / np.maximum(np.abs(th_s), 1e-300), res_f / np.maximum(np.abs(th_f), 1e-300)
    return EigResult(
        t,
        tp,
        th_s,
        th_f,
        float(abs(th_f[0])),
        float(abs(th_s[0])),
        float(rel_f[0]),
        float(rel_s[0]),
        steps,
        rel_s,
        rel_f,
    )


def spectrum_sweep(
    model: DiffusionModel,
    x0: torch.Tensor,
    timesteps: Sequence[int],
    k: int = 4,
    iters: int = 30,
    seed: int = 0,
    progress: Progress = None,
    steps: int = 250,
    arnoldi_steps: int | None = None,
    max_batch: int | None = None,
    tol: float = 0.0,
    arnoldi_tol: float | None = None,
) -> list[SpectrumResult]:
    """Singular values / vectors of J_s and J_f, rho(J_f) and the Euler step limit over timesteps (Figures 8, 9).

    x_t = state_at(x0, t, seed) for each t; J_f is the single step t -> t-1. All timesteps and both operators share
    each batched JVP / VJP (``max_batch`` rows per call bounds memory). ``steps`` sets the strided run whose stride
    (T / steps) is compared with the limit; ``arnoldi_steps`` defaults to ``iters``. With ``tol`` > 0 both
    iterations stop once the k values shown (singular values of J_s and J_f, largest Ritz values of J_s) have relative
    residuals below ``tol`` (``arnoldi_tol``, default ``tol``, for Arnoldi), the step counts being caps; each result
    carries its residuals and converged flags either way.
    """
    ts, k, iters = _spectrum_args(model, x0, timesteps, k, iters)
    m = iters if arnoldi_steps is None else int(arnoldi_steps)
    per_t = 2  # rows per timestep: J_s and J_f
    chunk = len(ts) if max_batch is None else max(1, int(max_batch) // per_t)
    stride = max(1, round(model.schedule.T / int(steps)))
    out: list[SpectrumResult] = []
    n_chunks = math.ceil(len(ts) / chunk)
    for ci, start in enumerate(range(0, len(ts), chunk)):
        checkpoint()
        part = ts[start : start + chunk]
        states = [state_at(model, x0[:1], t, seed) for t in part]

        def sub(lo: float, span: float, ci=ci, part=part):
            if progress is None:
                return None
            return lambda f, msg: progress((ci + lo + span * f) / n_chunks, f"t={part}: {msg}")

        # rows: for each t one J_s and one J_f Krylov sequence; one Arnoldi row per t
        rows_x = [s for s in states for _ in range(2)]
        rows_t = [t for t in part for _ in range(2)]
        rows_k = [kind for _ in part for kind in ("score", "reverse")]
        gen = torch.Generator().manual_seed(int(seed))
        ops = row_operators(model, rows_x, rows_t, rows_k, [None] * len(rows_t))
        bidiag = _bidiagonalization(ops, k, iters, gen, tol, sub(0.0, 0.7))
        del ops
        eig_ops = row_operators(model, states, part, ["score"] * len(part), [None] * len(part))
        a_tol = tol if arnoldi_tol is None else float(arnoldi_tol)
        H, nsteps = arnoldi(eig_ops, m, gen, sub(0.7, 0.3), a_tol, min(k, m))
        for i, t in enumerate(part):
            out.append(
                _spectrum_result(model, t, states[i], [a[2 * i : 2 * i + 2] for a in bidiag], H[i], nsteps, stride)
            )
    if progress:
        progress(1.0, "done")
    return out


def _spectrum_args(model, x0: torch.Tensor, timesteps, k, iters) -> tuple[list[int], int, int]:
    """spectrum_sweep's timesteps (each checked), k and iters as ints, or a ValueError saying which is wrong."""
    ts = [_check_t(model, t) for t in timesteps]
    if not ts:
        raise ValueError("spectrum_sweep needs at least one timestep")
    k, iters = int(k), int(iters)
    if k < 1 or iters < 1:
        raise ValueError(f"k and iters must be >= 1, got k={k}, iters={iters}")
    D = int(np.prod(x0.shape[1:]))
    if k > D:
        raise ValueError(f"k={k} exceeds the dimension {D}")
    return ts, k, iters


def _spectrum_result(model, t: int, x_t, bidiag_rows, H, nsteps: int, stride: int) -> SpectrumResult:
    """One timestep's row of ``spectrum_sweep``: its J_s and J_f bidiagonalisation rows (S, R, P, residuals,
    histories: two rows each), its Arnoldi Hessenberg matrix, and the step limit against the run's stride."""
    js, jf = (
        _singular_result(label, t, *(a[r] for a in bidiag_rows), x_t.shape[1:])
        for r, label in enumerate(("J_s", "J_f"))
    )
    eig = eig_result(model, H, t, t - 1, nsteps)
    h_max = euler_step_limit(eig.eigenvalues_Js)
    used = min(stride, t + 1)
    return SpectrumResult(
        t,
        t - 1,
        js,
        jf,
        eig,
        h_max,
        float(2.0 / js.values[0]) if js.values[0] > 0 else math.inf,
        max_stable_stride(model, t, h_max),
        stride,
        1 - model.schedule.step_alpha(t, t - used),
        x_t.cpu(),
    )
