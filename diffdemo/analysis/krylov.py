"""Krylov iterations on row-batched operators (``RowOperators``): Golub-Kahan-Lanczos bidiagonalisation for the top
singular triplets and Arnoldi for the dominant eigenvalues, their Ritz values and residuals, and the result records
(poster 3.8, eq. 35). Only J v and J^T u products are used: no Jacobian is ever materialised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from diffdemo.analysis.products import RowOperators

# A Ritz value or singular triplet counts as converged when its residual is below this fraction of the value: the
# Spectrum tab, `spectrum` and `reproduce` mark the others, and iterate until the values shown meet it when asked.
RESIDUAL_TOL = 1e-3


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


def bidiagonalization(
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
    theta, res = ritz(H, 0.0, 1.0)[:2]
    return res[:k] / np.maximum(np.abs(theta[:k]), 1e-300)


def ritz(H: torch.Tensor, a: float, b: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ritz values of J_s and of a I + b J_s from one Hessenberg matrix, with their residuals ||J y - theta y||."""
    m = H.shape[1]
    theta, Y = np.linalg.eig(H[:m, :m].numpy())
    h_next = float(H[m, m - 1]) if H.shape[0] > m else 0.0
    res_s = np.abs(h_next * Y[-1, :])  # Y's columns are unit vectors, so this is ||J_s y - theta y||
    order_s = np.argsort(-np.abs(theta), kind="stable")
    theta_f = a + b * theta
    order_f = np.argsort(-np.abs(theta_f), kind="stable")
    return theta[order_s], res_s[order_s], theta_f[order_f], (abs(b) * res_s)[order_f]
