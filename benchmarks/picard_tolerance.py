"""Picard iteration (ParaDiGMS stopping rule): error against the sequential chain on shared noise, versus tol.

The same noise drives DiffusionSequential and Picard, so the difference of their outputs is Picard's own
error, path by path.  Target: a well-separated two-mode Gaussian mixture in 2-d; a path "ends in the wrong
mode" when Picard's output and the sequential output fall on different sides of the hyperplane bisecting the
two means.  Rounds are the mean per-sample rounds (the sequential chain takes K + 1).  tol is relative to the
noise of each step (ParaDiGMS: squared change per dimension over the step's noise variance, against tol^2),
so the same tol means the same thing on a uniform and on a geometric grid.

    python benchmarks/picard_tolerance.py                  # K = 64, t_max = 20, W = 16, 2000 paths
    python benchmarks/picard_tolerance.py --paths 500
"""

import argparse
import os
import time

import torch

from autospec import Randomness
from autospec.diffusion import time_grid
from autospec.samplers import DiffusionSequential, Picard
from autospec.targets import GaussianMixtureTarget

TOLERANCES = [3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 1e-4, 1e-6, 0.0]


def mixture() -> GaussianMixtureTarget:
    return GaussianMixtureTarget([0.4, 0.6], [[-3.0, -2.0], [3.0, 2.0]],
                                 [[[0.5, 0.2], [0.2, 0.5]], [[0.3, 0.0], [0.0, 0.6]]])


def picard_errors(target, times, noise, tolerances, window: int = 16, picard=Picard) -> list[dict]:
    """One row per tol: rounds, max / mean pathwise error and wrong-mode fraction against the sequential chain."""
    reference = DiffusionSequential(times).sample_with_noise(target.denoiser(), noise)
    means = target.means
    normal = means[1] - means[0]
    middle = (means[0] + means[1]) / 2
    side = ((reference.values - middle) @ normal) > 0
    rows = []
    for tol in tolerances:
        out = picard(times, window=window, tol=tol).sample_with_noise(target.denoiser(), noise)
        error = (out.values - reference.values).norm(dim=-1)
        wrong = (((out.values - middle) @ normal) > 0) != side
        rows.append({"tol": tol, "rounds": float(out.rounds.double().mean()), "max_error": float(error.max()),
                     "mean_error": float(error.mean()), "wrong_mode": float(wrong.double().mean()),
                     "sequential_rounds": float(reference.rounds.double().mean())})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--t-max", type=float, default=20.0)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--paths", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    target = mixture()
    noise = Randomness(args.seed).normal((args.paths, args.steps, 2))
    start = time.perf_counter()
    print(f"Picard (W = {args.window}) vs sequential on shared noise: {args.paths} paths, K = {args.steps}, "
          f"t_max = {args.t_max:g}, two-mode mixture in 2-d; error = |Picard output - sequential output|")
    for kind in ("uniform", "geometric"):
        times = time_grid(args.steps, args.t_max, kind)
        rows = picard_errors(target, times, noise, TOLERANCES, args.window)
        print(f"\n{kind} grid (sequential: {rows[0]['sequential_rounds']:.0f} rounds)")
        print(f"{'tol':>8s} {'rounds':>8s} {'max error':>11s} {'mean error':>11s} {'wrong mode':>11s}")
        for r in rows:
            print(f"{r['tol']:8.0e} {r['rounds']:8.2f} {r['max_error']:11.3e} {r['mean_error']:11.3e} {r['wrong_mode']:11.2%}")
    print(f"\n({time.perf_counter() - start:.0f} s, load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
