"""Parallel Langevin: exact Gaussian chain laws (two independent routes), samples against them, scores, errors."""

import math

import pytest
import torch

from autospec import Randomness
from autospec.samplers.langevin import ParallelLangevin
from autospec.targets import GaussianMixtureTarget, GaussianTarget, ProductMixtureTarget
from verification.langevin_law import (
    GaussianLaw,
    gaussian_kl,
    gaussian_law_test,
    kl_table,
    picard_chain_law,
    sequential_euler_law,
)

TARGET = GaussianTarget.random(3, seed=2)
START = [2.0, 0.0, -1.0]


@pytest.mark.parametrize("kind", ["overdamped", "underdamped"])
def test_full_picard_is_sequential_euler_exactly(kind):
    sampler = ParallelLangevin(0.1, window=6, epochs=4, picard=6, kind=kind, start=START)
    a, b = picard_chain_law(TARGET, sampler), sequential_euler_law(TARGET, sampler)
    assert float((a.mean - b.mean).abs().max()) < 1e-12 and float((a.cov - b.cov).abs().max()) < 1e-12
    # and the sampler itself: with the same noise, P = M reproduces a one-point-per-round run
    one_step = ParallelLangevin(0.1, window=1, epochs=24, picard=1, kind=kind, start=START)
    full = sampler.sample(TARGET, 5, Randomness(3)).values
    assert full.shape == (5, 3) and torch.isfinite(full).all()
    assert gaussian_kl(picard_chain_law(TARGET, one_step), b) < 1e-12


@pytest.mark.statistical(alpha=1e-6)
@pytest.mark.parametrize("kind", ["overdamped", "underdamped"])
def test_sample_moments_agree_with_the_exact_chain_law(kind, one_thread):
    sampler = ParallelLangevin(0.1, window=8, epochs=3, picard=2, kind=kind, start=START)
    out = sampler.sample(TARGET, 4000, Randomness(11))
    result = gaussian_law_test(out.values, picard_chain_law(TARGET, sampler), alpha=1e-6)
    assert result.passed, result
    assert int(out.rounds[0]) == 3 * 2  # epochs * Picard iterations; sequential: 3 * 8


@pytest.mark.parametrize("kind", ["overdamped", "underdamped"])
def test_noise_of_the_wrong_scale_is_caught(kind, one_thread):
    right = ParallelLangevin(0.1, window=8, epochs=3, picard=2, kind=kind, start=START)
    wrong = ParallelLangevin(0.1, window=8, epochs=3, picard=2, kind=kind, start=START, noise_scale=1 / math.sqrt(2))
    result = gaussian_law_test(wrong.sample(TARGET, 4000, Randomness(11)).values, picard_chain_law(TARGET, right), 1e-6)
    assert not result.passed, result


def test_kl_to_mu_shrinks_with_epochs_and_picard_sweeps():
    table = kl_table(TARGET, lambda p, e: ParallelLangevin(0.05, window=8, epochs=e, picard=p, start=START), [1, 8], [1, 4, 16])
    assert table[1, 2] < table[1, 1] < table[1, 0]  # more epochs: closer to mu
    assert table[1, 2] < table[0, 2]  # one sweep per window is far from the chain
    mu = GaussianLaw(TARGET.mean, TARGET.cov)
    assert gaussian_kl(mu, mu) < 1e-12


def test_scores_match_autograd():
    x = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    mixture = GaussianMixtureTarget([0.4, 0.6], [[0.0, 1.0, 0.0], [1.0, -1.0, 2.0]], torch.stack([TARGET.cov, torch.eye(3, dtype=torch.float64)]))
    product = ProductMixtureTarget.bimodal(3)

    def log_density(t):
        comps = torch.stack([torch.distributions.MultivariateNormal(mixture.means[j], mixture.covs[j]).log_prob(t) for j in range(2)], -1)
        return torch.logsumexp(comps + mixture.weights.log(), -1)

    def log_product(t):
        return torch.logsumexp(torch.distributions.Normal(product.means, product.variances.sqrt()).log_prob(t.unsqueeze(-1)) + product.weights.log(), -1).sum(-1)

    for target, logp in [(TARGET, lambda t: torch.distributions.MultivariateNormal(TARGET.mean, TARGET.cov).log_prob(t)),
                         (mixture, log_density), (product, log_product)]:
        point = x.clone().requires_grad_()
        logp(point).sum().backward()
        assert float((point.grad - target.score(x)).abs().max()) < 1e-10


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="step"):
        ParallelLangevin(0.0, 4, 1)
    with pytest.raises(ValueError, match="window"):
        ParallelLangevin(0.1, 0, 1)
    with pytest.raises(ValueError, match="kind"):
        ParallelLangevin(0.1, 4, 1, kind="hamiltonian")
    with pytest.raises(ValueError, match="start"):
        ParallelLangevin(0.1, 4, 1, start=[0.0]).sample(TARGET, 2, Randomness(0))
    with pytest.raises(TypeError, match="score"):
        ParallelLangevin(0.1, 4, 1).sample(object(), 2, Randomness(0))
    with pytest.raises(ValueError, match="atoms"):
        ProductMixtureTarget([[0.5, 0.5]], [[0.0, 1.0]], [[0.0, 1.0]]).score(torch.zeros(1, 1, dtype=torch.float64))
