"""Samples per second per diffusion sampler at d = 16, K = 256 (CPU, float64, one thread).

    python benchmarks/diffusion_speed.py [num_samples]
"""

import sys
import time

import torch

from autospec import Randomness
from autospec.diffusion import time_grid
from autospec.samplers import ASD, DiffusionSequential, Picard, SequenceSpeculativeDiffusion
from autospec.targets import GaussianTarget, ProductMixtureTarget


def speed_table(num_samples=2000, printer=print):
    times = time_grid(256, t_max=20.0)
    targets = {"gaussian d=16": GaussianTarget.random(16, seed=0), "product mixture d=16": ProductMixtureTarget.bimodal(16)}
    samplers = {
        "sequential": DiffusionSequential(times),
        "asd L=8": ASD(times, lookahead=8),
        "sequence L=8": SequenceSpeculativeDiffusion(times, lookahead=8),
        "picard W=32 tol=1e-3": Picard(times, window=32, tol=1e-3),
    }
    printer(f"{'target':>22s} {'sampler':>22s} {'samples/s':>10s} {'rounds':>8s} {'queries':>8s}")
    rows = []
    for tname, target in targets.items():
        for sname, sampler in samplers.items():
            start = time.perf_counter()
            out = sampler.sample(target.denoiser(), num_samples, Randomness(0))
            elapsed = time.perf_counter() - start
            rows.append((tname, sname, num_samples / elapsed, float(out.rounds.double().mean()), float(out.queries.double().mean())))
            printer(f"{tname:>22s} {sname:>22s} {rows[-1][2]:>10.0f} {rows[-1][3]:>8.1f} {rows[-1][4]:>8.1f}")
    return rows


if __name__ == "__main__":
    torch.set_num_threads(1)
    speed_table(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
