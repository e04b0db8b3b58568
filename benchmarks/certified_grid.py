"""Measured false-fail and false-pass rates of the certified checks, with Clopper-Pearson intervals.

For each setting: the claimed detectable discrepancy at (m, false_fail_rate, false_pass_rate); the false-fail rate
measured on exact samples; the false-pass rate measured on alternatives at EXACTLY the claimed discrepancy, built to
be hard for the bound (tables: mass moved between two halves, or into the smallest tenth of the cells; CDFs: all the
deviation at the median, one point).  The decision functions are the ones ``certify_*`` call.
A claim holds when the measured rate's interval reaches below nominal.  tests/test_certified.py asserts the same.

Run: python benchmarks/certified_grid.py [--reps 5000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy import stats
from scipy.special import ndtr, ndtri
from statsmodels.stats.proportion import proportion_confint

from autospec.targets import TabularTarget
from verification import certified
from verification.certified import (
    cdf_rejects,
    cdf_two_sample_rejects,
    min_discrepancy_detectable,
    sliced_two_sample_rejects,
    table_rejects,
    table_two_sample_rejects,
)


def bump_at_median(u, distance):
    """Uniforms -> law with sup |G - F| = distance, attained at the median only."""
    return np.where((u >= 0.5) & (u < 0.5 + distance), u - distance, u)


def two_halves(probs, distance):
    order = np.argsort(-probs)
    half = np.zeros(len(probs), bool)
    half[order[np.searchsorted(np.cumsum(probs[order]), 0.5) + 1:]] = True
    mass = probs[half].sum()
    if distance >= 1 - mass:
        return None
    return np.where(half, probs * (1 + distance / mass), probs * (1 - distance / (1 - mass)))


def into_smallest(probs, distance):
    positive = np.flatnonzero(probs > 0)
    small = positive[np.argsort(probs[positive])[: max(1, len(positive) // 10)]]
    towards = np.zeros_like(probs)
    towards[small] = 1.0 / len(small)
    weight = distance / (0.5 * np.abs(towards - probs).sum())
    return None if weight > 1 else (1 - weight) * probs + weight * towards


def interval(count, trials):
    low, high = proportion_confint(count, trials, alpha=0.05, method="beta")
    return f"{count / trials:.2e} [{low:.1e}, {high:.1e}]"


TABLES = {
    "uniform-9": lambda: np.full(9, 1 / 9),
    "random-27": lambda: TabularTarget.random(3, 3, seed=0).probs.numpy().reshape(-1),
    "sparse-peaked-81": lambda: TabularTarget.random(4, 3, seed=1, concentration=0.3).probs.numpy().reshape(-1),
    "zeros-64": lambda: TabularTarget.random(3, 4, seed=2, zero_fraction=0.3).probs.numpy().reshape(-1),
    "sparse-peaked-6561": lambda: TabularTarget.random(8, 3, seed=1, concentration=0.3).probs.numpy().reshape(-1),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=5000)
    parser.add_argument("--quick", action="store_true", help="two tables, one size, no 1e-3 rows")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    reps = args.reps
    print(f"{reps} repetitions per cell, 95% Clopper-Pearson intervals; load average {os.getloadavg()[0]:.2f}")
    print(f"{'check':<36} {'m':>6} {'ff':>6} {'fp':>6} {'claim':>7} {'false-fail [95%]':>28} "
          f"{'false-pass two-halves':>28} {'false-pass into-smallest':>28}")
    names = ["uniform-9", "sparse-peaked-81"] if args.quick else list(TABLES)
    sizes = [2000] if args.quick else [200, 2000, 20000]
    rates = [(1e-2, 1e-2)] if args.quick else [(1e-2, 1e-2), (1e-3, 1e-2)]
    for name in names:
        probs = TABLES[name]()
        for two_sample in (False, True):
            for m in sizes:
                for ff, fp in rates:
                    if two_sample:
                        claim = min_discrepancy_detectable(m, ff, fp, cells=len(probs), num_samples2=m)
                        null = table_two_sample_rejects(rng.multinomial(m, probs, reps), rng.multinomial(m, probs, reps), ff)
                    else:
                        claim = min_discrepancy_detectable(m, ff, fp, probs=probs)
                        null = table_rejects(rng.multinomial(m, probs, reps), probs, ff)
                    cells = []
                    for direction in (two_halves, into_smallest):
                        law = direction(probs, claim) if claim < 1 else None
                        if law is None:
                            cells.append("unreachable")
                            continue
                        counts = rng.multinomial(m, law, reps)
                        caught = (table_two_sample_rejects(rng.multinomial(m, probs, reps), counts, ff) if two_sample
                                  else table_rejects(counts, probs, ff))
                        cells.append(interval(int((~caught).sum()), reps))
                    label = f"TV {'2-sample' if two_sample else '1-sample'} {name}"
                    print(f"{label:<36} {m:>6d} {ff:>6g} {fp:>6g} {claim:>7.4f} {interval(int(null.sum()), reps):>28} "
                          f"{cells[0]:>28} {cells[1]:>28}", flush=True)
    for n in [400] if args.quick else [50, 1000, 10000]:
        for ff, fp in rates:
            for two_sample in (False, True):
                claim = min_discrepancy_detectable(n, ff, fp, num_samples2=n if two_sample else None)
                r = 2000 if n >= 10000 else 20000  # DKWM is nearly tight here: many repetitions
                if two_sample:
                    null = cdf_two_sample_rejects(rng.random((r, n)), rng.random((r, n)), ff)
                    caught = cdf_two_sample_rejects(rng.random((r, n)), bump_at_median(rng.random((r, n)), claim), ff)
                else:
                    null = cdf_rejects(rng.random((r, n)), lambda x: x, ff)
                    caught = cdf_rejects(bump_at_median(rng.random((r, n)), claim), lambda x: x, ff)
                miss = interval(int((~caught).sum()), r) if claim < 0.5 else "unreachable"
                label = "KS (DKWM) 2-sample" if two_sample else (
                    f"KS (DKWM) 1-s, exact P {stats.kstwo.sf(certified.cdf_threshold(n, ff), n):.2e}")
                print(f"{label:<36} {n:>6d} {ff:>6g} {fp:>6g} {claim:>7.4f} {interval(int(null.sum()), r):>28} "
                      f"{miss:>28} {'(one-point bump)':>28}", flush=True)
    d, ff, fp = 16, 1e-2, 1e-2
    directions = certified._directions(d, 16, seed=0)
    for m in [500] if args.quick else [500, 2000]:
        r = min(reps, 1000)
        claim = min_discrepancy_detectable(m, ff, fp, num_samples2=m, num_tests=len(directions))
        nulls = misses = 0
        for _ in range(r // 100):
            x, y = rng.standard_normal((100, m, d)), rng.standard_normal((100, m, d))
            nulls += int(sliced_two_sample_rejects(x, y, directions, ff).sum())
            y[..., 5] = ndtri(bump_at_median(ndtr(y[..., 5]), claim))
            misses += int((~sliced_two_sample_rejects(x, y, directions, ff)).sum())
        trials = 100 * (r // 100)
        print(f"{'sliced 2-sample d=16, J=32':<36} {m:>6d} {ff:>6g} {fp:>6g} {claim:>7.4f} {interval(nulls, trials):>28} "
              f"{interval(misses, trials):>28} {'(bump on axis 5)':>28}", flush=True)
    print(f"wall {time.perf_counter() - start:.0f} s, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
