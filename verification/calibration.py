"""Calibration audit: correct samplers over many seeds must give uniform p-values.

For each (sampler, target, test): one run of num_seeds x num_samples samples
from ``Randomness(seed)``, cut into num_seeds disjoint blocks (independent
samples of size num_samples, so this is the same as num_seeds seeded runs,
batched); each block is tested against the exact law.  Checks:

* KS uniformity of the p-values (``scipy.stats.kstest``) at ``ks_alpha``;
* the rejection count at ``alpha`` inside the central ``interval`` binomial
  interval of Binomial(num_seeds, alpha).

Tests whose p-values are conservative by construction (the Holm family of the
statistics path) are checked for the upper end of the interval only
(``one_sided``); ``auto`` is a jointly simulated max-statistic, no longer a
Bonferroni bound, but its discrete Monte Carlo p-values are super-uniform, so
it stays one-sided too.  Every p-value is a Monte Carlo p-value (gof).

Far tail (``run_far_tail_calibration``): the measured false-fail rate of the
real decisions at alphas down to 1e-4 on a sparse, peaked table, against
nominal with Clopper-Pearson intervals: the regime where Cochran's rule and
the normal law used to be 5x to 27x liberal.  Results are plain JSON-able dicts.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import torch
from scipy import stats

from autospec import Randomness
from verification import gof
from verification.running import run_sampler, sampler_name

__all__ = ["run_calibration", "default_pairs", "calibration_p_values", "run_far_tail_calibration", "far_tail_target",
           "rows_per_null_seed"]

CONSERVATIVE = ("marginals", "auto")


@contextmanager
def single_thread():
    """torch on one thread while we run (many small ops: threads only contend)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def default_pairs():
    """The default audit's correct samplers x built-in targets."""
    from autospec.samplers import SequenceSpeculative, Sequential, TokenSpeculative
    from autospec.targets import TabularTarget

    target = TabularTarget.random(n=4, q=3, seed=0)
    return [(Sequential(), target), (TokenSpeculative(3), target), (SequenceSpeculative(3), target)]


def calibration_p_values(sampler, target, test: str = "pearson", num_seeds: int = 200, num_samples: int = 500,
                         seed: int = 0) -> np.ndarray:
    """p-values [num_seeds] of ``test`` on disjoint blocks of one seeded run."""
    out = run_sampler(sampler, target.oracle(), num_seeds * num_samples, Randomness(seed))
    values = out.values.reshape(num_seeds, num_samples, target.n)
    probs = target.probs.reshape(-1).numpy()
    statistics = target.exact_statistics() if test in CONSERVATIVE else None
    p_values = []
    for block in range(num_seeds):
        cells = target.cell_index(values[block])
        observed = torch.bincount(cells, minlength=probs.size).numpy()
        # each block is one check_exact(seed=...) call: its own Monte Carlo null draws.  Sharing one null stream
        # over every block makes the p-values dependent (their common Monte Carlo error, ~0.08 at p ~ 0.5 under
        # the Besag-Clifford stop, shifts them all together) and the KS check then fails on a correct sampler.
        null_seed = seed * 100_003 + block
        if test == "pearson":
            p = gof.pearson(observed, probs, seed=null_seed).p_value
        elif test == "likelihood-ratio":
            p = gof.likelihood_ratio(observed, probs, seed=null_seed).p_value
        elif test == "corrected":
            p = gof.corrected_chisquare(observed, probs, seed=null_seed).p_value
        elif test == "marginals":
            p = gof.marginal_tests(values[block], statistics, seed=null_seed).p_value
        elif test == "auto":
            p = gof.auto_test(observed, probs, values[block], statistics, alpha=0.05, seed=null_seed).p_value
        else:
            raise ValueError(f"unknown test {test!r}")
        p_values.append(p)
    return np.asarray(p_values)


def run_calibration(pairs=None, tests=("pearson",), num_seeds: int = 200, num_samples: int = 500, alpha: float = 0.05,
                    ks_alpha: float = 1e-3, interval: float = 0.99, seed: int = 0) -> dict:
    """Calibration of each (sampler, target) x test; ``passed`` when every row passes.

    Quick setting for an audit stage: num_seeds=200, num_samples=300 (seconds per row).
    """
    pairs = default_pairs() if pairs is None else pairs
    low = int(stats.binom.ppf((1 - interval) / 2, num_seeds, alpha))
    high = int(stats.binom.isf((1 - interval) / 2, num_seeds, alpha))
    rows = []
    with single_thread():
        for sampler, target in pairs:
            for test in tests:
                start = time.perf_counter()
                p = calibration_p_values(sampler, target, test, num_seeds, num_samples, seed)
                ks = stats.kstest(p, "uniform")
                rejections = int((p <= alpha).sum())
                one_sided = test in CONSERVATIVE
                rate_ok = rejections <= high if one_sided else low <= rejections <= high
                ks_ok = True if one_sided else bool(ks.pvalue > ks_alpha)
                rows.append({
                    "sampler": sampler_name(sampler), "target": str(getattr(target, "name", target)), "test": test,
                    "num_seeds": num_seeds, "num_samples": num_samples,
                    "ks_statistic": float(ks.statistic), "ks_p_value": float(ks.pvalue), "ks_alpha": ks_alpha,
                    "alpha": alpha, "rejections": rejections, "rejection_rate": rejections / num_seeds,
                    "binomial_interval": [low, high], "interval_level": interval, "one_sided": one_sided,
                    "passed": bool(rate_ok and ks_ok), "seconds": time.perf_counter() - start,
                    "p_values": [float(v) for v in p],
                })
    return {"stage": "calibration", "passed": all(r["passed"] for r in rows), "rows": rows,
            "note": "p-values of disjoint blocks of one seeded run (iid blocks = independent seeds)"}


# ---------------------------------------------------------------- far tail
def rows_per_null_seed(alpha: float) -> int:
    """The most null-sample rows that may share one seed's Monte Carlo draws at level alpha while the fail count
    stays binomial to within 10% of its variance (see run_far_tail_calibration)."""
    return max(1, int(gof.MC_RESOLUTION / (10 * alpha)))


def far_tail_target():
    """The default far-tail table: sparse and peaked (625 cells, Dirichlet(0.3))."""
    from autospec.targets import TabularTarget

    return TabularTarget.random(5, 4, seed=1, concentration=0.3)


def run_far_tail_calibration(target=None, num_samples: int = 300, tests=("pearson", "corrected", "auto"),
                             alphas=(1e-2, 1e-3, 1e-4), rows: int = 20_000, interval: float = 0.99, seed: int = 0,
                             block: int = 1000) -> dict:
    """Measured false-fail rate of the real decisions (``gof.decide``, what check_exact calls) against nominal, at
    several alphas, on counts drawn from the target's exact law (``rows`` of them: the decision's own far tail,
    whatever sampler produced the data).  Each row of the result: the fail count, the rate, its Clopper-Pearson
    interval at level ``interval`` (statsmodels ``proportion_confint``), and ``passed`` = the interval's lower end
    is <= alpha (not significantly liberal; Monte Carlo tests of discrete statistics may sit below alpha).
    Rows share their seed's null draws in blocks of at most ``block`` rows, and of at most
    ``rows_per_null_seed(alpha)``: given one seed's draws a row's rejection probability varies around alpha by
    ~1/sqrt(R) relative, which inflates the variance of a block's fail count by 1 + rows * alpha / R; blocks of
    R / (10 alpha) rows keep that under 1.1, so the binomial interval holds (blocks of 1000 at alpha 1e-2 doubled
    the variance, and the check failed a correct decision)."""
    from statsmodels.stats.proportion import proportion_confint

    target = far_tail_target() if target is None else target
    table = target.probs.numpy()
    counts = np.random.default_rng([seed, 7]).multinomial(num_samples, table.reshape(-1), size=rows)
    out = []
    with single_thread():
        for test in tests:
            statistics = target.exact_statistics() if test in ("auto", "marginals") else None
            for alpha in alphas:
                start = time.perf_counter()
                seeds = 1_000_000 * (seed + 1) + np.arange(rows) // min(block, rows_per_null_seed(alpha))
                d = gof.decide(test, counts, table, float(alpha), seed=seeds, statistics=statistics)
                fails = int(d.reject.sum())
                low, high = proportion_confint(fails, rows, alpha=1 - interval, method="beta")
                out.append({"test": test, "alpha": float(alpha), "rows": rows, "fails": fails, "rate": fails / rows,
                            "interval": [float(low), float(high)], "interval_level": interval,
                            "inconclusive": int(d.inconclusive.sum()), "passed": bool(low <= alpha),
                            "seconds": time.perf_counter() - start})
    return {"target": str(getattr(target, "name", target)), "num_samples": num_samples, "rows": out,
            "passed": all(r["passed"] for r in out)}
