"""gof: pooling, the corrected statistic's exact null moments, marginal families, TV estimates."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autospec.targets import TabularTarget
from autospec.targets.statistics import count_equal, statistic_law
from verification import gof
from verification.gof import corrected_moments, corrected_null_moments, simulate_corrected_null


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 40), st.integers(1, 400), st.integers(0, 10**6))
def test_pooling_keeps_mass_and_counts(k, m, seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(k, 0.5))
    observed = rng.multinomial(m, probs)
    obs, prb, info = gof.pool_cells(observed, probs)
    assert obs.sum() == observed[probs > 0].sum()
    assert abs(prb.sum() - probs[probs > 0].sum()) < 1e-12
    if info["pooled_cells"]:
        assert prb[-1] * m >= gof.MIN_EXPECTED or len(prb) == 1  # the pooled cell reaches the threshold
    assert len(obs) != 1 or info["pooled_cells"] == (probs > 0).sum()


def test_impossible_cell_rejects_outright():
    probs = np.array([0.5, 0.5, 0.0])
    for result in (gof.pearson([5, 5, 1], probs), gof.likelihood_ratio([5, 5, 1], probs),
                   gof.corrected_chisquare([5, 5, 1], probs)):
        assert result.p_value == 0.0


def test_corrected_null_moments_are_exact():
    """E T = -1 and Var T = 2 (k-1)(1-1/m): checked against the exact multinomial enumeration for k = 3, m = 6."""
    from itertools import product

    from scipy.stats import multinomial

    probs = np.array([0.5, 0.3, 0.2])
    m = 6
    ts, ws = [], []
    for a, b in product(range(m + 1), repeat=2):
        if a + b <= m:
            counts = np.array([a, b, m - a - b])
            ts.append(gof.corrected_statistic(counts, probs))
            ws.append(multinomial.pmf(counts, m, probs))
    ts, ws = np.array(ts), np.array(ws)
    mean = (ts * ws).sum()
    var = ((ts - mean) ** 2 * ws).sum()
    assert mean == pytest.approx(-1.0, abs=1e-12)
    assert var == pytest.approx(corrected_null_moments(3, m)[1], rel=1e-12)
    # and the alternative formula with p1 = p0 agrees
    assert corrected_moments(probs, probs, m) == pytest.approx((-1.0, var), rel=1e-10)


def test_corrected_alternative_moments_match_enumeration():
    from itertools import product

    from scipy.stats import multinomial

    p0, p1 = np.array([0.5, 0.3, 0.2]), np.array([0.3, 0.3, 0.4])
    m = 5
    ts, ws = [], []
    for a, b in product(range(m + 1), repeat=2):
        if a + b <= m:
            counts = np.array([a, b, m - a - b])
            ts.append(gof.corrected_statistic(counts, p0))
            ws.append(multinomial.pmf(counts, m, p1))
    ts, ws = np.array(ts), np.array(ws)
    mean = (ts * ws).sum()
    assert corrected_moments(p0, p1, m) == pytest.approx((mean, ((ts - mean) ** 2 * ws).sum()), rel=1e-10)


def test_simulated_null_has_the_exact_moments():
    probs = np.random.default_rng(0).dirichlet(np.ones(50))
    for m in (20, 400):  # sparse (draw samples) and dense (draw counts) paths
        t = simulate_corrected_null(probs, m, 20000, seed=1)
        mean, var = corrected_null_moments(50, m)
        assert abs(t.mean() - mean) < 6 * np.sqrt(var / 20000)  # deterministic with the seed
        assert t.var() == pytest.approx(var, rel=0.15)


def test_expected_null_tv_formula():
    probs = np.random.default_rng(3).dirichlet(np.ones(20))
    rng = np.random.default_rng(4)
    plug = [gof.tv_plug_in(rng.multinomial(300, probs), probs) for _ in range(4000)]
    assert gof.expected_null_tv(probs, 300) == pytest.approx(np.mean(plug), rel=0.02)


def test_tv_upper_bound_is_an_upper_bound_on_a_known_deviation():
    rng = np.random.default_rng(5)
    p0 = rng.dirichlet(np.ones(30))
    p1 = 0.8 * p0 + 0.2 * rng.dirichlet(np.ones(30))
    true_tv = 0.5 * np.abs(p1 - p0).sum()
    covered = 0
    for _ in range(200):
        observed = rng.multinomial(2000, p1)
        covered += gof.tv_upper_bound(gof.tv_plug_in(observed, p0), 30, 2000) >= true_tv
    assert covered == 200
    assert gof.tv_bias_corrected(observed, p0) < gof.tv_plug_in(observed, p0)


def test_statistic_law_of_number_of_ones_and_user_function():
    mu = TabularTarget.random(n=4, q=3, seed=1)
    ones = statistic_law(mu, count_equal(1))
    cells = torch.tensor(np.array(np.unravel_index(np.arange(81), (3,) * 4)).T)
    expected = np.zeros(5)
    np.add.at(expected, (cells == 1).sum(1).numpy(), mu.probs.reshape(-1).numpy())
    assert np.allclose(ones.probs.numpy(), expected)
    parity = statistic_law(mu, lambda v: v.sum(-1) % 2, name="parity")
    assert parity.probs.numel() == 2 and parity.counts(cells).sum() == 81


@pytest.mark.statistical(alpha=3e-5)
def test_marginal_family_and_auto_pass_exact_samples():
    mu = TabularTarget.random(n=4, q=3, seed=2)
    rng = np.random.default_rng(11)
    probs = mu.probs.reshape(-1).numpy()
    cells = rng.choice(81, size=3000, p=probs)
    values = torch.tensor(np.array(np.unravel_index(cells, (3,) * 4)).T)
    observed = np.bincount(cells, minlength=81)
    family = gof.marginal_tests(values, mu.exact_statistics())
    assert family.p_value > 1e-5
    assert gof.auto_test(observed, probs, values, mu.exact_statistics(), alpha=1e-5).p_value > 1e-5
    assert gof.corrected_chisquare(observed, probs, alpha=1e-5).p_value > 1e-5


def test_auto_chooses_by_density():
    assert gof.choose_joint_test(81, 10_000) == "pearson"
    assert gof.choose_joint_test(6561, 1000) == "pearson+corrected"
