"""Samples per second of the any-order samplers, and the cost of one exactness proof.

Run: python benchmarks/sampler_speed.py [--samples N] [--repeats R]
Prints the median over repeats; nothing is asserted (speed depends on the machine).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from autospec import Randomness
from autospec.samplers import AdaptiveBlockSize, SequenceSpeculative, Sequential, TokenSpeculative
from autospec.targets import TabularTarget
from verification import exact_law


def samples_per_second(sampler, oracle, num_samples: int, repeats: int) -> tuple[float, float]:
    rates, rounds = [], 0.0
    for repeat in range(repeats):
        start = time.perf_counter()
        out = sampler.sample(oracle, num_samples, Randomness(seed=repeat))
        rates.append(num_samples / (time.perf_counter() - start))
        rounds = float(out.rounds.double().mean())
    return statistics.median(rates), rounds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.samples} samples per run, median of {args.repeats}")
    print(f"{'table':<12} {'sampler':<48} {'samples/s':>12} {'rounds':>8}")
    for n, q in [(8, 2), (6, 4)]:
        target = TabularTarget.random(n, q, seed=0)
        oracle = target.oracle()
        for sampler in [Sequential(), TokenSpeculative(3), SequenceSpeculative(3), SequenceSpeculative(AdaptiveBlockSize())]:
            rate, rounds = samples_per_second(sampler, oracle, args.samples, args.repeats)
            print(f"n={n}, q={q:<6} {sampler.name:<48} {rate:>12,.0f} {rounds:>8.2f}")
    target = TabularTarget.random(3, 3, seed=0)
    start = time.perf_counter()
    law = exact_law(SequenceSpeculative(3), target)
    print(f"exact_law(SequenceSpeculative(3), n=3, q=3): {time.perf_counter() - start:.1f} s over {law.leaves} paths, TV {law.tv:.1e}")


if __name__ == "__main__":
    main()
