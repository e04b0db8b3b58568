"""Calibration audit: correct samplers over many seeds must give uniform p-values.

For each (sampler, target, test): one run of num_seeds x num_samples samples
from ``Randomness(seed)``, cut into num_seeds disjoint blocks (independent
samples of size num_samples, so this is the same as num_seeds seeded runs,
batched); each block is tested against the exact law.  Checks:

* KS uniformity of the p-values (``scipy.stats.kstest``) at ``ks_alpha``;
* the rejection count at ``alpha`` inside the central ``interval`` binomial
  interval of Binomial(num_seeds, alpha).

Tests whose p-values are conservative by construction (the Holm family, the
Bonferroni ``auto`` combination) are checked for the upper end of the
interval only (``one_sided``).  Results are plain JSON-able dicts.
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

__all__ = ["run_calibration", "default_pairs", "calibration_p_values"]

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
        if test == "pearson":
            p = gof.pearson(observed, probs).p_value
        elif test == "likelihood-ratio":
            p = gof.likelihood_ratio(observed, probs).p_value
        elif test == "corrected":
            p = gof.corrected_chisquare(observed, probs, seed=seed * 100_003 + block).p_value
        elif test == "marginals":
            p = gof.marginal_tests(values[block], statistics).p_value
        elif test == "auto":
            p = gof.auto_test(observed, probs, values[block], statistics, alpha=0.05, seed=block).p_value
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
