"""Gaussian target N(mean, cov) with its exact denoiser and exact chain law.

Posterior of X given Y_t = t X + W_t = y: precision cov^{-1} + t I, so

    m(y, t) = (cov^{-1} + t I)^{-1} (cov^{-1} mean + y) = A_t y + c_t,
    A_t = cov (I + t cov)^{-1},  c_t = (I + t cov)^{-1} mean,

affine in y: the K-step chain is linear-Gaussian and its law is exact
(``autospec.diffusion.GaussianChainLaw``).  Computed in the eigenbasis of cov
(cov = U diag(lam) U^T): m = U (U^T mean + lam U^T y) / (1 + t lam).
"""

from __future__ import annotations

import torch

from autospec.diffusion.chain_law import GaussianChainLaw
from autospec.diffusion.denoiser import FunctionDenoiser
from autospec.diffusion.grid import check_times

__all__ = ["GaussianTarget", "check_mean_cov"]


def _as_float64(x, name: str) -> torch.Tensor:
    try:
        x = torch.as_tensor(x, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"{name} must be convertible to a float64 tensor: {error}") from None
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return x


def check_mean_cov(mean, cov, name: str = "", tolerance: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate mean [d] and a symmetric positive definite cov [d, d]."""
    mean = _as_float64(mean, f"{name}mean")
    cov = _as_float64(cov, f"{name}cov")
    if mean.dim() != 1 or mean.shape[0] < 1:
        raise ValueError(f"{name}mean must be a vector [d], got shape {list(mean.shape)}")
    d = mean.shape[0]
    if cov.shape != (d, d):
        raise ValueError(f"{name}cov must have shape [{d}, {d}] to match {name}mean, got {list(cov.shape)}")
    asym = float((cov - cov.T).abs().max())
    if asym > tolerance * max(1.0, float(cov.abs().max())):
        raise ValueError(f"{name}cov must be symmetric (max |cov - cov^T| = {asym:.3g})")
    cov = 0.5 * (cov + cov.T)
    smallest = float(torch.linalg.eigvalsh(cov).min())
    if smallest <= tolerance * max(1.0, float(cov.abs().max())):
        raise ValueError(
            f"{name}cov must be positive definite, but its smallest eigenvalue is {smallest:.6g}"
        )
    return mean, cov


class GaussianTarget:
    """mu = N(mean, cov) on R^d."""

    def __init__(self, mean, cov, device: str | torch.device = "cpu"):
        mean, cov = check_mean_cov(mean, cov)
        self.device = torch.device(device)
        self.mean, self.cov = mean.to(self.device), cov.to(self.device)
        self.dim = int(mean.shape[0])
        lam, u = torch.linalg.eigh(self.cov)
        self._lam, self._u = lam, u
        self._mean_eig = u.T @ self.mean
        self.name = f"gaussian(d={self.dim})"

    @classmethod
    def random(cls, dim: int, seed: int = 0, scale: float = 1.0, device="cpu") -> "GaussianTarget":
        g = torch.Generator().manual_seed(seed)
        mean = scale * torch.randn(dim, generator=g, dtype=torch.float64)
        root = torch.randn(dim, dim, generator=g, dtype=torch.float64) / dim**0.5
        cov = scale**2 * (root @ root.T + 0.5 * torch.eye(dim, dtype=torch.float64))
        return cls(mean, cov, device=device)

    def posterior_mean(self, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """m(y [B, d], t [B]) -> [B, d]."""
        t = t.to(torch.float64).unsqueeze(-1)
        y_eig = y.to(torch.float64) @ self._u
        return ((self._mean_eig + self._lam * y_eig) / (1.0 + t * self._lam)) @ self._u.T

    def denoiser(self) -> FunctionDenoiser:
        return FunctionDenoiser(self.posterior_mean, self.dim, name=self.name)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """grad log density at x [B, d] -> [B, d]: -cov^{-1} (x - mean), in the eigenbasis."""
        centred = (x.to(torch.float64) - self.mean) @ self._u
        return -(centred / self._lam) @ self._u.T

    def sample(self, num_samples: int, rng) -> torch.Tensor:
        chol = torch.linalg.cholesky(self.cov)
        return self.mean + rng.normal((num_samples, self.dim)).to(self.device) @ chol.T

    def chain_law(self, times) -> GaussianChainLaw:
        """Exact law of the chain's output on ``times``: mean/covariance recursion with A_t, c_t by solves."""
        times = check_times(times)
        cov = self.cov.cpu()
        eye = torch.eye(self.dim, dtype=torch.float64)
        return GaussianChainLaw.from_affine(
            lambda t: torch.linalg.solve(eye + t * cov, cov.T).T,  # cov (I + t cov)^{-1}
            lambda t: torch.linalg.solve(eye + t * cov, self.mean.cpu()),
            times,
        )

    def __repr__(self) -> str:
        return f"GaussianTarget(dim={self.dim})"
