"""verification.markov: exact kernels, stationarity, T-step laws, and a Geweke check, on chains with known answers."""

import numpy as np
import pytest
import torch

from autospec.samplers.glauber import Glauber
from autospec.targets import CurieWeissTarget, TabularTarget
from verification.markov import as_table_target, geweke_check, kernel_matrix, stationarity, t_step_law, tv_curve


class _Frozen(Glauber):
    """Redraws the site from the target's *unconditional* marginal: not mu-stationary on a correlated target."""

    def run(self, oracle, num_samples, rng):
        from autospec.samplers.glauber import check_start

        x = check_start(self.start, num_samples, oracle.n, oracle.q, self.device)
        everyone = torch.arange(num_samples)
        for _ in range(self.steps):
            site = self.sites(num_samples, oracle.n, rng)[:, 0]
            free = torch.full_like(x, -1)
            x[everyone, site] = rng.categorical(oracle.marginals(free)[everyone, site])
        return x


def test_kernel_rows_are_laws_and_t_step_law_matches_enumeration(one_thread):
    target = TabularTarget.random(3, 2, seed=3)
    kernel = kernel_matrix(lambda x: Glauber(1, x), target, states="all")
    assert np.allclose(kernel.matrix.sum(1), 1.0, atol=1e-14)
    start = torch.tensor([1, 0, 1])
    from verification import exact_law

    direct = exact_law(Glauber(3, start), as_table_target(target)).probs.reshape(-1).numpy()
    assert np.abs(t_step_law(kernel, start, 3) - direct).max() < 1e-14


def test_stationarity_detects_a_non_stationary_kernel(one_thread):
    target = CurieWeissTarget(4, beta=1.3)
    good = stationarity(kernel_matrix(lambda x: Glauber(1, x), target), target)
    bad = stationarity(kernel_matrix(lambda x: _Frozen(1, x), target), target)
    assert good.stationary and good.tv < 1e-14
    assert not bad.stationary and bad.tv > 1e-3


def test_tv_curve_decays_to_zero_for_an_ergodic_chain(one_thread):
    target = TabularTarget.random(2, 3, seed=0)
    kernel = kernel_matrix(lambda x: Glauber(1, x), target)
    curve = tv_curve(kernel, target, kernel.cells[0], [0, 5, 20, 80, 320])
    tvs = [tv for _, tv in curve]
    assert all(b <= a + 1e-15 for a, b in zip(tvs, tvs[1:]))
    assert tvs[0] > 0.3 and tvs[-1] < 1e-8


def test_kernel_matrix_rejects_bad_arguments():
    with pytest.raises(ValueError, match="states"):
        kernel_matrix(lambda x: Glauber(1, x), TabularTarget.random(2, 2), states="some")
    with pytest.raises(TypeError, match="tabulated"):
        as_table_target(object())


@pytest.mark.statistical(alpha=1e-6)
def test_geweke_passes_a_stationary_kernel(one_thread):
    target = CurieWeissTarget(5, beta=1.1)
    result = geweke_check(lambda x: Glauber(3, x), target, num_samples=2000, alpha=1e-6, seed=1)
    assert result.passed, result


def test_geweke_catches_a_non_stationary_kernel(one_thread):
    target = CurieWeissTarget(5, beta=1.4)
    result = geweke_check(lambda x: _Frozen(3, x), target, num_samples=2000, alpha=1e-3, seed=1)
    assert not result.passed, result
