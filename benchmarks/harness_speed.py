"""The harness at speed: each new path measured beside the previous one, in the same run.

1. exact_law, leaves per second: the depth-first enumerator (one path per run,
   ``exact_law(..., batched=False)``, the previous implementation) against the
   batched one (one path per sample), on the n = 4, q = 3 grid (every any-order
   sampler, every block size 1..4, zero cells) and on DraftSpeculative
   multi-draft (3 drafts, n = 3, q = 2).  The old path runs on the first
   ``--old-leaves`` leaves of each tree (its per-leaf cost does not depend on
   where it is in the tree); the new one on the whole tree.
2. Samples per second at n in {8, 64, 1024, 4096} per sampler and family, three
   paths in one run: "dense" (the oracle answers every position, [rows, n, q],
   and the speculative samplers write every prefix out, [rows, n]: what every
   round cost when issue 12 was filed), "positional" (positions asked, [rows, k,
   q], prefixes still written out: the first speed-up) and "prefix" (the
   speculative samplers' prefixes given as x plus drafted deltas, PrefixRows,
   answered by the structured oracles without any [rows, n] row; Sequential
   asks through an oracle session, incremental state updated by each pin: now).
   The ratio printed is now over dense (issue time).
3. The depth sweep's wall clock (``verification.depth.run_depth``, a reduced
   grid) with dense and with positional oracles.

Run: python benchmarks/harness_speed.py [--quick]
Prints os.getloadavg() before every section; nothing is asserted (speed depends on the machine).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from autospec import Randomness
from autospec.oracles import ConditionalOracle
from autospec.samplers import DraftSpeculative, SequenceSpeculative, Sequential, SmoothedBlockSize, TokenSpeculative
from autospec.targets import CurieWeissTarget, DPPTarget, HMMTarget, MarkovChainTarget, TabularTarget, XorTarget
from verification import exact_law


class DenseOnly:
    """A target's oracle reduced to the dense contract ``marginals(partial) -> [B, n, q]`` (the previous cost)."""

    def __init__(self, oracle):
        self.inner, self.n, self.q = oracle, oracle.n, oracle.q
        self.name = f"dense[{getattr(oracle, 'name', 'oracle')}]"

    def marginals(self, partial, sample_ids=None):
        return self.inner.query(partial).marginals


class PositionalOnly(ConditionalOracle):
    """A structured oracle without its prefix answer and its session: positions are answered, prefixes are
    written out, and every Sequential round reads the whole row again."""

    def __init__(self, oracle):
        self.inner, self.n, self.q = oracle, oracle.n, oracle.q
        self.name = f"positional[{getattr(oracle, 'name', 'oracle')}]"

    def answer(self, partial):
        return self.inner.answer(partial)

    def answer_at(self, partial, positions):
        return self.inner.answer_at(partial, positions)


class DenseTarget:
    """A target whose oracle() is DenseOnly (for the depth sweep)."""

    def __init__(self, target):
        self.target, self.n, self.q = target, target.n, target.q

    def oracle(self, device="cpu"):
        return DenseOnly(self.target.oracle(device))


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def grid_samplers(n: int):
    yield Sequential()
    for k in range(1, n + 1):
        yield TokenSpeculative(k)
        yield SequenceSpeculative(k)


def leaves_rate(sampler, target, old_leaves: int) -> tuple[float, float, int, int, float]:
    """(old leaves/s, new leaves/s, leaves of the whole tree, old leaves run, max |law difference| on the old prefix)"""
    start = time.perf_counter()
    old = exact_law(sampler, target, batched=False, max_leaves=old_leaves)
    old_time = time.perf_counter() - start
    start = time.perf_counter()
    new = exact_law(sampler, target)
    new_time = time.perf_counter() - start
    assert new.unexplored_mass < 1e-12, sampler
    return old.leaves / old_time, new.leaves / new_time, new.leaves, old.leaves, new_time


def section_exact(old_leaves: int) -> None:
    print(f"\n== exact_law: leaves per second, depth-first (old) vs batched (new) ==  [{load()}]")
    print(f"{'sampler':<46} {'leaves':>8} {'old leaves/s':>13} {'new leaves/s':>13} {'ratio':>7} {'new s':>7}")
    target = TabularTarget.random(4, 3, seed=5, zero_fraction=0.3)
    total_leaves, total_new, total_old_time, total_old_leaves = 0, 0.0, 0.0, 0
    for sampler in grid_samplers(4):
        old_rate, new_rate, leaves, ran, new_time = leaves_rate(sampler, target, old_leaves)
        total_leaves, total_new = total_leaves + leaves, total_new + new_time
        total_old_time, total_old_leaves = total_old_time + ran / old_rate, total_old_leaves + ran
        print(f"{sampler.name:<46} {leaves:>8} {old_rate:>13,.0f} {new_rate:>13,.0f} {new_rate / old_rate:>6.1f}x {new_time:>7.1f}")
    old_overall, new_overall = total_old_leaves / total_old_time, total_leaves / total_new
    print(f"{'n=4, q=3 grid (all 9 samplers)':<46} {total_leaves:>8} {old_overall:>13,.0f} {new_overall:>13,.0f} "
          f"{new_overall / old_overall:>6.1f}x {total_new:>7.1f}")
    print(f"  full grid: {total_new:.1f} s batched; the depth-first path at its rate would take "
          f"{total_leaves / old_overall:.0f} s")
    small = TabularTarget.random(3, 2, seed=1, zero_fraction=0.2)
    draft = TabularTarget.random(3, 2, seed=2)
    multi = DraftSpeculative(draft, block_size=2, rule="multi", num_drafts=3)
    old_rate, new_rate, leaves, ran, new_time = leaves_rate(multi, small, old_leaves)
    print(f"{'DraftSpeculative multi, 3 drafts, n=3, q=2':<46} {leaves:>8} {old_rate:>13,.0f} {new_rate:>13,.0f} "
          f"{new_rate / old_rate:>6.1f}x {new_time:>7.1f}")


FAMILIES = {
    "curie-weiss": lambda n: CurieWeissTarget(n, beta=1.0),
    "markov": lambda n: MarkovChainTarget.sticky(n, q=2, stay=0.9),
    "xor": lambda n: XorTarget.random(n, density=0.3, arity=3, seed=0),
    "dpp": lambda n: DPPTarget.fourier_projection(n, min(9, n - 1 if (n - 1) % 2 else n - 2)),
    "hmm": lambda n: HMMTarget.sticky(n),
}


def samplers_at(n: int):
    return [Sequential(), TokenSpeculative(SmoothedBlockSize()), SequenceSpeculative(SmoothedBlockSize())]


def rate(sampler, oracle, num: int) -> tuple[float, float]:
    """(samples per CPU second of this process, mean rounds).  CPU time, not wall clock: on a shared machine
    another job's load stretches the wall clock of both paths unevenly; one torch thread, so CPU time is the
    work done (the wall-clock rate is printed by --wall)."""
    clock = time.perf_counter if WALL else time.process_time
    start = clock()
    out = sampler.sample(oracle, num, Randomness(seed=0))
    return num / (clock() - start), float(out.rounds.double().mean())


WALL = False
DENSE_CAP = None  # --dense-samples: a smaller batch for the dense path only (N printed as now/dense)


SAMPLES = {8: 512, 64: 128, 1024: 16, 4096: 4}  # one batch per (family, n, sampler), the same for every path
DENSE_MAX: dict = {}  # n -> fewer samples for the dense path (empty: every path runs the same batch, a fair ratio)


def section_samples(ns, families, scale: float, samples: int | None = None, kinds=None) -> None:
    print(f"\n== samples per {'wall-clock' if WALL else 'CPU'} second: dense (issue time) vs positional vs now (sessions, "
          f"prefix rows) ==  [{load()}]")
    print(f"{'family':<12} {'n':>5} {'sampler':<52} {'N':>7} {'dense/s':>9} {'posit./s':>9} {'now/s':>9} {'ratio':>7} {'rounds':>7}")
    for family in families:
        for n in ns:
            target = FAMILIES[family](n)
            for sampler in samplers_at(n):
                if kinds and type(sampler).__name__ not in kinds:
                    continue
                num = samples or max(2, int(SAMPLES.get(n, 8) * scale))
                new, rounds = rate(sampler, target.oracle(), num)
                mid, _ = rate(sampler, PositionalOnly(target.oracle()), num)
                dense_num = min(num, DENSE_MAX.get(n, num), DENSE_CAP or num)
                old, _ = rate(sampler, DenseOnly(target.oracle()), dense_num)
                label = f"{num}" if dense_num == num else f"{num}/{dense_num}"
                print(f"{family:<12} {n:>5} {sampler.name:<52} {label:>7} {old:>9.2f} {mid:>9.2f} {new:>9.2f} {new / old:>6.1f}x {rounds:>7.1f}",
                      flush=True)
    print(f"  [{load()}]")


def section_depth(quick: bool) -> None:
    from verification import depth

    print(f"\n== depth sweep wall clock (run_depth, reduced grid), dense vs positional ==  [{load()}]")
    ns = [64, 256, 1024] if quick else [64, 256, 1024, 4096]
    config = depth.DepthConfig(ns=ns, families=["markov", "curie-weiss"], fixed=[4], adaptive=True,
                               adaptive_policies=["smoothed"], samples={n: 8 for n in ns})
    original = depth.make_target
    times = {}
    for label, wrap in (("dense (old)", DenseTarget), ("positional (new)", lambda t: t)):
        depth.make_target = lambda family, n, wrap=wrap: wrap(original(family, n))
        try:
            start = time.perf_counter()
            depth.run_depth(config, log=lambda *a: None)
            times[label] = time.perf_counter() - start
        finally:
            depth.make_target = original
        print(f"  {label:<18} {times[label]:8.1f} s")
    print(f"  ratio {times['dense (old)'] / times['positional (new)']:.1f}x  [{load()}]")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer leaves, n up to 1024, smaller depth grid")
    parser.add_argument("--old-leaves", type=int, default=None, help="leaves of each tree the depth-first path runs")
    parser.add_argument("--sections", default="exact,samples,depth")
    parser.add_argument("--samples", type=int, default=None, help="batch size of the samples section (default per n, same for every path)")
    parser.add_argument("--samplers", default=None, help="class names to run in the samples section, e.g. Sequential")
    parser.add_argument("--ns", default=None, help="n grid of the samples section (default 8,64,1024,4096)")
    parser.add_argument("--families", default=None, help=f"families of the samples section (default {','.join(FAMILIES)})")
    parser.add_argument("--wall", action="store_true", help="samples per wall-clock second (default: per CPU second)")
    parser.add_argument("--dense-samples", type=int, default=None,
                        help="batch of the dense path only (its per-sample cost is the same at any batch: for the hmm, "
                             "whose dense Sequential takes minutes per sample)")
    args = parser.parse_args(argv)
    global WALL, DENSE_CAP
    WALL, DENSE_CAP = args.wall, args.dense_samples
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, {os.cpu_count()} cores, {load()}")
    sections = args.sections.split(",")
    if "exact" in sections:
        section_exact(args.old_leaves or (300 if args.quick else 1500))
    if "samples" in sections:
        ns = [int(v) for v in args.ns.split(",")] if args.ns else ([8, 64, 1024] if args.quick else [8, 64, 1024, 4096])
        section_samples(ns, args.families.split(",") if args.families else list(FAMILIES), scale=0.5 if args.quick else 1.0,
                        samples=args.samples, kinds=args.samplers.split(",") if args.samplers else None)
    if "depth" in sections:
        section_depth(args.quick)


if __name__ == "__main__":
    main()
