"""Exact denoisers, exact chain laws (and the grid law's accuracy), bad-input errors. No statistical tests."""

import numpy as np
import pytest
import torch

from autospec.diffusion import time_grid
from autospec.targets import GaussianMixtureTarget, GaussianTarget, PointMassTarget, ProductMixtureTarget


def _quadrature_posterior_mean(weights, means, variances, y, t):
    """1-d posterior mean by brute-force quadrature on a fine grid (independent of the closed form)."""
    x = np.linspace(-30, 30, 600_001)
    prior = sum(w * np.exp(-0.5 * (x - m) ** 2 / v) / np.sqrt(2 * np.pi * v) for w, m, v in zip(weights, means, variances))
    out = []
    for yi, ti in zip(y, t):
        logl = x * yi - 0.5 * ti * x**2
        post = prior * np.exp(logl - logl.max())
        out.append((x * post).sum() / post.sum())
    return np.array(out)


def test_mixture_denoiser_matches_quadrature():
    w, m, v = [0.3, 0.7], [-2.0, 1.5], [0.5, 0.2]
    target = GaussianMixtureTarget(w, [[m[0]], [m[1]]], [[[v[0]]], [[v[1]]]])
    y = np.array([0.0, -3.0, 1.0, 5.0, 0.3])
    t = np.array([0.0, 0.5, 2.0, 4.0, 10.0])
    got = target.denoiser()(torch.tensor(y)[:, None], torch.tensor(t))[:, 0].numpy()
    assert np.allclose(got, _quadrature_posterior_mean(w, m, v, y, t), atol=1e-7)
    product = ProductMixtureTarget([w], [m], [v])
    got2 = product.denoiser()(torch.tensor(y)[:, None], torch.tensor(t))[:, 0].numpy()
    assert np.allclose(got, got2, atol=1e-12)


def test_gaussian_denoiser_matches_direct_solve_and_one_component_mixture():
    target = GaussianTarget.random(4, seed=5, scale=1.5)
    g = torch.Generator().manual_seed(0)
    y = 4 * torch.randn(6, 4, dtype=torch.float64, generator=g)
    t = torch.tensor([0.0, 0.1, 1.0, 3.0, 10.0, 50.0], dtype=torch.float64)
    prec = torch.linalg.inv(target.cov)
    direct = torch.stack([
        torch.linalg.solve(prec + ti * torch.eye(4, dtype=torch.float64), prec @ target.mean + yi) for yi, ti in zip(y, t)
    ])
    assert torch.allclose(target.denoiser()(y, t), direct, atol=1e-10)
    mix = GaussianMixtureTarget([1.0], target.mean[None], target.cov[None])
    assert torch.allclose(mix.denoiser()(y, t), direct, atol=1e-10)


def test_point_mass_target_is_zero_variance_mixture():
    pts = torch.tensor([[-1.0], [0.5], [2.0]], dtype=torch.float64)
    target = PointMassTarget(pts, [0.2, 0.5, 0.3])
    as_mixture = ProductMixtureTarget([[0.2, 0.5, 0.3]], [[-1.0, 0.5, 2.0]], [[0.0, 0.0, 0.0]])
    y = torch.linspace(-5, 5, 11, dtype=torch.float64)[:, None]
    t = torch.linspace(0, 8, 11, dtype=torch.float64)
    assert torch.allclose(target.denoiser()(y, t), as_mixture.denoiser()(y, t), atol=1e-12)
    assert bool((target.denoiser()(y, t).abs() <= 2.0 + 1e-12).all())  # bounded support


def test_gaussian_chain_law_one_step_in_closed_form():
    target = GaussianTarget(torch.tensor([1.0]), torch.tensor([[2.0]]))
    h = 0.7
    law = target.chain_law(torch.tensor([0.0, h], dtype=torch.float64))
    # Y_1 ~ N(h * 1, h); output = A y + c with A = 2 / (1 + 2h), c = 1 / (1 + 2h)
    a, c = 2 / (1 + 2 * h), 1 / (1 + 2 * h)
    assert abs(float(law.mean[0]) - (a * h + c)) < 1e-12
    assert abs(float(law.cov[0, 0]) - a * a * h) < 1e-12


@pytest.mark.parametrize("kind", ["uniform", "geometric"])
def test_grid_chain_law_matches_exact_gaussian_law(kind):
    """The stated accuracy of the grid propagation: CDF error < 1e-12 against the exact linear-Gaussian law."""
    times = time_grid(24, t_max=10.0, kind=kind, t_min=0.05 if kind == "geometric" else None)
    exact = GaussianTarget(torch.tensor([0.7], dtype=torch.float64), torch.tensor([[3.0]], dtype=torch.float64)).chain_law(times)
    grid = ProductMixtureTarget([[1.0]], [[0.7]], [[3.0]]).chain_law(times)
    x = np.linspace(-6, 7, 801)
    assert np.max(np.abs(grid.cdf(x, 0) - exact.cdf(x, 0))) < 1e-12
    assert grid.mass_error < 1e-12


def test_grid_chain_law_is_a_cdf_for_atoms():
    target = PointMassTarget(torch.tensor([[-1.0], [1.0]], dtype=torch.float64), [0.4, 0.6])
    law = target.chain_law(time_grid(16, t_max=8.0))
    x = np.linspace(-1.5, 1.5, 301)  # the output lies in (-1, 1) (exactly +-1 only by float saturation)
    F = law.cdf(x, 0)
    assert np.all(np.diff(F) >= -1e-12) and F[0] < 1e-6 and F[-1] > 1 - 1e-6


def test_non_positive_definite_covariance_is_named():
    with pytest.raises(ValueError, match="cov must be positive definite.*-1"):
        GaussianTarget(torch.zeros(2), -torch.eye(2))
    with pytest.raises(ValueError, match="cov must be positive definite"):
        GaussianTarget(torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="symmetric"):
        GaussianTarget(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="component 1 cov must be positive definite"):
        GaussianMixtureTarget([0.5, 0.5], torch.zeros(2, 2), torch.stack([torch.eye(2), -torch.eye(2)]))
    with pytest.raises(ValueError, match="shape"):
        GaussianTarget(torch.zeros(2), torch.eye(3))


def test_weights_not_summing_to_one_are_named():
    with pytest.raises(ValueError, match="weights must sum to 1.*0.9"):
        GaussianMixtureTarget([0.5, 0.4], torch.zeros(2, 1), torch.ones(2, 1, 1))
    with pytest.raises(ValueError, match="weights must sum to 1"):
        ProductMixtureTarget([[0.5, 0.6]], [[0.0, 1.0]], [[1.0, 1.0]])
    with pytest.raises(ValueError, match="weights must be non-negative"):
        PointMassTarget(torch.zeros(2, 1), [1.5, -0.5])
    with pytest.raises(ValueError, match="variances must be >= 0"):
        ProductMixtureTarget([[0.5, 0.5]], [[0.0, 1.0]], [[1.0, -1.0]])
