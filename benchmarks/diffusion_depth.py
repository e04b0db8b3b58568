"""Depth of the diffusion samplers: rounds versus steps K, fitted log-log exponents, and Picard's
rounds and distance from the chain law versus its tolerance.

    python benchmarks/diffusion_depth.py [--quick]

Rounds are mean per-sample denoiser rounds (the counting wrapper's), on a 2-d well-separated
Gaussian mixture with t_max = 10 and a uniform grid; exponents are OLS slopes of log(rounds) on
log(K) (statsmodels), with 95% confidence intervals.
"""

from __future__ import annotations

import argparse

import numpy as np
import statsmodels.api as sm
import torch

from autospec import Randomness
from autospec.diffusion import time_grid
from autospec.samplers import ASD, AdaptiveBlockSize, DiffusionSequential, Picard, SequenceSpeculativeDiffusion
from autospec.targets import GaussianMixtureTarget, ProductMixtureTarget
from verification.two_sample import mmd_test

T_MAX = 10.0


def _target():
    return GaussianMixtureTarget([0.4, 0.6], [[-3.0, -2.0], [3.0, 2.0]], [[[0.5, 0.2], [0.2, 0.5]], [[0.3, 0.0], [0.0, 0.6]]])


def _samplers(K):
    adaptive = lambda: AdaptiveBlockSize(start=4, maximum=K)  # noqa: E731
    return {
        "sequential": DiffusionSequential(time_grid(K, T_MAX)),
        "asd L=8": ASD(time_grid(K, T_MAX), lookahead=8),
        "asd adaptive": ASD(time_grid(K, T_MAX), lookahead=adaptive()),
        "sequence L=8": SequenceSpeculativeDiffusion(time_grid(K, T_MAX), lookahead=8),
        "sequence adaptive": SequenceSpeculativeDiffusion(time_grid(K, T_MAX), lookahead=adaptive()),
        "picard W=32 tol=1e-3": Picard(time_grid(K, T_MAX), window=32, tol=1e-3),
    }


def fit_exponent(ks, rounds):
    X = sm.add_constant(np.log(np.asarray(ks, dtype=float)))
    fit = sm.OLS(np.log(np.asarray(rounds, dtype=float)), X).fit()
    low, high = fit.conf_int(0.05)[1]
    return float(fit.params[1]), float(low), float(high)


def depth_table(ks, num_samples, printer=print):
    target = _target()
    names = list(_samplers(16))
    rounds = {name: [] for name in names}
    printer(f"{'K':>6s} " + " ".join(f"{n:>20s}" for n in names))
    for K in ks:
        row = []
        for name, sampler in _samplers(K).items():
            out = sampler.sample(target.denoiser(), num_samples, Randomness(K))
            r = float(out.rounds.double().mean())
            rounds[name].append(r)
            row.append(r)
        printer(f"{K:>6d} " + " ".join(f"{r:>20.2f}" for r in row))
    printer("fitted exponent b in rounds ~ K^b (OLS on log-log, 95% CI):")
    fits = {}
    for name in names:
        b, lo, hi = fit_exponent(ks, rounds[name])
        fits[name] = (b, lo, hi)
        printer(f"  {name:>22s}: b = {b:.3f}  [{lo:.3f}, {hi:.3f}]")
    return rounds, fits


def picard_table(tols, K=128, num_samples=2000, printer=print):
    """Picard on a 1-d bimodal target: rounds, pathwise error vs the sequential chain on the same noise,
    KS and binned-TV distance to the exact (grid) chain law, MMD^2 vs independent sequential samples."""
    target = ProductMixtureTarget.bimodal(1, separation=2.0, variance=0.25)
    times = time_grid(K, T_MAX)
    law = target.chain_law(times)
    noise = Randomness(0).normal((num_samples, K, 1))
    seq = DiffusionSequential(times).sample_with_noise(target.denoiser(), noise)
    independent = DiffusionSequential(times).sample(target.denoiser(), num_samples, Randomness(99))
    edges = np.linspace(-3.0, 3.0, 61)
    exact_bins = np.diff(law.cdf(edges, 0))
    printer(f"Picard, K = {K}, window 32, {num_samples} samples (1-d bimodal, exact grid law)")
    printer(f"{'tol':>8s} {'rounds':>8s} {'path err':>10s} {'KS vs exact':>12s} {'binTV vs exact':>15s} {'MMD^2 vs seq':>13s}")
    rows = []
    for tol in tols:
        out = Picard(times, window=32, tol=tol).sample_with_noise(target.denoiser(), noise)
        x = out.values[:, 0].numpy()
        xs = np.sort(x)
        F = law.cdf(xs, 0)
        n = len(xs)
        ks = float(max(np.max(np.arange(1, n + 1) / n - F), np.max(F - np.arange(n) / n)))
        counts = np.histogram(x, edges)[0] / n
        tv = 0.5 * float(np.abs(counts - exact_bins).sum())
        mmd = mmd_test(out.values, independent.values, num_permutations=1).statistic
        path = float((out.values - seq.values).abs().max())
        rows.append((tol, float(out.rounds.double().mean()), path, ks, tv, mmd))
        printer(f"{tol:>8.0e} {rows[-1][1]:>8.2f} {path:>10.2e} {ks:>12.4f} {tv:>15.4f} {mmd:>13.2e}")
    # reference: the sequential chain's own sampling noise at this size
    xs = np.sort(seq.values[:, 0].numpy())
    F = law.cdf(xs, 0)
    ks = float(max(np.max(np.arange(1, n + 1) / n - F), np.max(F - np.arange(n) / n)))
    tv = 0.5 * float(np.abs(np.histogram(xs, edges)[0] / n - exact_bins).sum())
    printer(f"{'seq':>8s} {K + 1:>8d} {0.0:>10.2e} {ks:>12.4f} {tv:>15.4f}   (sampling-noise floor)")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ks = [16, 32, 64, 128, 256] if args.quick else [16, 32, 64, 128, 256, 512, 1024]
    depth_table(ks, num_samples=100 if args.quick else 200)
    print()
    picard_table([1e-1, 1e-2, 1e-3, 1e-5, 1e-8, 0.0], num_samples=500 if args.quick else 2000)
