"""power: the min_detectable_tv claims hold (least favourable directions, a tempered sampler family)."""

import numpy as np
import pytest

from autospec.targets import TabularTarget
from verification import check_exact, exact_law, power
from verification.calibration import single_thread
from verification.check import default_num_samples
from verification.mutants.discrete import TemperedSequential


def test_inverse_and_monotone():
    p = TabularTarget.random(n=3, q=3, seed=0).probs.reshape(-1).numpy()
    tvs = [power.min_detectable_tv("pearson", m, 1e-4, probs=p) for m in (1000, 4000, 16000)]
    assert tvs[0] > tvs[1] > tvs[2]
    m = power.samples_for_tv(0.05, "pearson", 1e-4, probs=p)
    # the two searches are Monte Carlo (different repetitions): inverse to their 2-4% precision
    assert power.min_detectable_tv("pearson", m, 1e-4, probs=p) <= 0.05 * 1.04
    assert power.min_detectable_tv("pearson", int(m * 0.8), 1e-4, probs=p) > 0.05


def test_check_exact_accepts_a_target_tv():
    from autospec.samplers import Sequential

    mu = TabularTarget.random(n=3, q=3, seed=0)
    with single_thread():
        result = check_exact(Sequential(), mu, tv=0.1, alpha=1e-4, seed=0)
    assert result.min_detectable_tv <= 0.1
    # the budget is the plan for check_exact's own decision (auto on the table, with its marginal family)
    assert result.num_samples == default_num_samples(mu, 1e-4, tv=0.1)
    assert result.details["min_detectable_tv_bounds"].startswith("planned")
    with pytest.raises(ValueError):
        check_exact(Sequential(), mu, num_samples=100, tv=0.1)


@pytest.mark.statistical(alpha=5e-5)
@pytest.mark.parametrize("test", ["pearson", "corrected"])
def test_claim_holds_in_the_least_favourable_direction(test):
    """Simulated power (4000 reps) at the claimed TV, in the direction that minimises chi2: >= 0.99 - 4 sd."""
    p0 = TabularTarget.random(n=4, q=3, seed=1).probs.reshape(-1).numpy()
    m, alpha = 3000, 1e-3
    eps = power.min_detectable_tv(test, m, alpha, probs=p0)
    p1 = power.least_favourable(p0, eps)
    assert 0.5 * np.abs(p1 - p0).sum() == pytest.approx(eps, rel=1e-6)
    reps = 4000
    estimate = power.simulated_power(test, p0, p1, m, alpha, repetitions=reps, seed=3)
    assert estimate >= 0.99 - 4 * np.sqrt(0.99 * 0.01 / reps)


def _tempered_settings(mu):
    settings = []
    for temperature in (1.0, 0.9, 0.8, 0.7, 0.5, 1.5, 2.0):
        law = exact_law(TemperedSequential(temperature), mu)
        settings.append((temperature, law.tv))
    return settings


def test_tempered_family_strong_settings_rejected():
    """Default-suite version: every setting with exact TV >= 2x the claim is rejected in 10 of 10 seeds
    (each has power > 1 - 1e-9 if the claim is right), and T = 1 has TV ~ 0."""
    mu = TabularTarget.random(n=3, q=3, seed=0)
    num_samples, alpha = 3000, 1e-4
    with single_thread():
        settings = _tempered_settings(mu)
        claim = None
        for temperature, tv in settings:
            if temperature == 1.0:
                assert tv < 1e-12
                continue
            results = [check_exact(TemperedSequential(temperature), mu, num_samples=num_samples, alpha=alpha, seed=s,
                                   test="pearson") for s in range(10)]
            claim = results[0].min_detectable_tv
            if tv >= 2 * claim:
                assert all(not r.passed for r in results), (temperature, tv, claim)
        assert claim is not None and any(tv >= 2 * claim for _, tv in settings)


@pytest.mark.slow
@pytest.mark.parametrize("test", ["pearson", "auto"])
def test_tempered_family_power_claim_over_100_seeds(test):
    """Every tempered setting with exact TV >= claimed min_detectable_tv is rejected in >= 99 of 100 seeds."""
    mu = TabularTarget.random(n=3, q=3, seed=0)
    alpha = 1e-4
    with single_thread():
        settings = _tempered_settings(mu)
        for temperature, tv in settings:
            if temperature == 1.0:
                continue
            num_samples = power.samples_for_tv(tv, test, alpha, probs=mu.probs.reshape(-1).numpy())
            rejected = sum(not check_exact(TemperedSequential(temperature), mu, num_samples=num_samples, alpha=alpha,
                                           seed=s, test=test).passed for s in range(100))
            assert rejected >= 99, (temperature, tv, num_samples, rejected)


def _panel_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "benchmarks" / "power_panel.py"
    spec = importlib.util.spec_from_file_location("power_panel", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_panel_cumulants_match_the_exact_pearson_moments():
    """power_at's conditioned-Poisson cumulants (used for G's moments and every statistic's skew) against the exact
    multinomial mean and variance of pooled X^2 (a sparse pooled table, under the null and an alternative)."""
    p0 = TabularTarget.random(n=5, q=3, seed=0).probs.reshape(-1).numpy()
    p1 = power.least_favourable(p0, 0.05)
    m = 1500
    bins, law0 = power._pooling(p0, m)
    keep = bins >= 0
    law1 = np.bincount(bins[keep], weights=p1[keep], minlength=len(law0))
    for q, cells in ((law0, p0), (law1, p1)):
        mean, var, _ = power._conditioned_cumulants("pearson", law0, q, m)
        exact_mean, exact_var = power._moments("pearson", p0, cells, m)
        assert abs(mean - exact_mean) <= 1.5 and abs(var - exact_var) <= 3.0  # the fixed total's O(1) terms
    # G has its own moments (it used to borrow X^2's): here its alternative mean is well below X^2's
    assert power._panel_cumulants("likelihood-ratio", law0, law1, m, lambda q: power._moments(
        "pearson", p0, power._unbinned(q, bins), m))[0] != pytest.approx(power._moments("pearson", p0, p1, m)[0])


def test_auto_within_1_5x_of_best_single_test_small_panel():
    """Default-suite slice of the panel (81 cells, four perturbations; the approximation, not a claim): the m from
    which auto's power stays >= 0.9, and the first m where it reaches 0.9, within 1.5x of the best single test's.
    Of the approximation only: in the mixture-uniform row the real corrected test reaches 0.9 at ~1130, not the
    approximate 2092, and real auto/best is ~1.55 there (benchmarks/power_panel.py's docstring)."""
    for row in _panel_module().panel(sizes=range(4, 5)):
        assert row["auto_over_best"] <= 1.5, row
        assert row["first_auto_over_best"] <= 1.5, row


@pytest.mark.slow
def test_auto_within_1_5x_of_best_single_test_full_panel_except_plateaus():
    """The full panel (81 .. 6561 cells; the approximation power_at, not a claim).

    Claimed: auto first reaches power 0.9 within 1.5x of the first m at which the best single test does, in every
    row; and the m from which auto's power STAYS >= 0.9 is within 1.5x of the best single test's, except where the
    best single test's own power is still below 0.95 somewhere between 1.5x its m and auto's m (a plateau near the
    target: on a monotone curve 1.5x the samples lift power 0.9 to ~0.99); at most 2 rows of 20 are excepted.

    Why the exception (it is not an artefact of the approximation): the pooled tests' power is not monotone in m
    (power_at's docstring: pooling releases cells as m grows).  On 6561 cells, least-favourable direction, TV 0.05,
    alpha 1e-3, the REAL decisions (verification.power.measured_power, 600 samples each, seed 0) give pooled
    Pearson 0.94, 0.99, 0.94, 0.95, 0.92, 0.90, 0.94, 0.96 and auto 0.86, 0.985, 0.92, 0.88, 0.885, 0.87, 0.92,
    0.95 at m = 17k, 20k, 25k, 30k, 35k, 40k, 45k, 50k (pearson averaged over 5 decision seeds x 600: 0.899 +- 0.006
    at 36k, 0.923 at 40k, 0.912 at 43k).  Pearson sits on a plateau just above 0.9 from 17k to 45k; auto, which
    spends alpha on pearson, corrected and the marginal family, is ~0.05 lower there, below 0.9, and stays above it
    only from ~45k: 2.5-3x Pearson's 17k, although it first reaches 0.9 at ~18k (1.1x).  Whether Pearson itself
    "needs" 17k or ~44k turns on +-0.005 of power, so the ratio there is ill-conditioned (the approximation gives
    1.45 on a 16-point-per-doubling grid, 2.81 on an 8-point one); the claim "auto needs at most 1.5x the best
    single test" is false there in the from-then-on sense and is not made."""
    rows = _panel_module().panel(sizes=range(4, 9))
    for row in rows:
        assert row["first_auto_over_best"] <= 1.5, row
        assert row["auto_over_best"] <= 1.5 or row["best_low"] < 0.95, row
    assert sum(row["auto_over_best"] <= 1.5 for row in rows) >= len(rows) - 2, rows
