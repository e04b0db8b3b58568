"""Certified mode (verification/certified.py): its false-fail and false-pass rates hold, measured.

Soundness in the manner of TFP's tests of its own assertions, but measured rather than only round-tripped:
vectorised null simulations call the real decision functions (``table_rejects``, ``cdf_rejects``,
``sliced_two_sample_rejects``...) at false-fail rates where a rate is measurable (1e-2, and 1e-3 in the
slow grid), and alternatives built to be hard for the bounds sit at EXACTLY the claimed detectable
discrepancy: a one-point CDF deviation at the median (where the empirical CDF is noisiest), mass moved
between two halves of the table (largest binomial variance), mass moved into the smallest cells.

A rate check asserts that the one-sided 1 - 1e-7 Clopper-Pearson lower bound of the measured rate is at
most the nominal rate: a correct bound fails it with probability <= 1e-7 (marked so).  Power checks
(alternatives) assert the same of the miss rate against false_pass_rate (power checks: unmarked, see
tests/test_alpha_budget.py).  End-to-end checks of correct samplers run at false_fail_rate 1e-7.

Default-suite statistical alpha of this module: 5 null-rate checks and 6 end-to-end passes at 1e-7 = 1.1e-6.
"""

import math

import numpy as np
import pytest
import torch
from scipy.special import ndtr, ndtri
from statsmodels.stats.proportion import proportion_confint

from autospec.diffusion import time_grid
from autospec.samplers import ASD, SequenceSpeculative, Sequential, TokenSpeculative
from autospec.targets import CurieWeissTarget, GaussianMixtureTarget, GaussianTarget, TabularTarget
from verification import certified
from verification.certified import (
    cdf_distance,
    cdf_rejects,
    cdf_two_sample_rejects,
    certify_exact,
    certify_exact_diffusion,
    certify_same_law,
    min_discrepancy_detectable,
    min_num_samples,
    sliced_two_sample_rejects,
    table_rejects,
    table_two_sample_rejects,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

CI_ALPHA = 1e-7  # one-sided level of the Clopper-Pearson bound in every false-fail rate check
E2E_FF = 1e-7  # false_fail_rate of the end-to-end certified checks of correct samplers


def _assert_rate_at_most(count: int, trials: int, nominal: float, what: str) -> None:
    lower, _ = proportion_confint(count, trials, alpha=2 * CI_ALPHA, method="beta")
    assert lower <= nominal, f"{what}: {count}/{trials} = {count / trials:.3g}, lower bound {lower:.3g} > nominal {nominal:g}"


# ---------------------------------------------------------------- hard alternatives
def _bump_at_median(u: np.ndarray, distance: float) -> np.ndarray:
    """Map uniforms to the law G with density 2 on [1/2 - D, 1/2), 0 on [1/2, 1/2 + D): sup |G - F| = D, at one point."""
    return np.where((u >= 0.5) & (u < 0.5 + distance), u - distance, u)


def _two_halves(probs: np.ndarray, distance: float) -> np.ndarray:
    """Move ``distance`` of mass from one half of the cells (by mass) to the other, proportionally: TV = distance."""
    order = np.argsort(-probs)
    half = np.zeros(len(probs), bool)
    half[order[np.searchsorted(np.cumsum(probs[order]), 0.5) + 1:]] = True
    mass = probs[half].sum()
    out = np.where(half, probs * (1 + distance / mass), probs * (1 - distance / (1 - mass)))
    assert out.min() >= 0 and abs(0.5 * np.abs(out - probs).sum() - distance) < 1e-12
    return out


def _into_smallest(probs: np.ndarray, distance: float) -> np.ndarray:
    """Mix towards the uniform law on the smallest positive cells (a tenth of them) so that TV = distance."""
    positive = np.flatnonzero(probs > 0)
    small = positive[np.argsort(probs[positive])[: max(1, len(positive) // 10)]]
    towards = np.zeros_like(probs)
    towards[small] = 1.0 / len(small)
    weight = distance / (0.5 * np.abs(towards - probs).sum())
    assert weight <= 1
    out = (1 - weight) * probs + weight * towards
    assert abs(0.5 * np.abs(out - probs).sum() - distance) < 1e-12
    return out


TABLES = {
    "uniform-9": lambda: np.full(9, 1 / 9),
    "random-27": lambda: TabularTarget.random(3, 3, seed=0).probs.numpy().reshape(-1),
    "sparse-peaked-81": lambda: TabularTarget.random(4, 3, seed=1, concentration=0.3).probs.numpy().reshape(-1),
    "zeros-64": lambda: TabularTarget.random(3, 4, seed=2, zero_fraction=0.3).probs.numpy().reshape(-1),
    "sparse-peaked-6561": lambda: TabularTarget.random(8, 3, seed=1, concentration=0.3).probs.numpy().reshape(-1),
}


def _rejections(decide, laws, m, repetitions, rng, max_cells=2 * 10**7):
    """How many of ``repetitions`` draws are rejected: decide(*counts) with counts [chunk, K] ~ multinomial(m, law)
    for each law in ``laws``, drawn in chunks of at most ``max_cells`` counts (bounded memory)."""
    chunk = max(1, max_cells // len(laws[0]))
    total = 0
    for start in range(0, repetitions, chunk):
        size = min(chunk, repetitions - start)
        total += int(decide(*[rng.multinomial(m, law, size) for law in laws]).sum())
    return total


def _table_rates(name, m, ff, fp, repetitions, seed=0, two_sample=False):
    probs = TABLES[name]()
    rng = np.random.default_rng(seed)
    if two_sample:
        claim = min_discrepancy_detectable(m, ff, fp, cells=len(probs), num_samples2=m)
        null = _rejections(lambda a, b: table_two_sample_rejects(a, b, ff), [probs, probs], m, repetitions, rng)
    else:
        claim = min_discrepancy_detectable(m, ff, fp, probs=probs)
        null = _rejections(lambda a: table_rejects(a, probs, ff), [probs], m, repetitions, rng)
    _assert_rate_at_most(null, repetitions, ff, f"{name}, m={m}: false-fail rate")
    if claim >= 1:
        return claim
    for direction in (_two_halves, _into_smallest):
        try:
            alternative = direction(probs, claim)
        except AssertionError:
            continue  # that direction cannot move this much mass on this table
        if two_sample:
            caught = _rejections(lambda a, b: table_two_sample_rejects(a, b, ff), [probs, alternative], m,
                                 repetitions, rng)
        else:
            caught = _rejections(lambda a: table_rejects(a, probs, ff), [alternative], m, repetitions, rng)
        _assert_rate_at_most(repetitions - caught, repetitions, fp, f"{name}, m={m}, {direction.__name__}: false-pass")
    return claim


# ---------------------------------------------------------------- calculators
@pytest.mark.parametrize("kind", ["cdf", "cdf-two-sample", "table", "table-two-sample"])
def test_calculators_round_trip(kind):
    """m = min_num_samples(D) detects D, and m - 1 does not (TFP's design-soundness check, plus minimality)."""
    probs = TABLES["random-27"]()
    for discrepancy in (0.3, 0.1, 0.05, 0.01):
        for ff, fp in ((1e-6, 1e-3), (1e-2, 1e-1), (1e-9, 1e-6)):
            keywords = {"cdf": {}, "cdf-two-sample": {"two_sample": True}, "table": {"probs": probs},
                        "table-two-sample": {"cells": 27}}[kind]
            m = min_num_samples(discrepancy, ff, fp, **keywords)
            extra = {"num_samples2": m} if "two-sample" in kind else {}
            detect = {k: v for k, v in keywords.items() if k != "two_sample"}
            assert min_discrepancy_detectable(m, ff, fp, **detect, **extra) <= discrepancy
            if m > 1:
                extra = {"num_samples2": m - 1} if "two-sample" in kind else {}
                assert min_discrepancy_detectable(m - 1, ff, fp, **detect, **extra) > discrepancy


def test_detectable_distance_formulas():
    # one-sample CDF: DKWM radius at ff plus the one-point Hoeffding radius at fp
    n = 1000
    expected = math.sqrt(math.log(2 / 1e-6) / (2 * n)) + math.sqrt(math.log(1 / 1e-3) / (2 * n))
    assert min_discrepancy_detectable(n, 1e-6, 1e-3) == pytest.approx(expected, rel=1e-12)
    # two-sample uses the two-sample bound: larger than the one-sample distance at the same n
    two = min_discrepancy_detectable(n, 1e-6, 1e-3, num_samples2=n)
    expected_two = 2 * math.sqrt(math.log(4 / 1e-6) / (2 * n)) + math.sqrt(math.log(1 / 1e-3) * (2 / n) / 2)
    assert two == pytest.approx(expected_two, rel=1e-12) and two > 1.5 * expected
    # Bonferroni over a family spends ff / J on each member
    assert min_discrepancy_detectable(n, 1e-6, 1e-3, num_tests=10) == pytest.approx(
        min_discrepancy_detectable(n, 1e-7, 1e-3), rel=1e-12)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="false_fail_rate"):
        min_discrepancy_detectable(100, 0.0, 1e-3)
    with pytest.raises(ValueError, match="false_pass_rate"):
        min_num_samples(0.1, 1e-6, 1.5)
    with pytest.raises(ValueError, match="discrepancy"):
        min_num_samples(-0.1)
    with pytest.raises(ValueError, match="num_samples"):
        min_discrepancy_detectable(0)
    with pytest.raises(ValueError, match="probs"):
        table_rejects(np.array([3, 4]), np.array([0.5, 0.6]), 1e-3)


def test_statistics_are_exact_on_small_cases():
    # one-sample: F uniform, samples 0.1, 0.2, 0.9: F_n - F is largest at 0.2- / 0.2: max(2/3 - 0.2, 0.9 - 2/3) = 0.4667
    assert float(cdf_distance(np.array([0.9, 0.1, 0.2]), lambda x: x)) == pytest.approx(2 / 3 - 0.2)
    # a law with atoms needs the left-continuous CDF: all samples at the atom 0 of Bernoulli(1/2) on {0, 1}
    cdf = lambda x: np.where(x < 0, 0.0, np.where(x < 1, 0.5, 1.0))  # noqa: E731
    left = lambda x: np.where(x <= 0, 0.0, np.where(x <= 1, 0.5, 1.0))  # noqa: E731
    assert float(cdf_distance(np.zeros(10), cdf, left)) == pytest.approx(0.5)
    # two-sample with ties
    assert float(certified.cdf_distance_two_sample(np.array([0.0, 1.0, 1.0]), np.array([1.0, 2.0]))) == pytest.approx(1 / 2)


# ---------------------------------------------------------------- one-dimensional: rates measured
@pytest.mark.statistical(alpha=CI_ALPHA)
def test_cdf_one_sample_rates_quick():
    n, ff, fp, reps = 400, 1e-2, 1e-2, 4000
    rng = np.random.default_rng(0)
    null = cdf_rejects(rng.random((reps, n)), lambda x: x, ff)
    _assert_rate_at_most(int(null.sum()), reps, ff, "DKWM one-sample false-fail")
    claim = min_discrepancy_detectable(n, ff, fp)
    caught = cdf_rejects(_bump_at_median(rng.random((reps, n)), claim), lambda x: x, ff)
    _assert_rate_at_most(int((~caught).sum()), reps, fp, "DKWM one-sample false-pass at the claimed distance")


@pytest.mark.parametrize("ff", [1e-2, 1e-4, 1e-7])
def test_dkwm_threshold_against_the_exact_ks_law(ff):
    """For continuous F the null law of sup |F_n - F| is known exactly (scipy.stats.kstwo): the DKWM threshold's
    exact false-fail rate is <= ff at every n (and within a factor 1.2 of it for n >= 1000: nearly tight)."""
    from scipy.stats import kstwo

    for n in (1, 5, 30, 100, 1000, 20000):
        exact = kstwo.sf(certified.cdf_threshold(n, ff), n)
        assert exact <= ff
        if n >= 1000:
            assert exact >= ff / 1.2


def test_dkwm_null_rate_is_near_nominal_not_vacuous():
    """The measured false-fail rate is within a factor 3 of nominal (DKWM is tight in the tail):
    the bound is not so loose that the rate checks above could not fail."""
    n, ff, reps = 400, 5e-2, 4000
    null = cdf_rejects(np.random.default_rng(1).random((reps, n)), lambda x: x, ff)
    _, upper = proportion_confint(int(null.sum()), reps, alpha=2e-6, method="beta")
    assert upper >= ff / 3


@pytest.mark.statistical(alpha=CI_ALPHA)
def test_sliced_two_sample_claim_at_d16():
    """d = 16, axes + 16 random directions (Bonferroni over 32): null rate <= ff, and a deviation of exactly the
    claimed two-sample distance along one axis, concentrated at one point, is caught with rate >= 1 - fp."""
    d, m, ff, fp, reps = 16, 500, 1e-2, 1e-2, 150
    directions = certified._directions(d, 16, seed=0)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((reps, m, d)), rng.standard_normal((reps, m, d))
    null = sliced_two_sample_rejects(x, y, directions, ff)
    _assert_rate_at_most(int(null.sum()), reps, ff, "sliced two-sample false-fail")
    claim = min_discrepancy_detectable(m, ff, fp, num_samples2=m, num_tests=len(directions))
    y[..., 3] = ndtri(_bump_at_median(ndtr(y[..., 3]), claim))
    caught = sliced_two_sample_rejects(x, y, directions, ff)
    _assert_rate_at_most(int((~caught).sum()), reps, fp, "sliced two-sample false-pass at the claimed distance")


# ---------------------------------------------------------------- tables: rates measured
@pytest.mark.statistical(alpha=CI_ALPHA)
@pytest.mark.parametrize("name,m", [("uniform-9", 300), ("sparse-peaked-81", 2000)])
def test_table_one_sample_rates_quick(name, m):
    _table_rates(name, m, 1e-2, 1e-2, 3000)


@pytest.mark.statistical(alpha=CI_ALPHA)
def test_table_two_sample_rates_quick():
    _table_rates("random-27", 1500, 1e-2, 1e-2, 3000, two_sample=True)


@pytest.mark.slow
@pytest.mark.statistical(alpha=CI_ALPHA)
@pytest.mark.parametrize("name", list(TABLES))
@pytest.mark.parametrize("m", [200, 2000, 20000])
@pytest.mark.parametrize("ff,fp", [(1e-2, 1e-2), (1e-3, 1e-2)])
@pytest.mark.parametrize("two_sample", [False, True])
def test_table_rates_grid(name, m, ff, fp, two_sample):
    _table_rates(name, m, ff, fp, 20000 if ff < 1e-2 else 5000, seed=m, two_sample=two_sample)


@pytest.mark.slow
@pytest.mark.statistical(alpha=CI_ALPHA)
@pytest.mark.parametrize("n", [50, 1000, 10000])
@pytest.mark.parametrize("ff", [1e-2, 1e-3])
def test_cdf_rates_grid(n, ff):
    fp, reps = 1e-2, 20000 if ff < 1e-2 else 5000
    rng = np.random.default_rng(n)
    null = np.concatenate([cdf_rejects(rng.random((1000, n)), lambda x: x, ff) for _ in range(reps // 1000)])
    _assert_rate_at_most(int(null.sum()), reps, ff, f"DKWM one-sample n={n} false-fail")
    null2 = np.concatenate([cdf_two_sample_rejects(rng.random((500, n)), rng.random((500, n)), ff)
                            for _ in range(reps // 500)])
    _assert_rate_at_most(int(null2.sum()), reps, ff, f"DKWM two-sample n={n} false-fail")
    for two_sample in (False, True):
        claim = min_discrepancy_detectable(n, ff, fp, num_samples2=n if two_sample else None)
        if claim >= 0.5:
            continue
        if two_sample:
            caught = cdf_two_sample_rejects(rng.random((2000, n)), _bump_at_median(rng.random((2000, n)), claim), ff)
        else:
            caught = cdf_rejects(_bump_at_median(rng.random((2000, n)), claim), lambda x: x, ff)
        _assert_rate_at_most(int((~caught).sum()), 2000, fp, f"n={n} two_sample={two_sample} false-pass")


@pytest.mark.slow
@pytest.mark.statistical(alpha=CI_ALPHA)
@pytest.mark.parametrize("m", [500, 4000])
def test_sliced_two_sample_claim_at_d16_grid(m):
    d, ff, fp, reps = 16, 1e-2, 1e-2, 1000
    directions = certified._directions(d, 16, seed=1)
    rng = np.random.default_rng(m)
    misses = nulls = 0
    claim = min_discrepancy_detectable(m, ff, fp, num_samples2=m, num_tests=len(directions))
    for _ in range(reps // 100):
        x, y = rng.standard_normal((100, m, d)), rng.standard_normal((100, m, d))
        nulls += int(sliced_two_sample_rejects(x, y, directions, ff).sum())
        y[..., 0] = ndtri(_bump_at_median(ndtr(y[..., 0]), claim))
        misses += int((~sliced_two_sample_rejects(x, y, directions, ff)).sum())
    _assert_rate_at_most(nulls, reps, ff, "sliced two-sample false-fail")
    _assert_rate_at_most(misses, reps, fp, "sliced two-sample false-pass")


# ---------------------------------------------------------------- end to end on samplers
@pytest.mark.statistical(alpha=E2E_FF)
@pytest.mark.parametrize("sampler", [SequenceSpeculative(3), TokenSpeculative(2)], ids=["sequence", "token"])
def test_certify_exact_passes_correct_samplers(sampler):
    target = TabularTarget.random(3, 3, seed=0)
    result = certify_exact(sampler, target, false_fail_rate=E2E_FF, false_pass_rate=1e-3, tv=0.1, seed=0)
    assert result.passed, result.summary()
    assert result.num_samples == min_num_samples(0.1, E2E_FF, 1e-3, probs=target.probs.numpy())
    assert result.detectable <= 0.1 and "no asymptotics" in result.guarantee and "joint law" in result.guarantee


def test_certify_exact_fails_mutants():
    """Mutants whose exact TV is >= 0.12 are failed at tv=0.1 (the full catalogue: benchmarks/certified_grid.py).
    A power check: by the one-set Hoeffding bound it misses with probability <= exp(-2 m (0.12 - threshold)^2),
    below 1e-8 at these sizes."""
    from verification.exact import exact_law
    from verification.mutants import catalogue
    from verification.mutation import instance_for

    mutants = {m.name: m for m in catalogue("discrete")}
    for name in ("token-inverted-ratio", "no-verification", "token-last-draft-unverified", "block-previous-p"):
        target = instance_for(mutants[name])
        assert exact_law(mutants[name].make(), target).tv >= 0.12, name
        result = certify_exact(mutants[name].make(), target, tv=0.1, seed=1)
        assert not result.passed, f"{name}: {result.summary()}"


@pytest.mark.statistical(alpha=E2E_FF)
def test_certify_statistics_path_on_a_large_target():
    target = CurieWeissTarget(20, beta=0.8, h=0.1)
    result = certify_exact(SequenceSpeculative(4), target, false_fail_rate=E2E_FF, tv=0.1, seed=0)
    assert result.passed, result.summary()
    assert "not the joint law" in result.guarantee and "statistics" in result.test


@pytest.mark.statistical(alpha=E2E_FF)
def test_certify_same_law_two_samplers():
    target = TabularTarget.random(2, 3, seed=3)
    assert certify_same_law(Sequential(), SequenceSpeculative(2), target, false_fail_rate=E2E_FF, tv=0.15).passed
    from verification.mutants import catalogue
    from verification.mutation import instance_for

    mutant = next(m for m in catalogue("discrete") if m.name == "no-verification")
    result = certify_same_law(mutant.make(), mutant.sibling(), instance_for(mutant), tv=0.15, seed=1)
    assert not result.passed and result.detectable <= 0.15


@pytest.mark.statistical(alpha=2 * E2E_FF)
def test_certify_exact_diffusion_gaussian_and_two_sample():
    from verification.mutants import catalogue
    from verification.mutants.diffusion import kill_setting

    target = GaussianTarget.random(3, seed=3, scale=1.5)
    result = certify_exact_diffusion(ASD(time_grid(16, t_max=10.0), lookahead=4), target, E2E_FF, ks=0.1, seed=0)
    assert result.passed and "exact Gaussian chain law" in result.test and result.detectable <= 0.1, result.summary()
    times, kill_target = kill_setting()
    mutant = next(m for m in catalogue("diffusion") if m.name == "diffusion_inverted_ratio")
    assert not certify_exact_diffusion(mutant.make(), kill_target, ks=0.1, seed=0).passed
    mixture = GaussianMixtureTarget([0.4, 0.6], [[-4.0, -4.0], [4.0, 3.0]],
                                    [[[0.5, 0.2], [0.2, 0.5]], [[0.3, 0.0], [0.0, 0.6]]])
    two = certify_exact_diffusion(ASD(time_grid(16, t_max=10.0), lookahead=4), mixture, E2E_FF, ks=0.15, seed=0,
                                  num_projections=4)
    assert two.passed and "two-sample" in two.test, two.summary()
    assert torch.isfinite(torch.tensor(two.statistic))
