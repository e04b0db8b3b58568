"""Soundness grid, null half: the REAL decisions (gof.decide / gof.decide_statistics, what check_exact calls) on
counts drawn from the exact null, over table shapes, sparsity, peakedness, sample sizes and alphas.

The measured false-fail rate must not be significantly above nominal: the lower end of its Clopper-Pearson
interval (statsmodels ``proportion_confint``, two-sided level 1 - DELTA) must be <= alpha.  Every decision here is a
Monte Carlo test of size R / ceil(R / alpha) <= alpha; with discrete statistics (ties count as reaching the
observed value) it is below alpha, and the Holm family of the statistics path is conservative by construction
(union bound), so only the upper side is asserted; the measured rate and its interval are printed (-s).

Rows share the null draws of their seed in blocks, as check_exact would decide them with that seed; given the
seed's draws a row's rejection probability varies around alpha by ~1/sqrt(R) relative, which inflates the variance
of a block's count by a factor 1 + rows * alpha / R; blocks of at most ``calibration.rows_per_null_seed(alpha)``
= R / (10 alpha) rows keep it under 1.1, so the binomial interval holds.
"""

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from autospec.targets import TabularTarget
from verification import gof
from verification.calibration import rows_per_null_seed

DELTA = 1e-7  # two-sided level of each interval: a correct decision fails one cell with probability <= DELTA / 2
BLOCK = 1000


def _measure(test, target, m, alphas, rows, seed=0, statistics=None):
    """Fail counts of the real decision on ``rows`` null samples at each alpha: {alpha: (fails, inconclusive)}."""
    table = target.probs.numpy()
    probs = table.reshape(-1)
    counts = np.random.default_rng(seed).multinomial(m, probs, size=rows)
    out = {}
    for alpha in alphas:
        seeds = 1_000_000 * (seed + 1) + np.arange(rows) // min(BLOCK, rows_per_null_seed(alpha))
        d = gof.decide(test, counts, table, alpha, seed=seeds, statistics=statistics)
        out[alpha] = (int(d.reject.sum()), int(d.inconclusive.sum()))
    return out


def _measure_statistics(target, m, alphas, rows, seed=0):
    """The statistics path (no joint law: each statistic its own Monte Carlo test, Holm over them)."""
    statistics = target.exact_statistics()
    probs = target.probs.numpy().reshape(-1)
    cells = np.random.default_rng(seed).multinomial(m, probs, size=rows)
    import torch

    grid = torch.tensor(np.array(np.unravel_index(np.arange(probs.size), target.probs.shape)).T)
    counts = []
    for stat in statistics:  # statistic counts of every row, read off the joint counts
        value = stat.function(grid).numpy()
        fold = np.zeros((probs.size, stat.probs.numel()))
        fold[np.arange(probs.size), value] = 1
        counts.append((cells @ fold).astype(np.int64))
    out = {}
    for alpha in alphas:
        seeds = 1_000_000 * (seed + 1) + np.arange(rows) // min(BLOCK, rows_per_null_seed(alpha))
        family, _ = gof.decide_statistics(counts, statistics, alpha, seed=seeds)
        out[alpha] = (int(family.reject.sum()), int(family.inconclusive.sum()))
    return out


def _assert_not_liberal(label, rows, measured):
    for alpha, (fails, inconclusive) in measured.items():
        low, high = proportion_confint(fails, rows, alpha=DELTA, method="beta")
        print(f"{label:58s} alpha {alpha:7.0e}: {fails:5d} fails / {rows} = {fails / rows:.2e} "
              f"[{low:.1e}, {high:.1e}]  (inconclusive {inconclusive})")
        assert low <= alpha, f"{label}: false-fail rate {fails / rows:.3g} is above alpha {alpha:g} ([{low:.3g}, {high:.3g}])"


# ---------------------------------------------------------------- quick slice (default suite)
QUICK = [
    ("pearson", "random(4, 3) m=300", lambda: TabularTarget.random(4, 3, seed=0), 300),
    ("likelihood-ratio", "random(4, 3, c=0.3) m=200", lambda: TabularTarget.random(4, 3, seed=1, concentration=0.3), 200),
    ("corrected", "random(5, 4, c=0.3) m=200 (sparse, peaked)", lambda: TabularTarget.random(5, 4, seed=1, concentration=0.3), 200),
    ("auto", "random(3, 3, c=0.3) m=60 + marginal family", lambda: TabularTarget.random(3, 3, seed=2, concentration=0.3), 60),
]


@pytest.mark.statistical(alpha=DELTA)
@pytest.mark.parametrize("case", QUICK, ids=[c[0] for c in QUICK])
def test_null_false_fail_rate_quick(case):
    test, label, make, m = case
    target = make()
    statistics = target.exact_statistics() if test == "auto" else None
    rows = 5_000  # 50 expected fails at alpha 1e-2: the criterion catches a rule 2x liberal
    _assert_not_liberal(f"{test} {label}", rows, _measure(test, target, m, [1e-2], rows, statistics=statistics))


@pytest.mark.statistical(alpha=DELTA)
def test_null_false_fail_rate_statistics_path_quick():
    """Holm over per-statistic Monte Carlo tests (the statistics path of check_exact)."""
    target = TabularTarget.random(4, 3, seed=3, concentration=0.3)
    rows = 5_000
    _assert_not_liberal("statistics path random(4, 3, c=0.3) m=150", rows, _measure_statistics(target, 150, [1e-2], rows))


def test_the_grid_flags_a_liberal_rule():
    """The criterion has teeth: the old normal-approximation p-value of the corrected statistic (exact mean and
    variance, normal tail), on the same kind of sparse peaked table, is rejected by it."""
    from scipy import stats

    target = TabularTarget.random(5, 4, seed=1, concentration=0.3)
    probs = target.probs.numpy().reshape(-1)
    m, rows, alpha = 200, 5_000, 1e-3
    model = gof.null_model("corrected", probs, m)
    t = model.statistic(model.draw(np.random.default_rng(7), rows))
    mean, var = gof.corrected_null_moments(model.k, m)
    fails = int((stats.norm.sf((t - mean) / np.sqrt(var)) <= alpha).sum())
    low, _ = proportion_confint(fails, rows, alpha=DELTA, method="beta")
    assert low > alpha, f"the normal approximation gave {fails} fails in {rows} at alpha {alpha}"


# ---------------------------------------------------------------- the grid (slow)
GRID = [
    ("random(4, 3) m=1000", lambda: TabularTarget.random(4, 3, seed=0), 1000),
    ("random(5, 4, seed=1) m=1000", lambda: TabularTarget.random(5, 4, seed=1), 1000),
    ("random(5, 4, c=0.3) m=1000", lambda: TabularTarget.random(5, 4, seed=1, concentration=0.3), 1000),
    ("random(6, 2, zeros 0.3) m=100", lambda: TabularTarget.random(6, 2, seed=4, zero_fraction=0.3), 100),
    ("random(8, 3, c=0.3) m=2000", lambda: TabularTarget.random(8, 3, seed=1, concentration=0.3), 2000),
]


@pytest.mark.slow
@pytest.mark.parametrize("test", ["pearson", "likelihood-ratio"])
@pytest.mark.parametrize("case", GRID, ids=[c[0] for c in GRID])
def test_null_false_fail_rate_grid_pooled(case, test):
    """Pooled Pearson / G (cheap draws): alphas down to 1e-6 over 10^6 null samples."""
    label, make, m = case
    rows = 1_000_000
    _assert_not_liberal(f"{test} {label}", rows, _measure(test, make(), m, [1e-3, 1e-4, 1e-5, 1e-6], rows))


@pytest.mark.slow
@pytest.mark.parametrize("test", ["corrected", "auto"])
@pytest.mark.parametrize("case", GRID[:4], ids=[c[0] for c in GRID[:4]])
def test_null_false_fail_rate_grid_joint(case, test):
    """The corrected statistic and auto (with the marginal family): alphas down to 1e-4 over 10^5 null samples."""
    label, make, m = case
    target = make()
    rows = 100_000
    statistics = target.exact_statistics() if test == "auto" else None
    _assert_not_liberal(f"{test} {label}", rows, _measure(test, target, m, [1e-2, 1e-3, 1e-4], rows,
                                                          statistics=statistics))
