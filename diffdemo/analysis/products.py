"""Jacobian-vector products of the score network: J_s v and J_s^T u, exactly (forward / reverse mode) or by finite
differences, one row per state, and ``RowOperators`` (a I + b J_s for a batch of rows) for the Krylov iterations.

Autograd is switched on only inside these products (``exact_autodiff``); finite differences run under
``torch.no_grad``. The network always runs in float32 here, whatever precision the model view carries (bf16's ~4e-3
relative rounding would drown a 1e-2 finite difference), with the cheaper JVP / VJP rules of ``diffdemo/autodiff.py``
(same values). On a UNet the forward-mode pass is traced once per input shape into a plain graph.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager

import torch

from diffdemo.checkpoint import checkpoint
from diffdemo.models import DiffusionModel

METHODS = ("jvp", "central", "forward")  # how score_jvp takes J_s v: exactly, or by central / forward differences
Progress = Callable[[float, str], None] | None  # progress(fraction done, message), or None for silence

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
def exact_autodiff(device=None):
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


def _timesteps(t, n: int, device) -> torch.Tensor:
    if isinstance(t, torch.Tensor) and t.ndim > 0:
        return t.to(device=device, dtype=torch.long)
    return torch.full((n,), int(t), dtype=torch.long, device=device)


def _jvp(model: DiffusionModel, X: torch.Tensor, T: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """J_s(X) V for every row, exactly; call inside ``exact_autodiff``.

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
        with exact_autodiff(model.device):
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
    with exact_autodiff(model.device):
        _, pullback = torch.func.vjp(lambda z: model.score(z, T), x)
        (out,) = pullback(u.to(model.device, torch.float32).expand_as(x).contiguous())
    return out.detach()


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
        with exact_autodiff(self.X.device):
            js = _jvp(self.model, self.X, self.T, V.to(torch.float32))
        self.n_jvp += 1
        return self.a * V + self.b * js.detach().double()

    def rmatvec(self, U: torch.Tensor) -> torch.Tensor:
        """Row-wise J^T u."""
        checkpoint()  # the reused pullback never calls model.eps either
        with exact_autodiff(self.X.device):
            if self._pullback is None:
                _, self._pullback = torch.func.vjp(self._f, self.X)
            (js,) = self._pullback(U.to(torch.float32).contiguous())
        self.n_vjp += 1
        return self.a * U + self.b * js.detach().double()
