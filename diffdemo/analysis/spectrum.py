"""Spectra of J_s and J_f at one timestep or swept over many (poster 3.8, 4.7; Figures 8, 9): top singular
values / vectors, the spectral radius, and the explicit-Euler step limit against a strided run's step. Every
timestep and both operators share each batched JVP / VJP.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from diffdemo.analysis.jacobians import LABELS, affine_coefficients, checked_timestep, operator_kind, state_at
from diffdemo.analysis.krylov import EigResult, SingularResult, arnoldi, bidiagonalization, ritz
from diffdemo.analysis.limits import euler_step_limit, max_stable_stride
from diffdemo.analysis.products import Progress, RowOperators
from diffdemo.checkpoint import checkpoint
from diffdemo.models import DiffusionModel


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
    t = checked_timestep(model, t)
    kind = operator_kind(operator)
    ops = row_operators(model, [x_t[:1]], [t], [kind], [t_prev])
    gen = torch.Generator().manual_seed(int(seed))
    S, R, P, res, hist, rhist = bidiagonalization(ops, int(k), int(iters), gen, tol, progress)
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
    t = checked_timestep(model, t)
    tp = t - 1 if t_prev is None else int(t_prev)
    ops = row_operators(model, [x_t[:1]], [t], ["score"], [tp])
    H, steps = arnoldi(ops, iters, torch.Generator().manual_seed(int(seed)), progress, tol, k)
    return eig_result(model, H[0], t, tp, steps)


def eig_result(model: DiffusionModel, H: torch.Tensor, t: int, tp: int, steps: int) -> EigResult:
    """The spectral radii of J_s and of J_f (step t -> tp) from one row's Arnoldi Hessenberg matrix ``H``."""
    a, b = affine_coefficients(model, "reverse", t, tp)
    th_s, res_s, th_f, res_f = ritz(H, a, b)
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
        bidiag = bidiagonalization(ops, k, iters, gen, tol, sub(0.0, 0.7))
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
    ts = [checked_timestep(model, t) for t in timesteps]
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
