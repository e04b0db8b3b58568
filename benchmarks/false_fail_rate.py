"""False-fail rate of check_exact, end to end, on a correct sampler (Sequential) over many seeds.

For every seed s the real sampler draws m samples exactly as ``check_exact(Sequential(), target,
num_samples=m, alpha=alpha, seed=s)`` does (``run_sampler`` with ``Randomness(s)`` on the target's oracle), and the
verdict is check_exact's own decision (``gof.decide`` with the statistics check_exact tests, seed s for the null
draws), vectorised over the seeds.  A fail does not depend on power, so this is check_exact's fail verdict; the
script also runs ``check_exact`` itself on the seeds that failed under the old decisions and on a random subset,
and checks that both paths agree.  A correct sampler must FAIL with probability <= alpha: the table prints the
measured fail rate with its 95% Clopper-Pearson interval (statsmodels ``proportion_confint``) and the probability
of at least that many fails if the rate were exactly alpha (small = liberal).  check_exact's "inconclusive"
(min_detectable_tv above its tolerance, or alpha unresolvable) is counted by the cross-check only: it is not a fail.

Default cases: the two tables of issue 10 where the old decisions were 5x to 27x liberal,
(8, 3, concentration 0.3), 2000 samples, and (5, 4), 1000 samples, at alpha 1e-4 and 1e-5; 2000 seeds.

    python benchmarks/false_fail_rate.py [--seeds 2000] [--alphas 1e-4 1e-5] [--cross-check 20]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from autospec import Randomness
from autospec.samplers import Sequential
from autospec.targets import TabularTarget
from verification import check_exact, gof
from verification.running import run_sampler

CASES = [
    ("random(8, 3, seed=1, concentration=0.3)", lambda: TabularTarget.random(8, 3, seed=1, concentration=0.3), 2000),
    ("random(5, 4, seed=1)", lambda: TabularTarget.random(5, 4, seed=1), 1000),
]
OLD_FAILS = {("random(8, 3, seed=1, concentration=0.3)", 1e-4): (186, 216, 694, 1140)}


def run(seeds: int, alphas: list[float], cross_check: int) -> list[dict]:
    rows = []
    for name, make, m in CASES:
        target = make()
        start = time.perf_counter()
        counts = np.stack([
            torch.bincount(target.cell_index(run_sampler(Sequential(), target.oracle(), m, Randomness(s)).values),
                           minlength=target.probs.numel()).numpy()
            for s in range(seeds)])
        sampling = time.perf_counter() - start
        statistics = target.exact_statistics()
        for alpha in alphas:
            start = time.perf_counter()
            d = gof.decide("auto", counts, target.probs.numpy(), alpha, seed=np.arange(seeds), statistics=statistics)
            fails = int(d.reject.sum())
            failed_seeds = [int(s) for s in np.flatnonzero(d.reject)]
            old = tuple(s for s in OLD_FAILS.get((name, alpha), ()) if s < seeds)
            sample = sorted(set(old) | set(np.random.default_rng(0).choice(seeds, cross_check, replace=False).tolist())
                            | set(failed_seeds))
            verdicts = {}
            for s in sample:
                result = check_exact(Sequential(), target, num_samples=m, alpha=alpha, seed=int(s))
                verdicts[s] = result.verdict
                if (result.verdict == "fail") != bool(d.reject[s]) or result.p_value != d.p_value[s]:
                    raise AssertionError(f"seed {s}: check_exact says {result.verdict} (p {result.p_value}), the "
                                         f"vectorised decision {d.verdict[s]} (p {d.p_value[s]})")
            low, high = proportion_confint(fails, seeds, alpha=0.05, method="beta")
            rows.append({
                "case": name, "num_samples": m, "alpha": alpha, "seeds": seeds, "fail": fails,
                "rate": fails / seeds, "low": low, "high": high,
                "p_if_nominal": float(stats.binom.sf(fails - 1, seeds, alpha)) if fails else 1.0,
                "failed_seeds": failed_seeds, "smallest_p": float(d.p_value.min()),
                "seconds": time.perf_counter() - start + sampling / len(alphas), "old_fails": old,
                "cross_checked": len(sample), "check_exact_verdicts": sorted(set(verdicts.values())),
                "old_seed_verdicts": {s: verdicts[s] for s in old},
            })
            print_row(rows[-1], flush=True)
    return rows


def print_row(r: dict, flush: bool = False) -> None:
    print(f"{r['case']:42s} {r['num_samples']:6d} {r['alpha']:7.0e} {r['seeds']:6d} {r['fail']:5d}  "
          f"{r['rate']:.2e} [{r['low']:.1e}, {r['high']:.1e}]  {r['p_if_nominal']:8.3f}  {r['smallest_p']:.2e} "
          f"{r['seconds']:7.0f}s", flush=flush)
    print(f"    check_exact itself on {r['cross_checked']} of the seeds agrees; its verdicts there: "
          f"{r['check_exact_verdicts']}", flush=flush)
    if r["failed_seeds"]:
        print(f"    failed seeds: {r['failed_seeds']}", flush=flush)
    if r["old_fails"]:
        print(f"    seeds that failed before the Monte Carlo decisions: {r['old_seed_verdicts']}", flush=flush)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2000)
    parser.add_argument("--alphas", type=float, nargs="+", default=[1e-4, 1e-5])
    parser.add_argument("--cross-check", type=int, default=20, help="random seeds also run through check_exact")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"check_exact(Sequential(), target, ...) over seeds 0..{args.seeds - 1}; load average at start "
          f"{os.getloadavg()}")
    print(f"{'case':42s} {'m':>6s} {'alpha':>7s} {'seeds':>6s} {'fail':>5s}  "
          f"{'fail rate [95% CP]':28s} {'P(>=|nom)':>8s}  {'min p':>8s} {'time':>8s}")
    run(args.seeds, args.alphas, args.cross_check)
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
