"""Samples used by the anytime-valid sequential check against the fixed-size ``check_exact``.

Same alpha, same TV: ``check_exact(..., alpha, tv=tv)`` draws the budget its planner gives for detecting TV >= tv
with power 0.99; ``check_exact_sequential(..., alpha, tv=tv, false_pass_rate=0.01)`` stops when its e-process
reaches 1/alpha (fail) or its TV confidence sequence drops below tv (pass), or at the cap (inconclusive).

Rows: correct samplers on a few tables and one structured target, then EVERY discrete mutant of the catalogue on
its own instance, with its exact TV (``exact_law``).  A mutant at exact TV < tv may rightly pass the sequential
check (its guarantee covers TV >= tv only); "caught" counts fail verdicts.

Run: python benchmarks/sequential_vs_fixed.py [--alpha 1e-4] [--tv 0.05] [--seeds 10] [--fixed-seeds 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from autospec.samplers import SequenceSpeculative, Sequential, TokenSpeculative
from autospec.targets import CurieWeissTarget, TabularTarget
from verification.calibration import single_thread
from verification.check import check_exact
from verification.exact import exact_law
from verification.mutants import catalogue
from verification.mutation import instance_for
from verification.sequential import check_exact_sequential


def _row(label, target_name, exact_tv, sampler_factory, target, args):
    fixed_runs = [check_exact(sampler_factory(), target, alpha=args.alpha, tv=args.tv, seed=s)
                  for s in range(args.fixed_seeds)]
    fixed_n = fixed_runs[0].num_samples
    fixed = [getattr(r, "verdict", "pass" if r.passed else "fail") for r in fixed_runs]
    cap = args.cap_factor * fixed_n
    runs = [check_exact_sequential(sampler_factory(), target, alpha=args.alpha, tv=args.tv, false_pass_rate=0.01,
                                   max_samples=cap, seed=s) for s in range(args.seeds)]
    used = np.array([r.num_samples for r in runs])
    verdicts = [r.verdict for r in runs]
    counts = {v: verdicts.count(v) for v in ("fail", "pass", "inconclusive")}
    tv_text = "correct" if exact_tv is None else f"{exact_tv:.4f}"
    fixed_text = "/".join(str(fixed.count(v)) for v in ("fail", "pass", "inconclusive"))
    print(f"{label:<34} {target_name:<30} {tv_text:>7} {fixed_n:>8d} {fixed_text:>9} "
          f"{used.mean():>9.0f} {np.median(used):>8.0f} {used.mean() / fixed_n:>6.2f} "
          f"{counts['fail']:>3d}/{counts['pass']:>3d}/{counts['inconclusive']:>3d}", flush=True)
    return {"fixed": fixed_n, "sequential_mean": float(used.mean()), **counts}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--tv", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, default=10, help="sequential runs per row")
    parser.add_argument("--fixed-seeds", type=int, default=3, help="check_exact runs per row")
    parser.add_argument("--cap-factor", type=int, default=4, help="sequential cap = this x the fixed budget")
    parser.add_argument("--only", choices=["correct", "mutants", "all"], default="all")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(f"alpha {args.alpha:g}, tv {args.tv:g}, sequential false_pass_rate 0.01 (check_exact: power 0.99), "
          f"{args.seeds} sequential seeds, {args.fixed_seeds} fixed seeds, cap {args.cap_factor} x fixed budget; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'sampler / mutant':<34} {'target':<30} {'exactTV':>7} {'fixed_n':>8} {'fixed f/p/i':>9} "
          f"{'seq_mean':>9} {'seq_med':>8} {'ratio':>6} {'seq f/p/i':>11}")
    with single_thread():
        if args.only in ("correct", "all"):
            targets = [TabularTarget.random(3, 3, seed=0), TabularTarget.random(4, 3, seed=1, concentration=0.3),
                       TabularTarget.random(6, 2, seed=2), CurieWeissTarget(30, beta=0.9, h=0.1)]
            for target in targets:
                for factory in (Sequential, lambda: TokenSpeculative(3), lambda: SequenceSpeculative(3)):
                    _row(factory().name, target.name, None, factory, target, args)
        if args.only in ("mutants", "all"):
            for mutant in catalogue("discrete"):
                target = instance_for(mutant)
                _row(mutant.name, target.name, exact_law(mutant.make(), target).tv, mutant.make, target, args)
    print("columns: fixed_n = check_exact's planned budget; fixed f/p/i = its fail/pass/inconclusive verdicts over the "
          "fixed seeds; seq_mean / "
          "seq_med = samples drawn by the sequential check; ratio = seq_mean / fixed_n; verdict counts over seeds.")
    print(f"wall {time.perf_counter() - start:.0f} s, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
