"""Power half of the soundness grid: is every printed min_detectable_tv true for the REAL decision?

For each setting (table shape, sparsity / concentration, forbidden cells, sample size, alpha) and each test
(pearson, likelihood-ratio, corrected, auto), the claim check_exact would print,
``power.detectable_tv(test, m, alpha, 0.99, **check._plan_arguments(target, test, None))``, is taken at face
value: in EVERY direction of ``verification.directions`` that reaches the claimed TV, ``repetitions``
multinomial samples of the alternative law are decided by ``gof.decide`` itself (the function check_exact calls:
Monte Carlo p-values, sequential stop, inconclusive rows counted as not rejected), with per-block seeds: block j
of the rows is decided with seed ``SEED_BASE + j``, the same blocks for every direction (so the null streams
are drawn once per (setting, test) and the rows of a block share their null draws, exactly what check_exact
does with that seed).

Criterion, per (setting, test, direction): the exact one-sided binomial test of "power >= claimed power"
(``scipy.stats.binomtest``, alternative "less") must not reject at ``stat_alpha``; the table shows the measured
power, its Clopper-Pearson two-sided 95% interval, and p_low = P(Binomial(R, claimed) <= rejections).  Rows in
a block share a seed, so conditionally on the blocks' null draws the rejections are independent with
per-block probabilities: their count is Poisson-binomial, for which the binomial lower tail at the mean power
is conservative (Hoeffding 1956); what is tested is thus the power of the decisions made with these seeds,
whose seed-average is the claim (the spread over seeds is reported as the block range).

The two-sample line: sliced KS (``two_sample.sliced_ks_test``, the decision of check_exact_diffusion's
two-sample path) at d = 16, 10,000 per sample, alpha 1e-3, at the claimed ``min_detectable_ks``, against a
shift and a scale change along one coordinate axis made so that the sup-distance of that coordinate's CDFs
equals the claim (the other tested directions see less); the claim must be detected with power >= 0.99.

Run: python benchmarks/power_soundness.py [quick]   (the full grid takes tens of minutes on two cores)
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from verification import directions, gof, power

TESTS = ("pearson", "likelihood-ratio", "corrected", "auto")
SEED_BASE = 7000


@dataclass(frozen=True)
class Setting:
    name: str
    n: int
    q: int
    seed: int
    concentration: float
    num_samples: int
    alpha: float
    zero_fraction: float = 0.0
    blocks: int = 20  # decision seeds per (setting, test): the null streams drawn

    def target(self):
        from autospec.targets import TabularTarget

        return TabularTarget.random(self.n, self.q, seed=self.seed, concentration=self.concentration,
                                    zero_fraction=self.zero_fraction)


SETTINGS = (
    Setting("5x4 sparse c=0.3, m=1000, a=1e-3", 5, 4, 1, 0.3, 1000, 1e-3),
    Setting("8x3 sparse c=0.3, m=2000, a=1e-4", 8, 3, 1, 0.3, 2000, 1e-4, blocks=5),
    Setting("3x3 dense, m=3000, a=1e-4", 3, 3, 0, 1.0, 3000, 1e-4, blocks=10),
    Setting("4x3 dense, m=3000, a=1e-3", 4, 3, 1, 1.0, 3000, 1e-3),
    Setting("4x3 peaked c=0.3, zeros 20%, m=600, a=1e-2", 4, 3, 2, 0.3, 600, 1e-2, zero_fraction=0.2),
    Setting("2x3 dense, m=2000, a=1e-5", 2, 3, 3, 1.0, 2000, 1e-5, blocks=4),
)
QUICK = Setting("3x3 dense, m=2000, a=1e-3 (quick)", 3, 3, 0, 1.0, 2000, 1e-3, blocks=10)


def claim_for(setting: Setting, test: str):
    """(claim, plan): what check_exact(test=test) prints at this setting, and the arguments it plans with."""
    from verification.check import _plan_arguments

    kind, plan = _plan_arguments(setting.target(), test, None)
    return power.detectable_tv(kind, setting.num_samples, setting.alpha, power.DEFAULT_POWER, **plan), plan


def measure(setting: Setting, test: str, repetitions: int = 2000, stat_alpha: float = 1e-6, names=None):
    """Rows (dicts) for every direction of the family at the claimed TV: the real decision's measured power."""
    claim, plan = claim_for(setting, test)
    table = np.asarray(plan["probs"], np.float64)
    shape, p0 = table.shape, table.reshape(-1)
    base = {"setting": setting.name, "test": test, "claimed_tv": claim.tv, "claimed_power": claim.power,
            "planner_power": claim.measured_power, "planner_error": claim.monte_carlo_error}
    if claim.tv >= 1:
        return [{**base, "direction": "-", "note": "nothing claimed: " + claim.bounds, "ok": True}]
    blocks = max(1, min(setting.blocks, repetitions))
    seeds = SEED_BASE + np.arange(repetitions) * blocks // repetitions  # block j: rows j R / B .. (j + 1) R / B
    rows = []
    for index, name in enumerate(names or directions.DIRECTIONS):
        p1 = directions.build(name, p0, claim.tv, setting.num_samples, shape)
        if p1 is None:
            rows.append({**base, "direction": name, "note": "does not reach the claimed TV", "ok": True})
            continue
        generator = np.random.default_rng([setting.seed, setting.num_samples, index, 0xD1])
        counts = generator.multinomial(setting.num_samples, p1, size=repetitions)
        decided = gof.decide(test, counts, table, setting.alpha, seed=seeds, statistics=plan.get("statistics"),
                             table_shape=shape)
        rejected = decided.reject
        k = int(rejected.sum())
        low, high = stats.binomtest(k, repetitions).proportion_ci(0.95, method="exact")
        p_low = float(stats.binom.cdf(k, repetitions, claim.power))
        per_block = [float(rejected[seeds == s].mean()) for s in np.unique(seeds)]
        rows.append({**base, "direction": name, "measured": k / repetitions, "ci_low": low, "ci_high": high,
                     "p_low": p_low, "repetitions": repetitions, "block_min": min(per_block),
                     "block_max": max(per_block), "inconclusive": int(decided.inconclusive.sum()),
                     "ok": p_low >= stat_alpha, "stat_alpha": stat_alpha})
    return rows


def ks_claim_rows(dim: int = 16, num_samples: int = 10_000, alpha: float = 1e-3, repetitions: int = 300,
                  num_projections: int = 16, stat_alpha: float = 1e-6, seed: int = 0):
    """Sliced KS at the claimed min_detectable_ks: measured power for a shift and a scale change along one axis."""
    from verification.two_sample import min_detectable_ks, sliced_ks_test

    num_tests = dim + num_projections
    claim = min_detectable_ks(num_samples, alpha, num_tests)
    shift = 2 * stats.norm.ppf(0.5 + claim / 2)  # sup |Phi(x) - Phi(x - s)| = 2 Phi(s / 2) - 1 = claim

    def scale_distance(sigma):  # sup |Phi(x) - Phi(x / sigma)|, at x* where the densities cross
        x = sigma * math.sqrt(2 * math.log(sigma) / (sigma**2 - 1))
        return stats.norm.cdf(x) - stats.norm.cdf(x / sigma)

    sigma = optimize.brentq(lambda s: scale_distance(s) - claim, 1 + 1e-9, 10.0)
    rows = []
    for kind in ("shift", "scale"):
        rejected = 0
        for r in range(repetitions):
            generator = np.random.default_rng([seed, r, 0x5C])
            x = generator.standard_normal((num_samples, dim))
            y = generator.standard_normal((num_samples, dim))
            if kind == "shift":
                y[:, 0] += shift
            else:
                y[:, 0] *= sigma
            rejected += sliced_ks_test(x, y, num_projections=num_projections, seed=seed + r).p_value <= alpha
        low, high = stats.binomtest(rejected, repetitions).proportion_ci(0.95, method="exact")
        p_low = float(stats.binom.cdf(rejected, repetitions, power.DEFAULT_POWER))
        rows.append({"kind": kind, "claim": claim, "parameter": shift if kind == "shift" else sigma,
                     "measured": rejected / repetitions, "ci_low": low, "ci_high": high, "p_low": p_low,
                     "repetitions": repetitions, "ok": p_low >= stat_alpha})
    return rows


def format_row(row) -> str:
    head = f"{row['setting']:<44} {row['test']:<16} {row['claimed_tv']:>8.4f} {row['direction']:<20}"
    if "measured" not in row:
        return f"{head} {row.get('note', '')}"
    return (f"{head} {row['measured']:>8.4f} [{row['ci_low']:.4f}, {row['ci_high']:.4f}] "
            f"{row['claimed_power']:>6.2f} {row['p_low']:>9.2e} {row['block_min']:.3f}-{row['block_max']:.3f} "
            f"{'ok' if row['ok'] else 'FAIL'}")


def main(argv=None) -> int:
    quick = bool(argv) and argv[0] == "quick"
    settings = (QUICK,) if quick else SETTINGS
    repetitions = 1000 if quick else 2000
    print("power at the claimed min_detectable_tv, real decision (gof.decide, per-block seeds), every direction;\n"
          "ok: exact one-sided binomial test of power >= claimed does not reject at 1e-6 (p_low = P(Bin(R, claimed) "
          "<= rejections))\n"
          f"{'setting':<44} {'test':<16} {'claim TV':>8} {'direction':<20} {'measured':>8} {'95% CP interval':<18} "
          f"{'claim':>6} {'p_low':>9} blocks")
    failures = 0
    for setting in settings:
        for test in TESTS:
            start = time.time()
            for row in measure(setting, test, repetitions):
                print(format_row(row), flush=True)
                failures += not row["ok"]
            print(f"#   ({setting.name}, {test}: {time.time() - start:.0f} s)", flush=True)
    print("\nsliced KS at d = 16, 10,000 per sample, alpha 1e-3, at the claimed min_detectable_ks (two-sample DKW):")
    for row in ks_claim_rows(repetitions=100 if quick else 300):
        print(f"  {row['kind']:<6} claim {row['claim']:.4f} (parameter {row['parameter']:.4f}): measured "
              f"{row['measured']:.4f} [{row['ci_low']:.4f}, {row['ci_high']:.4f}] over {row['repetitions']}, "
              f"claimed 0.99, p_low {row['p_low']:.2e} {'ok' if row['ok'] else 'FAIL'}", flush=True)
        failures += not row["ok"]
    print(f"\n{failures} failing row(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
