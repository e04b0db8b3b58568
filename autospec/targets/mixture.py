"""Gaussian mixtures with exact denoisers (closed-form posterior over components).

For a component N(m, S) with S = U diag(lam) U^T, writing mt = U^T m, yt = U^T y:

    int N(x; m, S) exp(<x, y> - t |x|^2 / 2) dx
        = |I + t S|^{-1/2} exp( 1/2 sum_i (-t mt_i^2 + 2 mt_i yt_i + lam_i yt_i^2) / (1 + t lam_i) ),

which is (up to a factor common to all components) the likelihood of Y_t = y
under the component, finite at t = 0.  The posterior weight of component j is
w_j times that, normalised; the component's posterior mean is
U (mt + lam yt) / (1 + t lam).  Zero variances are allowed in the product of
one-dimensional mixtures (atoms: the formula stays exact), which gives
bounded-support targets.
"""

from __future__ import annotations

import numpy as np
import torch

from autospec.diffusion.chain_law import OneDimChainLaw, ProductChainLaw
from autospec.diffusion.denoiser import FunctionDenoiser
from autospec.diffusion.grid import check_times
from autospec.targets.gaussian import _as_float64, check_mean_cov

__all__ = ["GaussianMixtureTarget", "ProductMixtureTarget", "check_weights"]


def check_weights(weights, name: str = "weights", tolerance: float = 1e-6) -> torch.Tensor:
    """Validate mixture weights along the last axis: non-negative, summing to 1."""
    weights = _as_float64(weights, name)
    if weights.dim() < 1 or weights.shape[-1] < 1:
        raise ValueError(f"{name} must have a last axis of components, got shape {list(weights.shape)}")
    if bool((weights < 0).any()):
        raise ValueError(f"{name} must be non-negative, got a minimum of {float(weights.min()):.6g}")
    sums = weights.sum(-1)
    if bool(((sums - 1).abs() > tolerance).any()):
        bad = float(sums.flatten()[((sums - 1).abs() > tolerance).flatten()][0])
        raise ValueError(f"{name} must sum to 1 over the components, got a sum of {bad:.12g}")
    return weights / sums.unsqueeze(-1)


def _component_terms(y_eig, t, lam, mean_eig, log_w):
    """y_eig [B, J, d], t [B, 1, 1], lam/mean_eig [J, d], log_w [J] -> (posterior weights [B, J], means_eig [B, J, d])."""
    denom = 1.0 + t * lam
    quad = (-t * mean_eig**2 + 2 * mean_eig * y_eig + lam * y_eig**2) / denom
    logits = log_w + 0.5 * quad.sum(-1) - 0.5 * torch.log(denom).sum(-1)
    return torch.softmax(logits, dim=-1), (mean_eig + lam * y_eig) / denom


class GaussianMixtureTarget:
    """mu = sum_j w_j N(means_j, covs_j) on R^d."""

    def __init__(self, weights, means, covs, device: str | torch.device = "cpu"):
        weights = check_weights(weights)
        means = _as_float64(means, "means")
        covs = _as_float64(covs, "covs")
        if weights.dim() != 1:
            raise ValueError(f"weights must be a vector [J], got shape {list(weights.shape)}")
        J = weights.shape[0]
        if means.dim() != 2 or means.shape[0] != J:
            raise ValueError(f"means must have shape [J={J}, d], got {list(means.shape)}")
        d = means.shape[1]
        if covs.shape != (J, d, d):
            raise ValueError(f"covs must have shape [J={J}, {d}, {d}], got {list(covs.shape)}")
        checked = [check_mean_cov(means[j], covs[j], name=f"component {j} ") for j in range(J)]
        self.device = torch.device(device)
        self.weights = weights.to(self.device)
        self.means = torch.stack([m for m, _ in checked]).to(self.device)
        self.covs = torch.stack([c for _, c in checked]).to(self.device)
        self.dim = int(d)
        lam, u = torch.linalg.eigh(self.covs)  # [J, d], [J, d, d]
        self._lam, self._u = lam, u
        self._mean_eig = torch.einsum("jdk,jd->jk", u, self.means)
        self._log_w = torch.log(self.weights)
        self.name = f"gaussian_mixture(J={J}, d={d})"

    def posterior_mean(self, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """m(y [B, d], t [B]) -> [B, d]."""
        y_eig = torch.einsum("bd,jdk->bjk", y.to(torch.float64), self._u)
        r, m_eig = _component_terms(y_eig, t.to(torch.float64).view(-1, 1, 1), self._lam, self._mean_eig, self._log_w)
        means = torch.einsum("bjk,jdk->bjd", m_eig, self._u)
        return (r.unsqueeze(-1) * means).sum(1)

    def denoiser(self) -> FunctionDenoiser:
        return FunctionDenoiser(self.posterior_mean, self.dim, name=self.name)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """grad log density at x [B, d] -> [B, d]: sum_j r_j(x) (-covs_j^{-1} (x - means_j)), r_j the responsibilities."""
        centred = torch.einsum("bjd,jdk->bjk", x.to(torch.float64).unsqueeze(1) - self.means, self._u)  # eigenbasis [B, J, d]
        log_density = (self._log_w - 0.5 * (centred**2 / self._lam).sum(-1) - 0.5 * torch.log(self._lam).sum(-1))
        responsibilities = torch.softmax(log_density, dim=-1)  # [B, J]
        scores = -torch.einsum("bjk,jdk->bjd", centred / self._lam, self._u)
        return (responsibilities.unsqueeze(-1) * scores).sum(1)

    def sample(self, num_samples: int, rng) -> torch.Tensor:
        comp = rng.categorical(self.weights.expand(num_samples, -1))
        chol = torch.linalg.cholesky(self.covs)[comp]
        z = rng.normal((num_samples, self.dim)).to(self.device)
        return self.means[comp] + torch.einsum("bdk,bk->bd", chol, z)

    def chain_law(self, times):
        """Exact (grid) chain law in one dimension; None otherwise (use two-sample tests)."""
        if self.dim != 1:
            return None
        return ProductMixtureTarget(self.weights[None], self.means[:, 0][None], self.covs[:, 0, 0][None]).chain_law(times)

    def __repr__(self) -> str:
        return f"GaussianMixtureTarget(J={self.weights.shape[0]}, dim={self.dim})"


class ProductMixtureTarget:
    """Independent coordinates, coordinate i ~ sum_j weights[i, j] N(means[i, j], variances[i, j]).

    weights, means, variances: [d, J].  Variances may be 0 (atoms), which gives
    bounded-support targets.  The chain factorises per coordinate, so its exact
    law is a product of one-dimensional grid laws.
    """

    def __init__(self, weights, means, variances, device: str | torch.device = "cpu"):
        weights = check_weights(weights)
        means = _as_float64(means, "means")
        variances = _as_float64(variances, "variances")
        if weights.dim() != 2:
            raise ValueError(f"weights must have shape [d, J], got {list(weights.shape)}")
        if means.shape != weights.shape or variances.shape != weights.shape:
            raise ValueError(
                f"means and variances must have the shape of weights {list(weights.shape)}, got "
                f"{list(means.shape)} and {list(variances.shape)}"
            )
        if bool((variances < 0).any()):
            raise ValueError(f"variances must be >= 0 (0 = an atom), got a minimum of {float(variances.min()):.6g}")
        self.device = torch.device(device)
        self.weights, self.means, self.variances = (x.to(self.device) for x in (weights, means, variances))
        self.dim = int(weights.shape[0])
        self._log_w = torch.log(self.weights)
        self.name = f"product_mixture(d={self.dim}, J={weights.shape[1]})"

    @classmethod
    def bimodal(cls, dim: int, separation: float = 3.0, variance: float = 0.25, weight: float = 0.3, device="cpu"):
        """Each coordinate: weight N(-separation, variance) + (1 - weight) N(separation, variance)."""
        w = torch.tensor([[weight, 1 - weight]], dtype=torch.float64).repeat(dim, 1)
        m = torch.tensor([[-separation, separation]], dtype=torch.float64).repeat(dim, 1)
        return cls(w, m, torch.full((dim, 2), variance, dtype=torch.float64), device=device)

    def posterior_mean(self, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """m(y [B, d], t [B]) -> [B, d], coordinate-wise."""
        y = y.to(torch.float64).unsqueeze(-1)  # [B, d, 1]
        t = t.to(torch.float64).view(-1, 1, 1)
        lam, m = self.variances, self.means
        denom = 1.0 + t * lam
        logits = self._log_w + 0.5 * (-t * m**2 + 2 * m * y + lam * y**2) / denom - 0.5 * torch.log(denom)
        return (torch.softmax(logits, dim=-1) * (m + lam * y) / denom).sum(-1)

    def denoiser(self) -> FunctionDenoiser:
        return FunctionDenoiser(self.posterior_mean, self.dim, name=self.name)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """grad log density at x [B, d] -> [B, d], coordinate-wise (needs every variance > 0)."""
        if bool((self.variances <= 0).any()):
            raise ValueError("score needs every variance > 0: a mixture with atoms has no density")
        x = x.to(torch.float64).unsqueeze(-1)  # [B, d, 1]
        log_density = self._log_w - 0.5 * (x - self.means) ** 2 / self.variances - 0.5 * torch.log(self.variances)
        return (torch.softmax(log_density, dim=-1) * -(x - self.means) / self.variances).sum(-1)

    def coordinate(self, i: int) -> "ProductMixtureTarget":
        return ProductMixtureTarget(self.weights[i: i + 1], self.means[i: i + 1], self.variances[i: i + 1])

    def sample(self, num_samples: int, rng) -> torch.Tensor:
        comp = rng.categorical(self.weights.expand(num_samples, -1, -1))  # [N, d]
        mean = self.means.gather(1, comp.T).T
        sd = self.variances.gather(1, comp.T).T.sqrt()
        return mean + sd * rng.normal((num_samples, self.dim)).to(self.device)

    def chain_law(self, times) -> ProductChainLaw:
        """Product of per-coordinate grid laws (cached per grid: the propagation takes seconds)."""
        times = check_times(times)
        key = tuple(times.tolist())
        cache = self.__dict__.setdefault("_chain_law_cache", {})
        if key not in cache:
            cache[key] = self._chain_law(times)
        return cache[key]

    def _chain_law(self, times) -> ProductChainLaw:
        laws = []
        for i in range(self.dim):
            coord = self.coordinate(i)

            def m1d(y: np.ndarray, t: float, coord=coord) -> np.ndarray:
                yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float64)).reshape(-1, 1)
                tt = torch.full((yt.shape[0],), float(t), dtype=torch.float64)
                return coord.posterior_mean(yt, tt)[:, 0].numpy()

            laws.append(OneDimChainLaw(m1d, times))
        return ProductChainLaw(laws)

    def __repr__(self) -> str:
        return f"ProductMixtureTarget(dim={self.dim}, J={self.weights.shape[1]})"
