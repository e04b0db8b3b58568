"""Exact output laws of diffusers' fast solvers on a Gaussian target, per solver and step count K.

Each solver is driven by the exact epsilon model of N(0.7, 0.3^2); its output is affine in the noise, so its law
is an exact Gaussian (verification.peers.diffusers_solvers.solver_law).  Prints TV (exact, from the crossing points
of the two densities), KL(solver || reference) and W2 to the target and to the K-step DDPM chain (the law our
sequential sampler and DDPMScheduler share).  The DDPM row is the method's own check: its distance to the chain is
0 up to float32 scheduler buffers.

    python benchmarks/diffusers_solvers.py [--steps 5 10 20 50]
"""

from __future__ import annotations

import argparse
import os
import time

from verification.peers.diffusers_solvers import solver_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 50])
    args = parser.parse_args()
    import diffusers
    import torch

    start = time.perf_counter()
    rows = solver_table(args.steps)
    print(f"diffusers {diffusers.__version__}, torch {torch.__version__}; target N(0.7, 0.3^2); "
          f"load average {os.getloadavg()[0]:.2f}; {time.perf_counter() - start:.1f} s")
    header = ("solver", "K", "mean", "std", "TV(mu)", "KL(mu)", "W2(mu)", "TV(chain)", "KL(chain)", "W2(chain)")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print(f"| {r['solver']} | {r['K']} | {r['mean']:.4f} | {r['std']:.4f} | {r['tv_target']:.3g} | "
              f"{r['kl_target']:.3g} | {r['w2_target']:.3g} | {r['tv_chain']:.3g} | {r['kl_chain']:.3g} | "
              f"{r['w2_chain']:.3g} |")


if __name__ == "__main__":
    main()
