"""False-fail rate of check_exact, end to end, on a correct sampler (Sequential) over many seeds.

Each seed is one real ``check_exact(Sequential(), target, num_samples=m, alpha=alpha, seed=s)``: the sampler
draws its samples through the oracle, the decision is check_exact's own.  A correct sampler must FAIL with
probability <= alpha; the table prints the measured fail rate with its 95% Clopper-Pearson interval
(statsmodels ``proportion_confint``), and the probability of seeing at least that many fails if the rate were
exactly alpha (a one-sided binomial p-value: small means liberal).  Verdicts "inconclusive" (the check's
min_detectable_tv is above its tolerance, or the Monte Carlo budget cannot resolve alpha) are counted apart:
they are not fails, and ``passed`` is False for them.

Default cases: the two tables of issue 10 where the old decisions were 5x to 27x liberal,
(8, 3, concentration 0.3), 2000 samples, and (5, 4), 1000 samples, at alpha 1e-4 and 1e-5; at least 2000 seeds.

    python benchmarks/false_fail_rate.py [--seeds 2000] [--alphas 1e-4 1e-5]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from autospec.samplers import Sequential
from autospec.targets import TabularTarget
from verification import check_exact

CASES = [
    ("random(8, 3, seed=1, concentration=0.3)", lambda: TabularTarget.random(8, 3, seed=1, concentration=0.3), 2000),
    ("random(5, 4, seed=1)", lambda: TabularTarget.random(5, 4, seed=1), 1000),
]
OLD_FAILS = {("random(8, 3, seed=1, concentration=0.3)", 1e-4): (186, 216, 694, 1140)}


def run(seeds: int, alphas: list[float]) -> list[dict]:
    rows = []
    for name, make, m in CASES:
        target = make()
        for alpha in alphas:
            start = time.perf_counter()
            verdicts = {"pass": 0, "fail": 0, "inconclusive": 0}
            failed_seeds, p_min = [], 1.0
            for s in range(seeds):
                result = check_exact(Sequential(), target, num_samples=m, alpha=alpha, seed=s)
                verdicts[result.verdict] += 1
                p_min = min(p_min, result.p_value)
                if result.verdict == "fail":
                    failed_seeds.append(s)
            fails = verdicts["fail"]
            low, high = proportion_confint(fails, seeds, alpha=0.05, method="beta")
            rows.append({
                "case": name, "num_samples": m, "alpha": alpha, "seeds": seeds, **verdicts,
                "rate": fails / seeds, "low": low, "high": high,
                "p_if_nominal": float(stats.binom.sf(fails - 1, seeds, alpha)) if fails else 1.0,
                "failed_seeds": failed_seeds, "smallest_p": p_min, "seconds": time.perf_counter() - start,
                "old_fails": OLD_FAILS.get((name, alpha)),
            })
            print_row(rows[-1], flush=True)
    return rows


def print_row(r: dict, flush: bool = False) -> None:
    print(f"{r['case']:42s} {r['num_samples']:6d} {r['alpha']:7.0e} {r['seeds']:6d} {r['fail']:5d} "
          f"{r['inconclusive']:6d} {r['pass']:6d}  {r['rate']:.2e} [{r['low']:.1e}, {r['high']:.1e}]  "
          f"{r['p_if_nominal']:8.3f}  {r['smallest_p']:.2e} {r['seconds']:7.0f}s", flush=flush)
    if r["failed_seeds"]:
        print(f"    failed seeds: {r['failed_seeds']}", flush=flush)
    if r["old_fails"]:
        print(f"    seeds that failed before the Monte Carlo decisions: {list(r['old_fails'])}", flush=flush)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2000)
    parser.add_argument("--alphas", type=float, nargs="+", default=[1e-4, 1e-5])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"check_exact(Sequential(), target, ...) over seeds 0..{args.seeds - 1}; load average at start "
          f"{os.getloadavg()}")
    print(f"{'case':42s} {'m':>6s} {'alpha':>7s} {'seeds':>6s} {'fail':>5s} {'incon':>6s} {'pass':>6s}  "
          f"{'fail rate [95% CP]':28s} {'P(>=|nom)':>8s}  {'min p':>8s} {'time':>8s}")
    run(args.seeds, args.alphas)
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
