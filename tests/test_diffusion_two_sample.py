"""The continuous tests themselves: power against shifted laws, and the exact residual mass.

Statistical checks: one sliced-KS same-law check at alpha = 1e-5.  Permutation p-values are
>= 1/201 > 1e-5 by construction, so the same-law MMD/energy checks cannot false-fail at 1e-5.
"""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from autospec.samplers.sequence_speculative_diffusion import residual_mass, sample_truncated_residual
from verification.two_sample import energy_test, gaussian_moment_tests, min_detectable_ks, mmd_test, sliced_ks_test


def _samples(seed, n=800, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2)) * scale + np.array([shift, 0.0])


def test_permutation_tests_detect_shift_and_scale():
    x = _samples(0)
    assert mmd_test(x, _samples(1, shift=0.5), num_permutations=200).p_value <= 1 / 201 + 1e-12
    assert energy_test(x, _samples(2, shift=0.5), num_permutations=200).p_value <= 1 / 201 + 1e-12
    assert mmd_test(x, _samples(3, scale=1.5), num_permutations=200).p_value <= 1 / 201 + 1e-12
    assert mmd_test(x, _samples(4)).p_value > 1e-5 and energy_test(x, _samples(5)).p_value > 1e-5


@pytest.mark.statistical(alpha=1e-5)
def test_sliced_ks():
    x, y = _samples(6, n=5000), _samples(7, n=5000)
    assert sliced_ks_test(x, y, seed=0).p_value > 1e-5  # alpha = 1e-5
    assert sliced_ks_test(x, _samples(8, n=5000, shift=0.2), seed=0).p_value < 1e-5


def test_gaussian_moment_tests_catch_a_wrong_covariance():
    rng = np.random.default_rng(9)
    x = torch.tensor(rng.standard_normal((20000, 3)))
    cov = torch.eye(3, dtype=torch.float64)
    wrong = cov.clone()
    wrong[0, 1] = wrong[1, 0] = 0.1
    assert gaussian_moment_tests(x, torch.zeros(3), wrong).p_value < 1e-5
    assert gaussian_moment_tests(x, torch.full((3,), 0.05), cov).p_value < 1e-5


def test_min_detectable_ks_shrinks_like_root_n():
    a, b = min_detectable_ks(10_000, 1e-5), min_detectable_ks(40_000, 1e-5)
    assert math.isclose(a / b, 2.0, rel_tol=1e-9)


def test_min_detectable_ks_two_sample_bound():
    """The two-sample claim carries both samples' DKW deviations (alpha split over the two), the one-sample claim
    one; both exceed ks_2samp's / kstest's own critical value at alpha / k."""
    n, alpha, k = 10_000, 1e-3, 32
    two = min_detectable_ks(n, alpha, k)
    expected = 2 * (math.sqrt(math.log(4 * k / alpha) / (2 * n)) + math.sqrt(math.log(4 / 0.01) / (2 * n)))
    assert math.isclose(two, expected, rel_tol=1e-12)
    one = min_detectable_ks(n, alpha, k, one_sample=True)
    assert one < two / 1.9
    assert one > stats.kstwo.isf(alpha / k, n)  # above the one-sample exact critical value
    assert two > stats.kstwobign.isf(alpha / k) * math.sqrt(2 / n)  # above the two-sample asymptotic one
    assert min_detectable_ks(n, alpha, k, num_samples_y=4 * n) < two


def test_residual_mass_matches_quadrature():
    """S = p (1 - Phi(u* - delta)) - (1 - Phi(u*)) against numerical integration of max(p phi(u - delta) - phi(u), 0)."""
    for p, delta in [(1.0, 0.3), (0.5, 1.0), (0.9, 2.5), (0.05, 0.7), (1.0, 1e-3)]:
        value = float(residual_mass(torch.tensor(math.log(p), dtype=torch.float64), torch.tensor(delta, dtype=torch.float64)))
        quad = integrate.quad(lambda u, p=p, delta=delta: max(p * stats.norm.pdf(u - delta) - stats.norm.pdf(u), 0.0), -30, 30, points=[delta / 2 - math.log(p) / delta], limit=200)[0]
        assert abs(value - quad) < 1e-9, (p, delta, value, quad)


def test_truncated_residual_sampler_inverts_its_cdf():
    """Deterministic: the bisection solves G(u) = Phi(z) for the residual survival G (checked by quadrature)."""
    for p, delta in [(0.7, 1.2), (1.0, 0.2)]:
        z = torch.tensor([-2.0, -0.5, 0.0, 0.7, 2.5], dtype=torch.float64)
        lp = torch.full_like(z, math.log(p))
        dl = torch.full_like(z, delta)
        u = sample_truncated_residual(lp, dl, z).numpy()
        u_star = delta / 2 - math.log(p) / delta
        mass = float(residual_mass(lp[:1], dl[:1]))
        for ui, zi in zip(u, z.numpy()):
            assert ui >= u_star
            tail = integrate.quad(lambda v, p=p, delta=delta: p * stats.norm.pdf(v - delta) - stats.norm.pdf(v), ui, 40)[0] / mass
            assert abs(tail - stats.norm.cdf(zi)) < 1e-8
