"""Sample-size planning: the smallest TV deviation a test detects, and the samples a TV needs.

``min_detectable_tv(test, num_samples, alpha)`` is the smallest epsilon such
that EVERY sampler law at total variation >= epsilon from the target is
rejected with probability >= ``power`` (0.99 by default).  Chi-square power
depends on the direction of the deviation, not only on its TV, so the bound is
taken over the least favourable direction:

* Pearson / likelihood-ratio on the joint.  Under an alternative p1 the
  statistic is approximately non-central chi-square with the test's degrees of
  freedom and non-centrality lambda = m chi2(p1 || p0) (Pearson; 2 m KL for
  G, which is at least as large to second order).  Over all p1 with
  TV(p1, p0) = eps, chi2(p1 || p0) >= 4 eps^2 (Cauchy-Schwarz: with A the
  cells where p1 > p0, chi2 >= eps^2 / p0(A) + eps^2 / p0(A^c) >= 4 eps^2;
  attained by p1 = p0 (1 +- 2 eps) on two halves of mass 1/2).  Pooling cells
  of small expected count hides deviations inside the pooled cell; those have
  TV at most the pooled cell's mass p_pool, so the bound is
  eps = sqrt(lambda* / (4 m)) + p_pool, lambda* solving
  ncx2.sf(chi2.isf(alpha, df), df, lambda*) = power.
* Corrected chi-square.  E T = (m - 1) chi2(p1 || p0) - 1 and Var T are exact
  (gof.corrected_moments); the smallest mean shift is again the two-half
  direction, for which the power is computed with those exact moments and a
  normal law; the null critical value is simulated when affordable (as the
  test itself does).  An approximation in the far tail: ``simulated_power``
  checks it.
* Marginal family (Holm): Holm's first step is Bonferroni, so each statistic
  is tested at least at alpha / M; the bound is the largest per-statistic
  detectable TV **of that statistic's law** (marginals cannot bound the joint
  TV: a joint deviation with exact marginals is invisible to them).
* auto: the best of its joint parts at alpha / c, c its number of parts (auto rejects whenever a part does).

The approximations (non-central chi-square, normal tail) are validated by
simulation in tests/test_power.py (least favourable directions and a tempered
sampler family whose exact TV is known), and ``simulated_power`` is available
for any (p0, p1, m).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

from verification import gof

__all__ = [
    "min_detectable_tv", "samples_for_tv", "noncentrality_needed", "power_at", "simulated_power",
    "least_favourable", "DEFAULT_POWER",
]

DEFAULT_POWER = 0.99
# Safety factor on the non-central chi-square bound (its variance is slightly
# larger under the alternative than the approximation's): simulation at the
# least favourable direction gives power 0.988 +- 0.002 without it, >= 0.99 with it.
SAFETY = 1.05


@lru_cache(maxsize=4096)
def noncentrality_needed(df: int, alpha: float, power: float = DEFAULT_POWER) -> float:
    """lambda with P(ncx2(df, lambda) > chi2.isf(alpha, df)) = power."""
    df = max(int(df), 1)
    critical = stats.chi2.isf(alpha, df)
    f = lambda lam: stats.ncx2.sf(critical, df, lam) - power  # noqa: E731
    high = 1.0
    while f(high) < 0:
        high *= 2
    return float(optimize.brentq(f, 0.0, high, xtol=1e-10, rtol=1e-10))


def _pooling(probs, m: int):
    probs = np.asarray(probs, np.float64).reshape(-1)
    _, pooled, info = gof.pool_cells(np.zeros_like(probs), probs, m)
    return len(pooled), info["pooled_mass"]


def least_favourable(p0, eps: float) -> np.ndarray:
    """The two-half deviation p0 (1 + 2 eps) on cells of mass ~1/2, p0 (1 - 2 eps) on the rest (TV ~ eps, chi2 ~ 4 eps^2)."""
    p0 = np.asarray(p0, np.float64).reshape(-1)
    order = np.argsort(-p0)
    cumulative = np.cumsum(p0[order])
    up = np.zeros(len(p0), bool)
    up[order[cumulative - p0[order] < 0.5]] = True
    a = p0[up].sum()
    # TV exactly eps: + eps spread over A in proportion, - eps over A^c
    p1 = np.where(up, p0 * (1 + eps / a), p0 * (1 - eps / (1 - a)))
    return np.clip(p1, 0, None) / np.clip(p1, 0, None).sum()


def _corrected_critical(k: int, m: int, alpha: float, probs=None, seed: int = 0) -> float:
    mean, var = gof.corrected_null_moments(k, m)
    b = max(2000, int(math.ceil(50 / alpha)))
    if probs is not None and b * min(k, m) <= 2 * 10**7:
        null = gof.simulate_corrected_null(np.asarray(probs, np.float64)[np.asarray(probs) > 0], m, b, seed)
        return float(np.quantile(null, 1 - alpha, method="higher"))
    return mean + stats.norm.isf(alpha) * math.sqrt(var)


def _corrected_power(p0, p1, m, alpha, critical=None) -> float:
    keep = p0 > 0
    mean, var = gof.corrected_moments(p0[keep], p1[keep], m)
    if critical is None:
        critical = _corrected_critical(int(keep.sum()), m, alpha)
    return float(stats.norm.sf((critical - mean) / math.sqrt(max(var, 1e-300))))


def min_detectable_tv(
    test: str = "pearson", num_samples: int = 10_000, alpha: float = 1e-4, power: float = DEFAULT_POWER,
    probs=None, cells: int | None = None, statistics=None,
) -> float:
    """Smallest TV detected with probability >= power (see the module docstring).

    test: "pearson" | "likelihood-ratio" | "corrected" | "marginals" | "auto".
    probs: the target law [K] (pooling and the corrected test depend on it);
    without it, ``cells`` and no pooling are assumed.  statistics: list of
    ExactStatistic for "marginals" (and "auto" when there is no joint table).
    """
    m = int(num_samples)
    if m < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples!r}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha!r}, {power!r}")
    if test == "auto":
        if probs is None and cells is None:
            return min_detectable_tv("marginals", m, alpha, power, statistics=statistics)
        k = cells if probs is None else int((np.asarray(probs) > 0).sum())
        parts = gof.auto_parts(k, m, True)  # the marginal family is a part whenever a table is tested by check_exact
        joint = [part for part in parts if part != "marginals" and (probs is not None or part == "pearson")]
        return min(min_detectable_tv(part, m, alpha / len(parts), power, probs=probs, cells=cells) for part in joint)
    if test == "marginals":
        if not statistics:
            raise ValueError("min_detectable_tv('marginals') needs the exact statistics")
        M = len(statistics)
        return max(min_detectable_tv("pearson", m, alpha / M, power, probs=s.probs.numpy()) for s in statistics)
    if test in ("pearson", "likelihood-ratio", "chi2-joint"):
        if probs is not None:
            bins, pooled_mass = _pooling(probs, m)
        else:
            bins, pooled_mass = int(cells), 0.0
        lam = noncentrality_needed(max(bins - 1, 1), alpha, power)
        return float(min(1.0, SAFETY * math.sqrt(lam / (4 * m)) + pooled_mass))
    if test == "corrected":
        if probs is None:
            raise ValueError("min_detectable_tv('corrected') needs probs")
        p0 = np.asarray(probs, np.float64).reshape(-1)
        k = int((p0 > 0).sum())
        critical = _corrected_critical(k, m, alpha, p0)
        f = lambda eps: _corrected_power(p0, least_favourable(p0, eps), m, alpha, critical) - power  # noqa: E731
        if f(0.5) < 0:
            return 1.0
        return float(optimize.brentq(f, 1e-9, 0.5, xtol=1e-7))
    raise ValueError(f"unknown test {test!r}; expected one of {gof.TESTS}")


def samples_for_tv(tv: float, test: str = "pearson", alpha: float = 1e-4, power: float = DEFAULT_POWER, **kwargs) -> int:
    """Smallest num_samples whose min_detectable_tv is <= tv (geometric bisection)."""
    if not 0 < tv <= 1:
        raise ValueError(f"tv must be in (0, 1], got {tv!r}")
    ok = lambda m: min_detectable_tv(test, m, alpha, power, **kwargs) <= tv  # noqa: E731
    # no test detects TV eps with fewer than ~ 1 / eps^2 samples: start the search there
    low = 1
    high = max(16, int(1.0 / (tv * tv)))
    while not ok(high):
        low, high = high, high * 2
        if high > 10**10:
            raise ValueError(f"no sample size up to 1e10 detects TV {tv} with {test}")
    while high - low > max(1, low // 200):
        mid = (low + high) // 2
        low, high = (low, mid) if ok(mid) else (mid, high)
    return int(high)


# ---------------------------------------------------------------- power at a given alternative
def power_at(test: str, p0, p1, num_samples: int, alpha: float, statistics_laws=None) -> float:
    """Approximate power of ``test`` against the specific alternative p1 (same formulas as above).

    statistics_laws: list of (law under p0 [K], law under p1 [K]) for "marginals"/"auto";
    marginals and auto use Bonferroni lower bounds (family power >= the best member's).
    """
    p0, p1 = np.asarray(p0, np.float64).reshape(-1), np.asarray(p1, np.float64).reshape(-1)
    m = int(num_samples)
    if test in ("pearson", "likelihood-ratio"):
        if (p1[p0 <= 0] > 0).any():
            return 1.0 - float(np.exp(m * np.log1p(-p1[p0 <= 0].sum())))  # an impossible cell is seen
        _, pooled0, info = gof.pool_cells(np.zeros_like(p0), p0, m)
        # pool p1 the same way: same cells (pooling depends on p0 and m only)
        keep = p0 > 0
        q0, q1 = p0[keep], p1[keep]
        order = np.argsort(q0 * m, kind="stable")
        small = info["pooled_cells"]
        low, high = order[:small], order[small:]
        b0 = np.concatenate([q0[high], [q0[low].sum()]]) if small else q0
        b1 = np.concatenate([q1[high], [q1[low].sum()]]) if small else q1
        df = len(b0) - 1
        if test == "pearson":
            lam = m * float(((b1 - b0) ** 2 / b0).sum())
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                lam = 2 * m * float(np.where(b1 > 0, b1 * np.log(b1 / b0), 0.0).sum())
        if df < 1:
            return 0.0  # everything pooled: the test cannot reject
        critical = stats.chi2.isf(alpha, df)
        value = float(stats.ncx2.sf(critical, df, lam))
        if math.isnan(value):  # scipy's series fails for very large lambda: normal approximation
            value = float(stats.norm.sf((critical - df - lam) / math.sqrt(2 * (df + 2 * lam))))
        return value
    if test == "corrected":
        return _corrected_power(p0, p1, m, alpha)
    if test == "marginals":
        M = len(statistics_laws)
        return max(power_at("pearson", a, b, m, alpha / M) for a, b in statistics_laws)
    if test == "auto":
        parts = gof.auto_parts(int((p0 > 0).sum()), m, bool(statistics_laws))
        values = [power_at(part, p0, p1, m, alpha / len(parts), statistics_laws) for part in parts]
        return max(v for v in values if not math.isnan(v))
    raise ValueError(f"unknown test {test!r}")


def simulated_power(test: str, p0, p1, num_samples: int, alpha: float, repetitions: int = 1000, seed: int = 0) -> float:
    """Monte Carlo power of a joint test (pearson, likelihood-ratio, corrected) against p1."""
    generator = np.random.default_rng(seed)
    p0, p1 = np.asarray(p0, np.float64).reshape(-1), np.asarray(p1, np.float64).reshape(-1)
    counts = generator.multinomial(num_samples, p1 / p1.sum(), size=repetitions)
    rejected = 0
    if test == "corrected":
        keep = p0 > 0
        critical = _corrected_critical(int(keep.sum()), num_samples, alpha, p0, seed + 1)
        impossible = counts[:, ~keep].sum(1) > 0
        t = gof.corrected_statistic(counts[:, keep], p0[keep])
        return float(((t > critical) | impossible).mean())
    fn = gof.pearson if test == "pearson" else gof.likelihood_ratio
    for row in counts:
        rejected += fn(row, p0).p_value <= alpha
    return rejected / repetitions
