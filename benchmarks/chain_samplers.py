"""Tables for the chain and approximate samplers (issue 11): run ``python benchmarks/chain_samplers.py [--quick]``.

1. ParallelDPP rounds vs k on Fourier projection DPPs (k to 255), the OLS exponent with its interval, and M's trade.
2. ParallelGlauber: exact T-step law against sequential Glauber (TV by enumeration) and rounds vs T.
3. Glauber stationarity on six targets; sparsification stationarity and TV(T).
4. Langevin: exact KL to mu against Picard sweeps and epochs (overdamped and underdamped), rounds vs d at fixed
   accuracy, and the pathwise error against sequential Euler with shared noise.
5. Speed: the Cholesky projection-DPP oracle against the general DPP oracle on the same queries (same run, ratio).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autospec import Randomness  # noqa: E402
from autospec.samplers import DomainSparsification, Glauber, ParallelGlauber, ParallelLangevin  # noqa: E402
from autospec.targets import CurieWeissTarget, DPPTarget, GaussianTarget, IsingTarget, MarkovChainTarget, TabularTarget  # noqa: E402
from autospec.targets.projection_dpp import ProjectionDPPOracle  # noqa: E402
from verification import chain_depth  # noqa: E402
from verification.exact import exact_law  # noqa: E402
from verification.markov import as_table_target, kernel_matrix, stationarity, tv_curve  # noqa: E402


def glauber_tables(max_steps: int) -> None:
    print("\nParallelGlauber T-step law vs sequential Glauber (exact enumeration, random table n=3 q=2, start 010)")
    print(f"{'T':>3} {'lookahead':>9} {'TV':>10} {'E rounds seq':>12} {'E rounds par':>12} {'seconds':>8}")
    table = as_table_target(TabularTarget.random(3, 2, seed=2))
    start = torch.tensor([0, 1, 0])
    for T in range(1, max_steps + 1):
        t0 = time.perf_counter()
        seq = exact_law(Glauber(T, start), table)
        for L in (1, 2, 3):
            par = exact_law(ParallelGlauber(T, start, lookahead=L), table)
            tv = 0.5 * float((seq.probs - par.probs).abs().sum())
            print(f"{T:>3} {L:>9} {tv:>10.2e} {seq.expected_rounds:>12.3f} {par.expected_rounds:>12.3f} {time.perf_counter() - t0:>8.1f}")
    print("\nGlauber stationarity, TV(mu K, mu) by enumerating K from every state:")
    targets = {"tabular n=3 q=3": TabularTarget.random(3, 3, seed=1),
               "tabular n=4 zeros": TabularTarget.random(4, 2, seed=2, zero_fraction=0.3),
               "Ising SK n=4": IsingTarget.sk(4, beta=0.9, seed=0), "Ising grid 2x2": IsingTarget.grid(2, 2, beta=0.6, h=0.2),
               "Curie-Weiss n=5": CurieWeissTarget(5, beta=1.2, h=0.1), "Markov chain n=4": MarkovChainTarget.random(4, q=2, seed=4)}
    for name, target in targets.items():
        kernel = kernel_matrix(lambda x: Glauber(1, x), target)
        print(f"  {name:20s} TV = {stationarity(kernel, target).tv:.2e}   TV(T) from the first state: "
              + ", ".join(f"T={T}: {tv:.3g}" for T, tv in tv_curve(kernel, target, kernel.cells[kernel.rows[0]], [1, 8, 64])))


def sparsification_table() -> None:
    print("\nDomain sparsification (projection DPP n=5, k=2, t=3), exact stationarity and TV(T) from the first state:")
    target = DPPTarget.random(5, 2, "projection", seed=3)
    for slack in (1.0, 1.5):
        kernel = kernel_matrix(lambda x, slack=slack: DomainSparsification(1, x, 3, slack=slack), target)
        curve = tv_curve(kernel, target, kernel.cells[kernel.rows[0]], [0, 1, 2, 4, 8, 16, 32, 64])
        print(f"  slack {slack}: TV(mu K, mu) = {stationarity(kernel, target).tv:.2e}; TV(T): "
              + ", ".join(f"{T}: {tv:.3g}" for T, tv in curve))


def langevin_tables(quick: bool) -> None:
    for kind in ("overdamped", "underdamped"):
        print("\n" + chain_depth.format_kl(chain_depth.langevin_kl_table(picards=(1, 2, 4, 8), epochs=(1, 2, 4, 8, 16, 32), kind=kind)))
    dims = (2, 4, 8) if quick else (2, 4, 8, 16, 32)
    print("\n" + chain_depth.format_rows("Langevin (overdamped, h = 0.05, M = 8) rounds to exact KL <= 0.05",
                                         chain_depth.langevin_rounds_vs_dim(dims)))
    print("\nPathwise error against sequential Euler with the same noise (d = 4, 2000 paths, 4 epochs of M = 8):")
    target = GaussianTarget.random(4, seed=4)
    reference = ParallelLangevin(0.05, window=8, epochs=4, picard=8, start=[2.0] * 4).sample(target, 2000, Randomness(5)).values
    for P in (1, 2, 3, 4, 6, 8):
        values = ParallelLangevin(0.05, window=8, epochs=4, picard=P, start=[2.0] * 4).sample(target, 2000, Randomness(5)).values
        print(f"  P = {P}: mean |x_P - x_Euler| = {float((values - reference).norm(dim=1).mean()):.3e}")


def oracle_speed(k: int = 129) -> None:
    target = DPPTarget.fourier_projection(2 * k + 2, k)
    g = torch.Generator().manual_seed(0)
    base = torch.full((2 * k + 2,), -1)
    base[torch.randperm(2 * k + 2, generator=g)[: k // 2]] = 1
    rows = base.repeat(64, 1)
    rows[torch.arange(64), torch.randint(0, 2 * k + 2, (64,), generator=g)] = 1
    timings = {}
    for name, oracle in (("general DPPOracle", target.oracle()), ("ProjectionDPPOracle", ProjectionDPPOracle(target))):
        start = time.perf_counter()
        for _ in range(3):
            answer = oracle.answer(rows)
        timings[name] = (time.perf_counter() - start) / 3
        timings[name + " answer"] = answer.marginals
    diff = float((timings["general DPPOracle answer"] - timings["ProjectionDPPOracle answer"]).abs().max())
    print(f"\nOracle speed, 64 prefix queries at k = {k} (|S| = {k // 2}), load {os.getloadavg()}: general "
          f"{timings['general DPPOracle']:.3f} s, Cholesky {timings['ProjectionDPPOracle']:.3f} s, "
          f"ratio {timings['general DPPOracle'] / timings['ProjectionDPPOracle']:.1f}x; max answer difference {diff:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load average at start {os.getloadavg()}")
    ks = (9, 17, 33, 65) if args.quick else (9, 17, 33, 65, 129, 255)
    print(chain_depth.format_dpp(chain_depth.dpp_rounds_vs_k(ks, samples=4 if args.quick else 8, trials=4)))
    print(chain_depth.format_rows("ParallelDPP: M trials trade queries for rounds",
                                  chain_depth.dpp_trials_tradeoff(33 if args.quick else 129)))
    print(chain_depth.format_rows("\nParallelGlauber vs sequential Glauber rounds (Curie-Weiss n = 64, beta = 0.5, L = 8)",
                                  chain_depth.glauber_rounds_vs_steps((64, 256) if args.quick else (64, 256, 1024, 4096))))
    glauber_tables(3 if args.quick else 4)
    sparsification_table()
    langevin_tables(args.quick)
    oracle_speed(33 if args.quick else 129)
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
