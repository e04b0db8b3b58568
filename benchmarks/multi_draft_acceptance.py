"""Acceptance of the two multi-draft rules on the same (target, draft) pairs, computed exactly.

SpecInfer's recursive rejection sampling (rule "specinfer") against SpecTr's k-sequential selection
(rule "spectr", K-SEQ), both with m i.i.d. drafts of block_size tokens, and the single-draft token rule.
Every number is an exact expectation over the sampler's random choices (``exact_law``), not an estimate:
E[target rounds] measures acceptance (fewer is better), E[depth] adds the draft's rounds.  Each sampler is
also proven exact on its instance (TV printed).

    python benchmarks/multi_draft_acceptance.py            # n = 3, q = 2 pairs, m = 2 and 3
"""

import argparse
import os
import time

from autospec.samplers.draft_speculative import DraftSpeculative
from autospec.targets import TabularTarget
from autospec.targets.perturbed import MixtureOracle, TemperedOracle
from verification.exact import exact_law
from verification.speed_error import TargetCounts


def pairs(n: int, q: int):
    for seed in (1, 2, 3):
        target = TabularTarget.random(n=n, q=q, seed=seed, concentration=0.5, zero_fraction=0.2 if seed == 3 else 0.0)
        other = TabularTarget.random(n=n, q=q, seed=seed + 100, zero_fraction=0.3)
        yield target, TemperedOracle(target, 0.5)
        yield target, MixtureOracle(target, other, 0.7)
        yield target, other.oracle()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--q", type=int, default=2)
    parser.add_argument("--drafts", default="2,3", help="numbers of drafts m, comma-separated")
    parser.add_argument("--block-size", type=int, default=2)
    args = parser.parse_args(argv)
    ms = [int(m) for m in args.drafts.split(",")]
    start = time.perf_counter()
    header = f"{'target':26s} {'draft':44s} {'m':>2s} {'single':>8s} {'specinfer':>9s} {'spectr':>8s} {'spectr-specinfer':>16s} {'max TV':>8s}"
    print(f"E[target rounds], exact (block size {args.block_size}, fixed order); single = one draft, token rule")
    print(header)
    wins = {m: [0, 0, 0] for m in ms}  # spectr fewer / equal / more target rounds than specinfer
    for target, draft in pairs(args.n, args.q):
        single_law = exact_law(TargetCounts(DraftSpeculative(draft, args.block_size, rule="token", order="fixed")), target)
        for m in ms:
            laws = {rule: exact_law(TargetCounts(DraftSpeculative(draft, args.block_size, rule=rule, num_drafts=m, order="fixed")), target)
                    for rule in ("specinfer", "spectr")}
            diff = laws["spectr"].expected_rounds - laws["specinfer"].expected_rounds
            wins[m][0 if diff < -1e-12 else 1 if diff <= 1e-12 else 2] += 1
            tv = max(single_law.tv, *(law.tv for law in laws.values()))
            print(f"{target.name:26s} {draft.name[:44]:44s} {m:2d} {single_law.expected_rounds:8.4f} "
                  f"{laws['specinfer'].expected_rounds:9.4f} {laws['spectr'].expected_rounds:8.4f} {diff:16.4f} {tv:8.1e}")
    for m, (fewer, equal, more) in wins.items():
        print(f"m = {m}: spectr needs fewer target rounds than specinfer on {fewer} pairs, equal on {equal}, more on {more}")
    print(f"({time.perf_counter() - start:.0f} s, load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
