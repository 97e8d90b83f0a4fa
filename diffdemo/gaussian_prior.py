"""The oracle: a Gaussian prior behind the model contract, with exact score, Jacobian and posterior
(DESIGN.md section 4)."""

from __future__ import annotations

import torch

from diffdemo.contract import DiffusionModel
from diffdemo.schedule import Schedule


class GaussianPrior(DiffusionModel):
    """x0 ~ N(mu, Sigma) with Sigma = U diag(lam) U^T + floor (I - U U^T): every quantity is exact.

    C_t = abar Sigma + (1 - abar) I,  s(x) = -C_t^{-1} (x - sqrt(abar) mu),  J_s = -C_t^{-1}  (DESIGN.md section 4).
    """

    def __init__(
        self,
        mean: torch.Tensor,
        basis: torch.Tensor,
        variances: torch.Tensor,
        floor: float = 1e-3,
        schedule: Schedule | None = None,
        name: str = "gaussian",
    ):
        self.sample_shape = tuple(mean.shape[-3:])
        self.mean = mean.reshape(-1).double()
        self.basis = basis.double()  # (D, k), orthonormal columns
        self.variances = variances.double()  # (k,)
        self.floor = float(floor)
        self.schedule = schedule or Schedule.linear()
        self.name = name
        self.device = torch.device("cpu")

    @classmethod
    def fit(cls, images: torch.Tensor, rank: int | None = None, floor: float = 1e-3, **kw) -> GaussianPrior:
        """Fit mean and top-``rank`` principal components (PCA) of (N, C, H, W) images."""
        flat = images.reshape(images.shape[0], -1).double()
        mu = flat.mean(0)
        _, s, vh = torch.linalg.svd(flat - mu, full_matrices=False)
        k = rank or vh.shape[0]
        var = s[:k] ** 2 / max(flat.shape[0] - 1, 1)
        return cls(mu.reshape(images.shape[1:]), vh[:k].T, torch.clamp(var, min=floor), floor, **kw)

    @property
    def dim(self) -> int:
        return self.mean.numel()

    def covariance(self) -> torch.Tensor:
        """Sigma as a dense (D, D) matrix (for small test problems)."""
        U = self.basis
        return U @ torch.diag(self.variances) @ U.T + self.floor * (torch.eye(self.dim, dtype=U.dtype) - U @ U.T)

    def _apply_spectral(self, v: torch.Tensor, fn_lam, fn_floor) -> torch.Tensor:
        """Apply U diag(fn(lam)) U^T + fn(floor) (I - U U^T) to the rows of v (N, D)."""
        coef = v @ self.basis
        inside = (coef * fn_lam(self.variances)) @ self.basis.T
        outside = fn_floor(self.floor) * (v - coef @ self.basis.T)
        return inside + outside

    def cov_t_inverse(self, v: torch.Tensor, t: int) -> torch.Tensor:
        """C_t^{-1} v for flattened rows v."""
        a = self.schedule.abar(t)
        return self._apply_spectral(v, lambda lam: 1.0 / (a * lam + 1 - a), lambda f: 1.0 / (a * f + 1 - a))

    def score(self, x: torch.Tensor, t) -> torch.Tensor:
        """Exact score -C_t^{-1}(x - sqrt(abar_t) mu)."""
        if isinstance(t, torch.Tensor) and t.ndim > 0:
            return torch.cat([self.score(x[i : i + 1], int(ti)) for i, ti in enumerate(t.tolist())])
        t = int(t)
        flat = x.reshape(x.shape[0], -1).double()
        centred = flat - self.schedule.abar(t) ** 0.5 * self.mean
        return (-self.cov_t_inverse(centred, t)).to(x.dtype).reshape(x.shape)

    def eps(self, x: torch.Tensor, t) -> torch.Tensor:
        return self.schedule.eps_from_score(self.score(x, t), t)

    def score_jacobian(self, t: int) -> torch.Tensor:
        """J_s = -C_t^{-1}, dense (D, D)."""
        return -self.cov_t_inverse(torch.eye(self.dim, dtype=torch.float64), t)

    def posterior(self, A: torch.Tensor, y: torch.Tensor, sigma_y: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact posterior of x0 given y = A x0 + sigma_y n, A a dense (M, D) matrix: (mean (D,), cov (D, D))."""
        S = self.covariance()
        A = A.double()
        K = A @ S @ A.T + sigma_y**2 * torch.eye(A.shape[0], dtype=torch.float64)
        gain = torch.linalg.solve(K, A @ S).T  # S A^T K^{-1}
        mean = self.mean + gain @ (y.reshape(-1).double() - A @ self.mean)
        return mean, S - gain @ A @ S
