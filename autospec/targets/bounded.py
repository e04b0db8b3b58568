"""Bounded-support target: a discrete law on a few points of R^d.

The high-accuracy guarantees of diffusion samplers assume bounded support.
The denoiser is a softmax over the points: the posterior weight of x_j given
Y_t = y is proportional to w_j exp(<x_j, y> - t |x_j|^2 / 2).
"""

from __future__ import annotations

import torch

from autospec.diffusion.denoiser import FunctionDenoiser
from autospec.targets.gaussian import _as_float64
from autospec.targets.mixture import ProductMixtureTarget, check_weights

__all__ = ["PointMassTarget"]


class PointMassTarget:
    """mu = sum_j weights_j delta_{points_j}; points [J, d], weights [J] (uniform by default)."""

    def __init__(self, points, weights=None, device: str | torch.device = "cpu"):
        points = _as_float64(points, "points")
        if points.dim() != 2 or points.shape[0] < 1:
            raise ValueError(f"points must have shape [J, d], got {list(points.shape)}")
        J = points.shape[0]
        weights = torch.full((J,), 1.0 / J, dtype=torch.float64) if weights is None else check_weights(weights)
        if weights.shape != (J,):
            raise ValueError(f"weights must have shape [{J}] (one per point), got {list(weights.shape)}")
        self.device = torch.device(device)
        self.points, self.weights = points.to(self.device), weights.to(self.device)
        self.dim = int(points.shape[1])
        self._log_w = torch.log(self.weights)
        self._sq = (self.points**2).sum(-1)
        self.name = f"point_mass(J={J}, d={self.dim})"

    @classmethod
    def cube_corners(cls, dim: int, device="cpu") -> "PointMassTarget":
        """Uniform on {-1, 1}^dim (bounded, 2^dim points)."""
        grid = torch.cartesian_prod(*[torch.tensor([-1.0, 1.0], dtype=torch.float64)] * dim).reshape(-1, dim)
        return cls(grid, device=device)

    def posterior_mean(self, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        logits = self._log_w + y.to(torch.float64) @ self.points.T - 0.5 * t.to(torch.float64).unsqueeze(-1) * self._sq
        return torch.softmax(logits, dim=-1) @ self.points

    def denoiser(self) -> FunctionDenoiser:
        return FunctionDenoiser(self.posterior_mean, self.dim, name=self.name)

    def sample(self, num_samples: int, rng) -> torch.Tensor:
        return self.points[rng.categorical(self.weights.expand(num_samples, -1))]

    def chain_law(self, times):
        """Exact (grid) chain law in one dimension (atoms = zero-variance mixture); None otherwise."""
        if self.dim != 1:
            return None
        return ProductMixtureTarget(self.weights[None], self.points[:, 0][None], torch.zeros_like(self.weights)[None]).chain_law(times)

    def __repr__(self) -> str:
        return f"PointMassTarget(J={self.points.shape[0]}, dim={self.dim})"
