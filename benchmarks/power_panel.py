"""Power panel: samples each test needs for power 0.9 at alpha 1e-3, support sizes 3^4 .. 3^8.

Perturbations of a random table mu (TabularTarget.random(n, 3, seed=0)), all at
TV = 0.05 from mu:
  mixture-uniform   (1 - e) mu + e uniform
  point-mass        (1 - e) mu + e delta_x, x a random cell
  worst-cell        (1 - e) mu + e delta_x, x the most probable cell (hardest point mass)
  least-favourable  mu (1 +- 2 eps) on two halves (the chi2-minimising direction)

What is approximate and what is checked.  The per-perturbation columns are
APPROXIMATIONS, not claims: verification.power.power_at (the critical value
of a gamma law with the null's three cumulants, a normal law for the
statistic under the alternative with its mean and variance, exact where known;
Bonferroni lower bounds for the marginal family and for auto), and each is
the smallest m BEYOND WHICH that power stays >= 0.9 (samples_scan): the
pooled tests' power is not monotone in m (the pooled cell releases cells as m
grows), so the first m reaching 0.9 is no sample size to recommend; the
panel prints the first-crossing ratio too.  Known weakness: against mass
moved into light cells the corrected statistic is a few huge terms (skew ~2)
and the normal law understates its power: 81 cells, mixture-uniform, the real
decisions (measured_power, 3 seeds x 500) reach 0.9 at m ~ 1130 (corrected)
and ~ 1750 (auto, which drops the corrected part once m >= 5 cells), a ratio
~ 1.55, where this panel says corrected 2092, auto/best 1.02.  They compare
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


GRID_STEPS = 8  # grid points per doubling of m (9% apart)
SETTLED = 100  # the scan stops once the power is within (1 - target) / SETTLED of 1, ...
SPAN = 2.0  # ... and m is at least SPAN times the first power of two that reached the target
FIRST_RANGE = 16  # the first crossing is looked for down to needed / FIRST_RANGE


def samples_scan(test, p0, p1, laws, alpha=1e-3, target_power=0.9) -> tuple[int, int]:
    """(first, needed) for the approximate power of ``test`` against p1; (-1, -1) if no m up to 2^34 reaches it.

    needed: the smallest m beyond which the power stays >= target_power.  The power of the pooled tests is not
    monotone in m (see verification.power.power_at: the pooled cell releases cells as m grows), so "the m where
    the power first reaches the target" and "an m from which on the target holds" differ; the second is what a
    sample size is chosen by.  m doubles from 4 until the power reaches the target; then the power is evaluated
    on a geometric grid, GRID_STEPS points per doubling, from the last failing power of two (the answer lies above
    any failure) until it is within (1 - target) / SETTLED of 1 at m >= SPAN x that power of two; needed is the
    grid point after the last failure, refined by bisection (to 1%) between them.  A return below the target
    beyond the scan is not excluded by a proof, only by the power being near 1 there.
    first: the first point that reaches the target on the same grid scanned up from needed / FIRST_RANGE (a
    crossing further down is not looked for), printed to show where the two differ."""
    ok = lambda m: power.power_at(test, p0, p1, m, alpha, laws) >= target_power  # noqa: E731
    low, high = 2, 4
    while not ok(high):
        low, high = high, high * 2
        if high > 2**34:
            return -1, -1
    settled = 1 - (1 - target_power) / SETTLED
    last_failure, m = low, low
    while True:
        m_next = max(m + 1, int(round(m * 2 ** (1 / GRID_STEPS))))
        value = power.power_at(test, p0, p1, m_next, alpha, laws)
        if value < target_power:
            last_failure = m_next
        elif value >= settled and m_next >= SPAN * high:
            break
        m = m_next
        if m > 2**34:
            return -1, -1
    low = last_failure
    high = max(low + 1, int(round(low * 2 ** (1 / GRID_STEPS))))  # the grid point after it: a pass
    while high - low > max(1, low // 100):
        mid = max(low + 1, min(high - 1, int(math.sqrt(low * high))))
        low, high = (low, mid) if ok(mid) else (mid, high)
    first = max(4, high // FIRST_RANGE)
    while first < high and not ok(first):
        first = max(first + 1, int(round(first * 2 ** (1 / GRID_STEPS))))
    return min(first, high), high


def samples_needed(test, p0, p1, laws, alpha=1e-3, target_power=0.9) -> int:
    """The smallest m beyond which the approximate power stays >= target_power (-1 if none): see samples_scan."""
    return samples_scan(test, p0, p1, laws, alpha, target_power)[1]


def panel(sizes=range(4, 9), tv: float = 0.05, alpha: float = 1e-3, target_power: float = 0.9):
    rows = []
    for n in sizes:
        from autospec.targets import TabularTarget

        p0 = TabularTarget.random(n=n, q=3, seed=0).probs.reshape(-1).numpy()
        for kind in PERTURBATIONS:
            p1 = perturb(p0, kind, tv)
            laws = marginal_laws(p0, p1, n, 3)
            scans = {t: samples_scan(t, p0, p1, laws, alpha, target_power) for t in TESTS}
            needed = {t: v[1] for t, v in scans.items()}
            best_test = min((t for t, v in needed.items() if t != "auto" and v > 0), key=needed.get)
            best = needed[best_test]
            first = {t: v[0] for t, v in scans.items()}
            best_first = min(v for t, v in first.items() if t != "auto" and v > 0)
            rows.append({"cells": 3**n, "perturbation": kind, **needed, "best_single": best, "best_test": best_test,
                         "auto_over_best": needed["auto"] / best, "first": first,
                         "first_auto_over_best": first["auto"] / best_first,
                         "best_low": lowest_power(best_test, p0, p1, laws, int(1.5 * best), needed["auto"], alpha)})
    return rows


def lowest_power(test, p0, p1, laws, low: int, high: int, alpha=1e-3) -> float:
    """The smallest approximate power of ``test`` on the grid (GRID_STEPS per doubling) in [low, high] (nan if
    empty).  The panel asks it of the best single test on [1.5 x its samples needed, auto's]: where that is still
    near the target (a plateau: on a monotone curve 1.5x the samples lifts power 0.9 to ~0.99), a small loss of
    power (auto spends alpha on several parts) moves the m from which auto stays above the target a long way, and
    "samples needed" is ill-conditioned."""
    values, m = [], low
    while m <= high:
        values.append(power.power_at(test, p0, p1, m, alpha, laws))
        m = max(m + 1, int(round(m * 2 ** (1 / GRID_STEPS))))
    return min(values) if values else float("nan")


def checked_samples(n: int, tv: float = 0.05, alpha: float = 1e-3, target_power: float = 0.9) -> int:
    """The checked claim: samples auto needs to detect TV ``tv`` in every direction of the family."""
    from autospec.targets import TabularTarget

    p0 = TabularTarget.random(n=n, q=3, seed=0).probs.reshape(-1).numpy()
    return power.samples_for_tv(tv, "auto", alpha, target_power, probs=p0)


def main(argv=None):
    sizes = range(4, 9) if not argv else range(4, int(argv[0]) + 1)
    rows = panel(sizes)
    header = (f"{'cells':>6} {'perturbation':>17} " + " ".join(f"{t:>16}" for t in TESTS) + f" {'auto/best':>9}"
              + f" {'first: auto/best':>17} {'auto checked (family)':>22}")
    print("samples for power 0.9 at alpha 1e-3, every perturbation at TV 0.05\n"
          "columns pearson .. auto/best: APPROXIMATIONS (power_at: critical value from a gamma law with the null's "
          "three cumulants, normal law with the alternative's mean and variance; auto and marginals by Bonferroni; "
          "not claims), each the smallest m BEYOND WHICH the power stays >= 0.9 (the pooled tests' power is not "
          "monotone in m: pooling changes with m)\n"
          "first: auto/best: auto's first m reaching 0.9 over the best single test's (samples_scan)\n"
          "last column: CHECKED claim (power.samples_for_tv, auto, real Monte Carlo decision, "
          "every direction of the family at TV 0.05, power >= 0.9 as a lower confidence bound)\n" + header)
    checked = {}
    for r in rows:
        n = round(math.log(r["cells"], 3))
        if n not in checked:
            checked[n] = checked_samples(n)
        print(f"{r['cells']:>6} {r['perturbation']:>17} " + " ".join(f"{r[t]:>16}" for t in TESTS)
              + f" {r['auto_over_best']:>9.2f} {r['first_auto_over_best']:>17.2f} {checked[n]:>22}")
        if r["auto_over_best"] > 1.5:
            print(f"{'':>25}auto/best > 1.5: the best single test ({r['best_test']}) stays above 0.9 from "
                  f"{r['best_single']}, but only just: its power is down to {r['best_low']:.3f} between "
                  f"{int(1.5 * r['best_single'])} and {r['auto']} (a plateau; power not monotone in m); auto's "
                  "share of alpha costs that margin")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
