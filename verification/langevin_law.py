"""Exact laws of discretised Langevin chains on Gaussian targets, and a test of samples against them.

On mu = N(m, S) the drift is affine, F(z) = A z + b, so every Picard iterate
of every epoch is affine in the start and the Gaussian increments: the
chain's output is exactly Gaussian.  This module builds those affine maps as
explicit matrices over a whole window (written here from the recursion, not
by calling the sampler):

    X^(p+1) = (1_M (x) I) z_0 + (T (x) I) [h (I_M (x) A) Y^(p) + h (1_M (x) b) + (I_M (x) G) xi],

X the stacked points 1..M, Y = (z_0, X without its last point), T the lower
triangular matrix of ones, G the noise matrix, xi ~ N(0, I_(M d)).  The law of
the epoch's last point follows; epochs compose.  KL to mu (and between two
chains) is then closed form.  ``sequential_euler_law`` is the plain
step-by-step mean/covariance recursion, an independent route to the P = M
case.

``gaussian_law_test``: whitened samples of N(mean, cov) are i.i.d. standard
normal, so a KS test of the pooled whitened coordinates and a KS test of
the squared norms against chi-square(d), Bonferroni-combined, test a
sampler's output against an exact Gaussian law (its false-fail rate is alpha).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

__all__ = ["GaussianLaw", "picard_chain_law", "sequential_euler_law", "gaussian_kl", "gaussian_law_test",
           "GaussianLawTest"]


@dataclass
class GaussianLaw:
    """N(mean [d], cov [d, d]) of the chain's output x."""

    mean: torch.Tensor
    cov: torch.Tensor


def _affine_pieces(target, sampler):
    """(A [D, D], b [D], G [D, d], z0 [D]) of the sampler's chain on a GaussianTarget."""
    d = target.dim
    P = torch.linalg.inv(target.cov.cpu())
    m = target.mean.cpu()
    eye = torch.eye(d, dtype=torch.float64)
    h, gamma = sampler.step, sampler.friction
    x0 = torch.zeros(d, dtype=torch.float64) if sampler.start is None else torch.as_tensor(sampler.start, dtype=torch.float64)
    if sampler.kind == "overdamped":
        return -P, P @ m, math.sqrt(2 * h) * eye, x0
    zero = torch.zeros(d, d, dtype=torch.float64)
    A = torch.cat([torch.cat([zero, eye], 1), torch.cat([-P, -gamma * eye], 1)], 0)
    b = torch.cat([torch.zeros(d, dtype=torch.float64), P @ m])
    G = torch.cat([zero, math.sqrt(2 * gamma * h) * eye], 0)
    return A, b, G, torch.cat([x0, torch.zeros(d, dtype=torch.float64)])


def picard_chain_law(target, sampler) -> GaussianLaw:
    """Exact law of ``sampler``'s output (a ParallelLangevin: step, window, epochs, picard, kind) on a GaussianTarget."""
    A, b, G, z0 = (x.contiguous() for x in _affine_pieces(target, sampler))
    D, d = G.shape
    M, h = sampler.window, sampler.step
    eye_D = torch.eye(D, dtype=torch.float64)
    ones = torch.ones(M, 1, dtype=torch.float64)
    T = torch.tril(torch.ones(M, M, dtype=torch.float64))
    start_map = torch.kron(ones, eye_D)  # z_0 -> every point [M D, D]
    shift = torch.kron(torch.diag(torch.ones(M - 1, dtype=torch.float64), -1), eye_D)  # X -> points 1..M-1 in Y
    first = torch.kron(torch.eye(M, 1, dtype=torch.float64), eye_D)  # z_0 -> Y's first block
    drift = h * torch.kron(T, eye_D) @ torch.kron(torch.eye(M, dtype=torch.float64), A)
    constant = h * torch.kron(T, eye_D) @ torch.kron(ones, b.unsqueeze(1)).squeeze(1)
    noise = torch.kron(T, eye_D) @ torch.kron(torch.eye(M, dtype=torch.float64), G)  # [M D, M d]
    # X^(p) = Fz z_0 + Fxi xi + c
    Fz, Fxi, c = start_map.clone(), torch.zeros(M * D, M * d, dtype=torch.float64), torch.zeros(M * D, dtype=torch.float64)
    for _ in range(sampler.picard):
        Fz, Fxi, c = (start_map + drift @ (first + shift @ Fz), drift @ shift @ Fxi + noise,
                      drift @ shift @ c + constant)
    last = slice((M - 1) * D, M * D)
    mean, cov = z0, torch.zeros(D, D, dtype=torch.float64)
    for _ in range(sampler.epochs):
        mean = Fz[last] @ mean + c[last]
        cov = Fz[last] @ cov @ Fz[last].T + Fxi[last] @ Fxi[last].T
    k = target.dim
    return GaussianLaw(mean[:k], cov[:k, :k])


def sequential_euler_law(target, sampler) -> GaussianLaw:
    """The same chain stepped one Euler step at a time (epochs * window steps): mean/covariance recursion."""
    A, b, G, z0 = _affine_pieces(target, sampler)
    step = torch.eye(A.shape[0], dtype=torch.float64) + sampler.step * A
    mean, cov = z0, torch.zeros_like(A)
    for _ in range(sampler.epochs * sampler.window):
        mean = step @ mean + sampler.step * b
        cov = step @ cov @ step.T + G @ G.T
    k = target.dim
    return GaussianLaw(mean[:k], cov[:k, :k])


def gaussian_kl(p: GaussianLaw, q: GaussianLaw) -> float:
    """KL(p || q) for Gaussians on R^d (inf when p's covariance is singular)."""
    d = p.mean.shape[0]
    chol_q = torch.linalg.cholesky(q.cov)
    sign, logdet_p = torch.linalg.slogdet(p.cov)
    if float(sign) <= 0:
        return math.inf
    inv_q = torch.cholesky_inverse(chol_q)
    diff = q.mean - p.mean
    logdet_q = 2 * torch.log(chol_q.diagonal()).sum()
    return float(0.5 * (torch.trace(inv_q @ p.cov) + diff @ inv_q @ diff - d + logdet_q - logdet_p))


@dataclass
class GaussianLawTest:
    p_value: float  # Bonferroni-combined: 2 * min of the two KS p-values, capped at 1
    alpha: float
    ks_pooled: float
    ks_norms: float
    num_samples: int

    @property
    def passed(self) -> bool:
        return self.p_value >= self.alpha


def gaussian_law_test(samples: torch.Tensor, law: GaussianLaw, alpha: float) -> GaussianLawTest:
    """Test samples [N, d] against N(law.mean, law.cov): pooled whitened KS + KS of squared norms vs chi2(d)."""
    if samples.dim() != 2 or samples.shape[1] != law.mean.shape[0]:
        raise ValueError(f"samples must be [N, {law.mean.shape[0]}], got {list(samples.shape)}")
    chol = torch.linalg.cholesky(law.cov)
    white = torch.linalg.solve_triangular(chol, (samples.to(torch.float64) - law.mean).T, upper=False).T.numpy()
    pooled = stats.kstest(white.reshape(-1), "norm").pvalue
    norms = stats.kstest((white**2).sum(1), stats.chi2(white.shape[1]).cdf).pvalue
    return GaussianLawTest(float(min(1.0, 2 * min(pooled, norms))), alpha, float(pooled), float(norms), int(samples.shape[0]))


def kl_table(target, make_sampler, picards: list[int], epochs: list[int]) -> np.ndarray:
    """KL(chain || mu) [len(picards), len(epochs)]; make_sampler(picard, epochs) -> ParallelLangevin."""
    from autospec.targets.gaussian import GaussianTarget

    if not isinstance(target, GaussianTarget):
        raise TypeError("kl_table needs a GaussianTarget: the chain's law is exactly Gaussian only there")
    mu = GaussianLaw(target.mean.cpu(), target.cov.cpu())
    return np.array([[gaussian_kl(picard_chain_law(target, make_sampler(p, e)), mu) for e in epochs] for p in picards])
