"""One-sample goodness-of-fit tests of sampler output against a known discrete law.

Everything here works on counts: ``observed`` [K] (non-negative integers) and
the exact law ``probs`` [K] they should follow.  A sample in a cell of
probability zero is proof of inexactness: every test returns p = 0 for it.

Tests
-----
* ``pearson`` / ``likelihood_ratio``: Pearson X^2 and the G (likelihood-ratio)
  statistic, ``scipy.stats.power_divergence``, after *pooling*: cells whose
  expected count m p_i is below ``min_expected`` (5, Cochran's rule) are merged,
  smallest first, into one cell until that cell's expected count reaches
  ``min_expected`` (and a lone leftover cell is merged too, so no degree of
  freedom is fake).  Reference law: chi-square with (cells after pooling - 1)
  degrees of freedom.
* ``corrected_chisquare``: T = sum_i ((N_i - m p_i)^2 - N_i) / (m p_i) over all
  cells of positive probability, no pooling, so it keeps its power when most
  cells are tiny (the collision-based identity tester).  Under H0 (multinomial)
  its moments are EXACT:  E T = -1,  Var T = 2 (k - 1)(1 - 1/m)
  (T + m = sum N_i (N_i - 1) / (m p_i), and factorial moments of the
  multinomial give the rest; k = cells of positive probability).  The p-value
  is calibrated by SIMULATION under H0 (seeded multinomial draws, enough of
  them to resolve alpha: at least 50 / alpha) when that is affordable, and
  otherwise by the normal law with the exact mean and variance (flagged
  ``calibration = "normal"`` in details: approximate in the far tail).
* ``marginal_tests``: each exact statistic law (single and pairwise marginals,
  counts, user functions) tested by pooled Pearson, p-values adjusted for the
  family by ``statsmodels.stats.multitest.multipletests`` (Holm by default);
  the family's p-value is the smallest adjusted one.
* ``auto_test``: Bonferroni over its parts: pooled Pearson on the joint, the
  corrected statistic too when the table is sparse (m < 5 cells; see
  ``choose_joint_test``), and the marginal family when statistics are given:
  p = min(1, c min_j p_j), c parts.  It rejects whenever a part rejects at
  alpha / c, which costs little power (alpha -> alpha / 3 at worst); the
  benchmark (benchmarks/power_panel.py) shows it within 1.33x of the best
  single test on every row.

TV between the sampler's law and the target: ``tv_plug_in`` (biased upward),
``tv_bias_corrected`` (plug-in minus its exact expectation under H0, clipped
at 0), ``tv_upper_bound`` (distribution-free upper confidence bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

__all__ = [
    "GofResult", "MIN_EXPECTED", "pool_cells", "pearson", "likelihood_ratio", "corrected_chisquare",
    "corrected_null_moments", "corrected_moments", "marginal_tests", "auto_test", "choose_joint_test", "auto_parts",
    "tv_plug_in", "tv_bias_corrected", "tv_upper_bound", "TESTS",
]

MIN_EXPECTED = 5.0
TV_CONFIDENCE = 0.95
# Corrected statistic: simulate the null when (simulations x cells) stays under this.
MAX_SIMULATION_WORK = 3 * 10**8
TESTS = ("pearson", "likelihood-ratio", "corrected", "marginals", "auto")


@dataclass
class GofResult:
    test: str
    statistic: float
    p_value: float
    dof: int
    num_samples: int
    cells: int
    details: dict = field(default_factory=dict)


def _as_counts(observed, probs):
    observed = np.asarray(observed, dtype=np.float64).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    if observed.shape != probs.shape:
        raise ValueError(f"observed counts {observed.shape} and probs {probs.shape} must have the same number of cells")
    if (observed < 0).any() or (probs < 0).any():
        raise ValueError("observed counts and probs must be non-negative")
    total = probs.sum()
    if not abs(total - 1.0) < 1e-6:
        raise ValueError(f"probs must sum to 1 (got {total:.9g})")
    return observed, probs / total


def _impossible(observed, probs) -> bool:
    return bool((observed[probs <= 0] > 0).any())


# ---------------------------------------------------------------- pooling
def pool_cells(observed, probs, num_samples: int | None = None, min_expected: float = MIN_EXPECTED):
    """Merge cells of small expected count.  Returns (observed [K'], probs [K'], info).

    Cells of probability zero are dropped (a count there is handled by the
    tests).  The cells with m p_i < ``min_expected`` are merged smallest first
    into a single pooled cell; if its expected count is still below
    ``min_expected`` (or only one other cell remains) the next smallest cells
    join it.  ``info``: pooled_cells (how many were merged), pooled_mass
    (their total probability, the TV the pooled test cannot see).
    """
    observed = np.asarray(observed, dtype=np.float64).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    m = float(observed.sum()) if num_samples is None else float(num_samples)
    keep = probs > 0
    observed, probs = observed[keep], probs[keep]
    expected = probs * m
    order = np.argsort(expected, kind="stable")
    small = int(np.searchsorted(expected[order], min_expected))  # cells below the threshold
    if small > 0:
        cumulative = np.cumsum(expected[order])
        small = max(small, int(np.searchsorted(cumulative, min_expected)) + 1)
    small = min(small, len(order))
    if small == len(order) - 1:
        small = len(order)  # a lone remaining cell would leave no degrees of freedom
    if small <= 1:  # one small cell alone is not pooled with anything; keep it as is
        return observed, probs, {"pooled_cells": 0, "pooled_mass": 0.0}
    low, high = order[:small], order[small:]
    obs = np.concatenate([observed[high], [observed[low].sum()]])
    prb = np.concatenate([probs[high], [probs[low].sum()]])
    return obs, prb, {"pooled_cells": int(small), "pooled_mass": float(probs[low].sum())}


def _power_divergence(observed, probs, lambda_: str, name: str, min_expected: float) -> GofResult:
    observed, probs = _as_counts(observed, probs)
    m = int(round(observed.sum()))
    cells = int((probs > 0).sum())
    if m == 0:
        return GofResult(name, 0.0, 1.0, 0, 0, cells)
    if _impossible(observed, probs):
        return GofResult(name, math.inf, 0.0, cells - 1, m, cells, {"impossible_cell_observed": True})
    obs, prb, info = pool_cells(observed, probs, m, min_expected)
    if len(obs) < 2:
        return GofResult(name, 0.0, 1.0, 0, m, cells, info)
    result = stats.power_divergence(obs, prb * m, lambda_=lambda_)
    info.update(min_expected=min_expected, cells_after_pooling=len(obs))
    return GofResult(name, float(result.statistic), float(result.pvalue), len(obs) - 1, m, cells, info)


def pearson(observed, probs, min_expected: float = MIN_EXPECTED) -> GofResult:
    """Pearson chi-square after pooling cells of expected count < min_expected."""
    return _power_divergence(observed, probs, "pearson", "pearson", min_expected)


def likelihood_ratio(observed, probs, min_expected: float = MIN_EXPECTED) -> GofResult:
    """Likelihood-ratio (G) chi-square after the same pooling."""
    return _power_divergence(observed, probs, "log-likelihood", "likelihood-ratio", min_expected)


# ---------------------------------------------------------------- corrected chi-square
def corrected_statistic(counts: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """T = sum ((N - m p)^2 - N) / (m p) for counts [..., k] (positive-probability cells only)."""
    counts = np.asarray(counts, dtype=np.float64)
    m = counts.sum(-1, keepdims=True)
    return (counts * (counts - 1) / probs).sum(-1) / m[..., 0] - m[..., 0]


def corrected_null_moments(k: int, m: int) -> tuple[float, float]:
    """Exact (mean, variance) of T under H0 with k positive cells and m samples: (-1, 2 (k-1)(1-1/m))."""
    return -1.0, 2.0 * (k - 1) * (1.0 - 1.0 / m) if m > 0 else 0.0


def corrected_moments(p0, p1, m: int) -> tuple[float, float]:
    """Exact (mean, variance) of T when the samples follow p1 and the test uses p0 (same support).

    With U = sum N_i (N_i - 1) / p0_i and falling factorials m^(r):
    E U = m^(2) S1, Var U = (m^(4) - m^(2)^2) S1^2 + 4 m^(3) S3 + 2 m^(2) S2,
    S1 = sum p1^2/p0, S2 = sum p1^2/p0^2, S3 = sum p1^3/p0^2; T = U/m - m.
    """
    p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
    s1 = float((p1**2 / p0).sum())
    s2 = float((p1**2 / p0**2).sum())
    s3 = float((p1**3 / p0**2).sum())
    f2, f3, f4 = m * (m - 1.0), m * (m - 1.0) * (m - 2.0), m * (m - 1.0) * (m - 2.0) * (m - 3.0)
    mean_u = f2 * s1
    var_u = (f4 - f2 * f2) * s1 * s1 + 4 * f3 * s3 + 2 * f2 * s2
    return mean_u / m - m, max(var_u, 0.0) / (m * m)


def corrected_chisquare(
    observed, probs, alpha: float | None = None, calibration: str = "auto", seed: int = 0,
    num_simulations: int | None = None,
) -> GofResult:
    """Variance-corrected chi-square (see the module docstring), one-sided (large T rejects).

    calibration: "simulation" (Monte Carlo under H0, p = (1 + #{T_sim >= T}) / (B + 1)),
    "normal" (exact mean and variance, normal tail), or "auto" (simulation when
    B x cells <= MAX_SIMULATION_WORK, B = max(2000, 50 / alpha)).
    """
    observed, probs = _as_counts(observed, probs)
    m = int(round(observed.sum()))
    keep = probs > 0
    k = int(keep.sum())
    if m == 0:
        return GofResult("corrected", 0.0, 1.0, k - 1, 0, k)
    if _impossible(observed, probs):
        return GofResult("corrected", math.inf, 0.0, k - 1, m, k, {"impossible_cell_observed": True})
    obs, prb = observed[keep], probs[keep]
    t = float(corrected_statistic(obs, prb))
    mean, var = corrected_null_moments(k, m)
    z = (t - mean) / math.sqrt(var) if var > 0 else 0.0
    details = {"null_mean": mean, "null_variance": var, "z": z}
    if calibration not in ("auto", "simulation", "normal"):
        raise ValueError(f"calibration must be 'auto', 'simulation' or 'normal', got {calibration!r}")
    if num_simulations is None:
        num_simulations = max(2000, int(math.ceil(50.0 / alpha))) if alpha else 2000
    if calibration == "auto":
        calibration = "simulation" if num_simulations * min(k, m) <= MAX_SIMULATION_WORK else "normal"
    if calibration == "normal" or var <= 0:
        p = float(stats.norm.sf(z)) if var > 0 else 1.0
        details["calibration"] = "normal"
    else:
        null = simulate_corrected_null(prb, m, num_simulations, seed)
        p = (1.0 + float((null >= t - 1e-9 * max(1.0, abs(t))).sum())) / (num_simulations + 1.0)
        details.update(calibration="simulation", num_simulations=num_simulations)
    return GofResult("corrected", t, p, k - 1, m, k, details)


def simulate_corrected_null(probs, m: int, num_simulations: int, seed: int = 0) -> np.ndarray:
    """num_simulations draws of T under H0 (multinomial(m, probs)), seeded."""
    generator = np.random.default_rng(seed)
    k = len(probs)
    out = np.empty(num_simulations)
    chunk = max(1, int(2e7 // max(k, 1)))
    for start in range(0, num_simulations, chunk):
        size = min(chunk, num_simulations - start)
        if m < k:  # sparse: draw the samples themselves and count them
            draws = generator.choice(k, size=(size, m), p=probs)
            rows = np.arange(size).reshape(-1, 1) * k
            counts = np.bincount((rows + draws).ravel(), minlength=size * k).reshape(size, k)
        else:
            counts = generator.multinomial(m, probs, size=size)
        out[start:start + size] = corrected_statistic(counts, probs)
    return out


# ---------------------------------------------------------------- marginals
def marginal_tests(values, statistics, method: str = "holm", min_expected: float = MIN_EXPECTED) -> GofResult:
    """Pooled Pearson on each exact statistic law, family-wise corrected by ``method``.

    values: samples [N, n] (torch or numpy); statistics: list of ExactStatistic.
    """
    if not statistics:
        raise ValueError("marginal_tests needs at least one exact statistic")
    rows, p_values = [], []
    for stat in statistics:
        observed = stat.counts(values).numpy()
        probs = stat.probs.numpy()
        result = pearson(observed, probs, min_expected)
        m = max(observed.sum(), 1)
        rows.append({"statistic": stat.name, "chi2": result.statistic, "p_value": result.p_value, "dof": result.dof,
                     "tv": 0.5 * float(np.abs(observed / m - probs).sum()), "cells": len(probs),
                     "pooled_mass": result.details.get("pooled_mass", 0.0)})
        p_values.append(result.p_value)
    adjusted = multipletests(p_values, method=method)[1]
    for row, adj in zip(rows, adjusted):
        row["p_adjusted"] = float(adj)
    worst = int(np.argmin(adjusted))
    num = int(sum(stat.counts(values).sum() for stat in statistics[:1]))
    return GofResult(f"marginals-{method}", rows[worst]["chi2"], float(adjusted[worst]), rows[worst]["dof"], num,
                     len(statistics), {"statistics": rows, "correction": method, "worst": rows[worst]["statistic"]})


# ---------------------------------------------------------------- auto
def choose_joint_test(cells: int, num_samples: int) -> str:
    """The joint component of ``auto``: "pearson" when the table is dense (m >= 5 cells: pooling is mild),
    "pearson+corrected" when it is sparse (pooling can hide a deviation the corrected statistic sees)."""
    return "pearson" if num_samples >= 5 * cells else "pearson+corrected"


def auto_parts(cells: int, num_samples: int, with_marginals: bool) -> list[str]:
    parts = choose_joint_test(cells, num_samples).split("+")
    return parts + (["marginals"] if with_marginals else [])


def auto_test(observed, probs, values=None, statistics=None, alpha: float | None = None, seed: int = 0) -> GofResult:
    """Bonferroni combination of its parts: pooled Pearson on the joint, the corrected statistic when the
    table is sparse, and the marginal family (Holm) when statistics are given:
    p = min(1, c min_j p_j) with c the number of parts, so each part works at alpha / c."""
    observed_arr, probs_arr = _as_counts(observed, probs)
    m, cells = int(round(observed_arr.sum())), int((probs_arr > 0).sum())
    parts = auto_parts(cells, m, values is not None and bool(statistics))
    c = len(parts)
    results = {}
    for part in parts:
        if part == "pearson":
            results[part] = pearson(observed_arr, probs_arr)
        elif part == "corrected":
            results[part] = corrected_chisquare(observed_arr, probs_arr, alpha=None if alpha is None else alpha / c, seed=seed)
        else:
            results[part] = marginal_tests(values, statistics)
    details = {part: {"statistic": r.statistic, "p_value": r.p_value, "dof": r.dof,
                      **{k: v for k, v in r.details.items() if k != "statistics"}} for part, r in results.items()}
    if "marginals" in results:
        details["marginals"]["statistics"] = results["marginals"].details["statistics"]
    details["combination"] = f"bonferroni over {parts}: p = min(1, {c} min p)"
    first = results["pearson"]
    p = min(1.0, c * min(r.p_value for r in results.values()))
    return GofResult(f"auto({'+'.join(parts)})", first.statistic, p, first.dof, m, cells, details)


# ---------------------------------------------------------------- TV
def tv_plug_in(observed, probs) -> float:
    """0.5 sum |N_i / m - p_i|: biased upward (about 0.5 sqrt(2 (k-1) / (pi m)) under H0)."""
    observed, probs = _as_counts(observed, probs)
    m = observed.sum()
    return 0.0 if m == 0 else 0.5 * float(np.abs(observed / m - probs).sum())


def expected_null_tv(probs, m: int) -> float:
    """Exact E[TV(empirical, p)] under H0: 0.5 sum_i E|N_i/m - p_i|, by De Moivre's
    mean absolute deviation of the binomial: E|N - mp| = 2 v (1 - p) C(m, v) p^v (1-p)^(m-v), v = floor(mp) + 1."""
    probs = np.asarray(probs, np.float64).reshape(-1)
    probs = probs[(probs > 0) & (probs < 1)]
    if m <= 0 or len(probs) == 0:
        return 0.0
    v = np.floor(m * probs) + 1
    mad = 2 * v * (1 - probs) * stats.binom.pmf(v, m, probs)
    return 0.5 * float(mad.sum()) / m


def tv_bias_corrected(observed, probs) -> float:
    """Plug-in TV minus its exact expectation under H0, clipped at 0.

    Unbiased (up to the clip) at H0, and removes most of the upward bias for
    deviations smaller than the sampling noise; a point estimate, not a bound.
    """
    observed, probs = _as_counts(observed, probs)
    m = int(round(observed.sum()))
    return max(0.0, tv_plug_in(observed, probs) - expected_null_tv(probs, m))


def tv_upper_bound(tv_plug: float, cells: int, num_samples: int, confidence: float = TV_CONFIDENCE) -> float:
    """Upper confidence bound (level ``confidence``) on TV(sampler law, target), distribution-free.

    TV(sampler, target) <= TV(empirical, target) + TV(empirical, sampler); the
    last term has mean at most 0.5 sqrt((cells - 1) / N) (Cauchy-Schwarz) and
    exceeds its mean by more than sqrt(log(1 / delta) / (2 N)) with
    probability at most delta = 1 - confidence (McDiarmid: one sample moves it
    by at most 1 / N).
    """
    if num_samples == 0:
        return 1.0
    delta = 1.0 - confidence
    bound = tv_plug + 0.5 * math.sqrt(max(cells - 1, 0) / num_samples) + math.sqrt(math.log(1 / delta) / (2 * num_samples))
    return min(1.0, bound)
