"""Anytime-valid sequential mode (verification/sequential.py).

* The e-process is a martingale under H0: checked EXACTLY by enumerating every sequence of a small table
  through the real update code (in batches, so the within-batch and across-batch bookkeeping are both covered).
* Validity measured: many independent streams through the real decision loop (``run_streams`` +
  ``SequentialTest``, cells mapped by ``TablePlan.cells``), exact samples drawn from the table: the false-fail
  rate is within alpha = 1e-2 (>= 2000 runs), and a sampler at exactly TV = tv (two-halves direction) passes with
  rate within false_pass_rate.  The confidence radius is time-uniform (simulated).
* End to end: correct samplers pass; gross mutants fail after far fewer samples than the fixed-size check.

A rate check asserts that the one-sided 1 - 1e-7 Clopper-Pearson lower bound of the measured rate is at most the
nominal rate (fails with probability <= 1e-7 when the claim is right; marked so).  Default-suite alpha of this
module: 3 rate checks at 1e-7 + 2 end-to-end passes at alpha 1e-7 = 5e-7.
"""

import itertools

import numpy as np
import pytest
import torch
from statsmodels.stats.proportion import proportion_confint

from autospec.samplers import SequenceSpeculative, TokenSpeculative
from autospec.targets import CurieWeissTarget, TabularTarget
from verification.sequential import (
    SequentialTest,
    TablePlan,
    check_exact_sequential,
    confidence_radius,
    run_streams,
    tuned_rho,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

CI_ALPHA = 1e-7


def _assert_rate_at_most(count: int, trials: int, nominal: float, what: str) -> None:
    lower, _ = proportion_confint(count, trials, alpha=2 * CI_ALPHA, method="beta")
    assert lower <= nominal, f"{what}: {count}/{trials} = {count / trials:.3g}, lower bound {lower:.3g} > nominal {nominal:g}"


# ---------------------------------------------------------------- the martingale, exactly
@pytest.mark.parametrize("batches", [(6,), (2, 4), (1, 1, 3, 1)])
def test_e_process_is_a_martingale_by_enumeration(batches):
    """sum over all 3^6 sequences of P0(sequence) E_t(sequence) = 1 at every batch end (mixture of a joint table
    and a coarser statistic of it), and > 1 under an alternative.  (alpha and false_pass_rate tiny: no stream stops.)"""
    p0 = np.array([0.5, 0.3, 0.2])
    coarse = np.array([0, 1, 1])  # a statistic: cell 0 vs the rest
    stat = np.array([0.5, 0.5])
    length = sum(batches)
    sequences = np.array(list(itertools.product(range(3), repeat=length)))  # [729, 6]
    test = SequentialTest([p0, stat], alpha=1e-300, tv=0.5, false_pass_rate=1e-300, streams=len(sequences), rho=1.0,
                          weights=[0.7, 0.3])
    start = 0
    for b in batches:
        chunk = sequences[:, start:start + b]
        test.update([chunk, coarse[chunk]])
        start += b
        weight_null = p0[sequences[:, :start]].prod(1) / 3 ** (length - start)  # each prefix appears 3^(rest) times
        e = np.exp(test.log_e_value())
        assert (weight_null * e).sum() == pytest.approx(1.0, abs=1e-12)
    alternative = np.array([0.2, 0.3, 0.5])
    assert (alternative[sequences].prod(1) * np.exp(test.log_e_value())).sum() > 1.5


def test_zero_probability_cell_fails_at_once():
    test = SequentialTest([np.array([0.5, 0.5, 0.0])], alpha=1e-6, tv=0.1, false_pass_rate=1e-2, streams=2, rho=1.0)
    test.update([np.array([[0, 1, 2, 0], [0, 1, 1, 0]])])
    assert list(test.verdict) == ["fail", ""] and test.stopped_at[0] == 3


# ---------------------------------------------------------------- rates, measured on the real decision loop
def _streams(target, alpha, tv, fp, streams, max_samples, batch_size, sample_probs, seed):
    """Run ``streams`` independent sequential tests of ``target``, samples drawn iid from ``sample_probs``."""
    plan = TablePlan.of(target)
    test = SequentialTest(plan.tables, alpha, tv, fp, streams=streams, accept_tables=plan.accept, weights=plan.weights)
    rng = np.random.default_rng(seed)
    n, q = target.n, target.q

    def draw(size):
        joint = rng.choice(len(sample_probs), size=(streams, size), p=sample_probs)
        values = torch.as_tensor(np.stack(np.unravel_index(joint.reshape(-1), (q,) * n), -1))
        return [c.reshape(streams, size) for c in plan.cells(values)]

    run_streams(test, draw, max_samples, batch_size)
    return test


def _two_halves(probs, distance):
    order = np.argsort(-probs)
    half = np.zeros(len(probs), bool)
    half[order[np.searchsorted(np.cumsum(probs[order]), 0.5) + 1:]] = True
    mass = probs[half].sum()
    out = np.where(half, probs * (1 + distance / mass), probs * (1 - distance / (1 - mass)))
    assert out.min() >= 0 and abs(0.5 * np.abs(out - probs).sum() - distance) < 1e-12
    return out


@pytest.mark.statistical(alpha=2 * CI_ALPHA)
def test_false_fail_and_false_pass_rates_quick():
    """alpha = 1e-2 over 2000 null streams; false_pass_rate 1e-2 over 2000 streams at exactly TV = tv."""
    target = TabularTarget.random(2, 3, seed=4)
    probs = target.probs.numpy().reshape(-1)
    null = _streams(target, 1e-2, 0.15, 1e-2, 2000, 3000, 64, probs, seed=0)
    _assert_rate_at_most(int((null.verdict == "fail").sum()), 2000, 1e-2, "sequential false-fail")
    assert (null.verdict == "pass").mean() > 0.9  # the null streams mostly stop with a pass, not at the cap
    far = _streams(target, 1e-2, 0.15, 1e-2, 2000, 2000, 64, _two_halves(probs, 0.15), seed=1)
    _assert_rate_at_most(int((far.verdict == "pass").sum()), 2000, 1e-2, "sequential false-pass at TV = tv")


@pytest.mark.slow
@pytest.mark.statistical(alpha=2 * CI_ALPHA)
@pytest.mark.parametrize("n,q,concentration,tv", [(3, 3, 1.0, 0.1), (4, 3, 0.3, 0.1), (3, 4, 1.0, 0.05)])
def test_false_fail_and_false_pass_rates_grid(n, q, concentration, tv):
    target = TabularTarget.random(n, q, seed=n + q, concentration=concentration)
    probs = target.probs.numpy().reshape(-1)
    null = _streams(target, 1e-2, tv, 1e-2, 4000, 40_000, 128, probs, seed=2)
    _assert_rate_at_most(int((null.verdict == "fail").sum()), 4000, 1e-2, "sequential false-fail")
    far = _streams(target, 1e-2, tv, 1e-2, 4000, 40_000, 128, _two_halves(probs, tv), seed=3)
    _assert_rate_at_most(int((far.verdict == "pass").sum()), 4000, 1e-2, "sequential false-pass at TV = tv")


@pytest.mark.statistical(alpha=CI_ALPHA)
def test_confidence_radius_is_time_uniform():
    """P(exists t <= 4000: r - p_hat_t >= w_t) <= delta, simulated at r = 1/2 (the largest variance), every t."""
    delta, horizon, streams = 0.05, 4000, 3000
    rho = tuned_rho(1000, delta)
    rng = np.random.default_rng(5)
    t = np.arange(1, horizon + 1)
    crossed = np.zeros(streams, bool)
    for rows in np.array_split(np.arange(streams), 6):
        deficit = np.cumsum(0.5 - rng.integers(0, 2, (len(rows), horizon)), 1)  # t (r - p_hat_t)
        crossed[rows] = (deficit >= t * confidence_radius(t, delta, rho)).any(1)
    _assert_rate_at_most(int(crossed.sum()), streams, delta, "time-uniform radius")


# ---------------------------------------------------------------- end to end
@pytest.mark.statistical(alpha=1e-7)
def test_correct_sampler_passes_on_a_table():
    target = TabularTarget.random(3, 3, seed=0)
    result = check_exact_sequential(SequenceSpeculative(3), target, alpha=1e-7, tv=0.1, seed=0)
    assert result.verdict == "pass", result.summary()
    assert result.tv_upper < 0.1 and result.num_samples < result.max_samples
    assert "joint law" in result.guarantee and "whatever the stopping" in result.guarantee


@pytest.mark.statistical(alpha=1e-7)
def test_correct_sampler_passes_on_a_structured_target():
    result = check_exact_sequential(TokenSpeculative(3), CurieWeissTarget(30, beta=0.9, h=0.1), alpha=1e-7, tv=0.1)
    assert result.verdict == "pass", result.summary()
    assert "not the joint law" in result.tv_of


GROSS = ["token-inverted-ratio", "no-verification", "token-residual-d-minus-p", "token-last-draft-unverified",
         "token-prefix-off-by-one"]


def test_gross_mutants_fail_early():
    """Mutants at exact TV >= 0.25 fail after at most a tenth of the fixed-size certified budget at the same alpha
    and tv (power checks: their e-values pass 1/alpha by orders of magnitude; see benchmarks/sequential_vs_fixed.py
    for every mutant against check_exact)."""
    from verification.certified import min_num_samples
    from verification.exact import exact_law
    from verification.mutants import catalogue
    from verification.mutation import instance_for

    mutants = {m.name: m for m in catalogue("discrete")}
    for name in GROSS:
        target = instance_for(mutants[name])
        assert exact_law(mutants[name].make(), target).tv >= 0.25, name
        result = check_exact_sequential(mutants[name].make(), target, alpha=1e-4, tv=0.05, seed=0)
        fixed = min_num_samples(0.05, 1e-4, 1e-2, probs=target.probs.numpy())
        assert result.verdict == "fail", f"{name}: {result.summary()}"
        assert result.num_samples <= fixed / 10, f"{name}: {result.summary()} (fixed-size certified: {fixed})"


def test_cap_gives_inconclusive_and_bad_inputs():
    target = TabularTarget.random(3, 3, seed=0)
    result = check_exact_sequential(SequenceSpeculative(3), target, alpha=1e-4, tv=0.02, max_samples=500)
    assert result.verdict == "inconclusive" and result.num_samples == 500 and not result.passed
    with pytest.raises(ValueError, match="alpha"):
        check_exact_sequential(SequenceSpeculative(3), target, alpha=2.0)
    with pytest.raises(ValueError, match="tv"):
        check_exact_sequential(SequenceSpeculative(3), target, tv=0.0)
    with pytest.raises(ValueError, match="batch_size"):
        check_exact_sequential(SequenceSpeculative(3), target, batch_size=0)
    with pytest.raises(ValueError, match="max_samples"):
        check_exact_sequential(SequenceSpeculative(3), target, max_samples=-1)
