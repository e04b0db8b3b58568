"""Power panel: samples each test needs for power 0.9 at alpha 1e-3, support sizes 3^4 .. 3^8.

Perturbations of a random table mu (TabularTarget.random(n, 3, seed=0)), all at
TV = 0.05 from mu:
  mixture-uniform   (1 - e) mu + e uniform
  point-mass        (1 - e) mu + e delta_x, x a random cell
  worst-cell        (1 - e) mu + e delta_x, x the most probable cell (hardest point mass)
  least-favourable  mu (1 +- 2 eps) on two halves (the chi2-minimising direction)

What is approximate and what is checked.  The per-perturbation columns are
APPROXIMATIONS, not claims: verification.power.power_at (a critical value
fitted to a small simulation of the test's null at each m, then a normal law
for the statistic under the alternative with its exact mean and variance;
Bonferroni lower bounds for the marginal family and for auto).  They compare
the tests with one another; nothing the harness prints rests on them.  The
last column of ``main`` is a CHECKED claim: verification.power.samples_for_tv
for auto (the real Monte Carlo decision, every direction of
verification.directions at TV 0.05 rejected with power >= 0.9 as a lower
confidence bound over 2000 samples per direction), the kind of number
check_exact prints; benchmarks/power_soundness.py measures such claims against
the real decision.  Run: python benchmarks/power_panel.py
"""

from __future__ import annotations

import itertools
import math
import sys

import numpy as np

from verification import power

TESTS = ("pearson", "likelihood-ratio", "corrected", "marginals", "auto")
PERTURBATIONS = ("mixture-uniform", "point-mass", "worst-cell", "least-favourable")


def perturb(p0: np.ndarray, kind: str, tv: float, seed: int = 0) -> np.ndarray:
    k = len(p0)
    if kind == "least-favourable":
        return power.least_favourable(p0, tv)
    if kind == "mixture-uniform":
        rho = np.full(k, 1.0 / k)
    else:
        x = int(np.argmax(p0)) if kind == "worst-cell" else int(np.random.default_rng(seed).integers(k))
        rho = np.zeros(k)
        rho[x] = 1.0
    e = tv / (0.5 * np.abs(rho - p0).sum())
    return (1 - e) * p0 + e * rho


def marginal_laws(p0, p1, n: int, q: int):
    t0, t1 = p0.reshape((q,) * n), p1.reshape((q,) * n)
    laws = []
    for i in range(n):
        axes = tuple(a for a in range(n) if a != i)
        laws.append((t0.sum(axes), t1.sum(axes)))
    for i, j in itertools.combinations(range(n), 2):
        axes = tuple(a for a in range(n) if a not in (i, j))
        laws.append((t0.sum(axes).reshape(-1), t1.sum(axes).reshape(-1)))
    return laws


def samples_needed(test, p0, p1, laws, alpha=1e-3, target_power=0.9) -> int:
    ok = lambda m: power.power_at(test, p0, p1, m, alpha, laws) >= target_power  # noqa: E731
    low, high = 2, 4
    while not ok(high):
        low, high = high, high * 2
        if high > 2**34:
            return -1
    while high - low > max(1, low // 100):
        mid = max(low + 1, min(high - 1, int(math.sqrt(low * high))))
        low, high = (low, mid) if ok(mid) else (mid, high)
    return high


def panel(sizes=range(4, 9), tv: float = 0.05, alpha: float = 1e-3, target_power: float = 0.9):
    rows = []
    for n in sizes:
        from autospec.targets import TabularTarget

        p0 = TabularTarget.random(n=n, q=3, seed=0).probs.reshape(-1).numpy()
        for kind in PERTURBATIONS:
            p1 = perturb(p0, kind, tv)
            laws = marginal_laws(p0, p1, n, 3)
            needed = {t: samples_needed(t, p0, p1, laws, alpha, target_power) for t in TESTS}
            best = min(v for t, v in needed.items() if t != "auto" and v > 0)
            rows.append({"cells": 3**n, "perturbation": kind, **needed, "best_single": best,
                         "auto_over_best": needed["auto"] / best})
    return rows


def checked_samples(n: int, tv: float = 0.05, alpha: float = 1e-3, target_power: float = 0.9) -> int:
    """The checked claim: samples auto needs to detect TV ``tv`` in every direction of the family."""
    from autospec.targets import TabularTarget

    p0 = TabularTarget.random(n=n, q=3, seed=0).probs.reshape(-1).numpy()
    return power.samples_for_tv(tv, "auto", alpha, target_power, probs=p0)


def main(argv=None):
    sizes = range(4, 9) if not argv else range(4, int(argv[0]) + 1)
    rows = panel(sizes)
    header = (f"{'cells':>6} {'perturbation':>17} " + " ".join(f"{t:>16}" for t in TESTS) + f" {'auto/best':>9}"
              + f" {'auto checked (family)':>22}")
    print("samples for power 0.9 at alpha 1e-3, every perturbation at TV 0.05\n"
          "columns pearson .. auto/best: APPROXIMATIONS (power_at: fitted null critical value, normal law with exact "
          "moments; not claims)\nlast column: CHECKED claim (power.samples_for_tv, auto, real Monte Carlo decision, "
          "every direction of the family at TV 0.05, power >= 0.9 as a lower confidence bound)\n" + header)
    checked = {}
    for r in rows:
        n = round(math.log(r["cells"], 3))
        if n not in checked:
            checked[n] = checked_samples(n)
        print(f"{r['cells']:>6} {r['perturbation']:>17} " + " ".join(f"{r[t]:>16}" for t in TESTS)
              + f" {r['auto_over_best']:>9.2f} {checked[n]:>22}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
