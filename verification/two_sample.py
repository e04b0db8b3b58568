"""Tests for continuous samplers: two-sample (MMD, energy distance, sliced KS) and
one-sample against exact laws (KS and Cramer-von Mises on exact CDFs, Gaussian
moment tests against an exact mean and covariance).

Library first: one-dimensional KS / Cramer-von Mises / chi-square laws come
from scipy.stats.  Written by hand, because no installed library does them:
the multivariate MMD and energy statistics with permutation p-values (scipy's
energy_distance is one-dimensional and has no test), the sliced-KS
combination and the whitening-based Gaussian moment tests.

Permutation p-values are (1 + #{perm >= observed}) / (1 + num_permutations),
so they cannot go below 1 / (1 + num_permutations): at alpha = 1e-5 the
analytic tests (sliced KS, one-sample tests) are the ones that can reject.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats

__all__ = [
    "TestResult",
    "mmd_test",
    "energy_test",
    "sliced_ks_test",
    "pit_tests",
    "gaussian_moment_tests",
    "bonferroni",
    "min_detectable_ks",
]


@dataclass
class TestResult:
    name: str
    statistic: float
    p_value: float
    details: dict = field(default_factory=dict)


def bonferroni(p_values: list[float]) -> float:
    return float(min(1.0, len(p_values) * min(p_values))) if p_values else 1.0


def min_detectable_ks(num_samples: int, alpha: float, num_tests: int = 1, power: float = 0.99,
                      num_samples_y: int | None = None, one_sample: bool = False) -> float:
    """Sup-distance between CDFs that a KS test at level alpha / num_tests detects with the given power; a bound,
    not an approximation.  Two-sample (default: n = num_samples and m = num_samples_y or n samples, scipy's
    ks_2samp), or one-sample against an exact CDF (one_sample=True: scipy's kstest).

    DKW (Massart's constant) on each sample: P(sup |F_n - F| > sqrt(log(2 / d) / (2 n))) <= d.
    Two-sample: under H0, D = sup |F_n - G_m| <= dev_x + dev_y, so with alpha / num_tests split over the two
    samples the critical value of D is at most c = sqrt(log(4 k / alpha) / (2 n)) + sqrt(log(4 k / alpha) / (2 m))
    (ks_2samp's own is smaller, exact or asymptotic: the Kolmogorov tail is below 2 exp(-2 x^2), which only
    adds power).  Under an alternative at sup-distance delta, D >= delta - dev_x - dev_y, and with probability
    >= power both deviations are under sqrt(log(4 / (1 - power)) / (2 n)) (resp. m).
    One-sample: c = sqrt(log(2 k / alpha) / (2 n)) and one deviation, under sqrt(log(2 / (1 - power)) / (2 n)).
    benchmarks/power_soundness.py measures the two-sample claim with sliced KS at d = 16.
    """
    n = max(int(num_samples), 1)
    if one_sample:
        return math.sqrt(math.log(2 * num_tests / alpha) / (2 * n)) + math.sqrt(math.log(2 / (1 - power)) / (2 * n))
    m = n if num_samples_y is None else max(int(num_samples_y), 1)
    level = math.log(4 * num_tests / alpha)
    miss = math.log(4 / (1 - power))
    return sum(math.sqrt(level / (2 * k)) + math.sqrt(miss / (2 * k)) for k in (n, m))


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()
    x = np.asarray(x, dtype=np.float64)
    return x[:, None] if x.ndim == 1 else x


def _permutation_test(gram: np.ndarray, n: int, num_permutations: int, rng: np.random.Generator):
    """Statistic z^T G z with z = +1/n on the first sample, -1/m on the second; permutation p-value."""
    N = gram.shape[0]
    m = N - n
    base = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    observed = float(base @ gram @ base)
    Z = np.stack([base[rng.permutation(N)] for _ in range(num_permutations)], axis=1)  # [N, P]
    perms = np.einsum("ip,ip->p", Z, gram @ Z)
    p = (1 + np.sum(perms >= observed - 1e-12 * abs(observed))) / (1 + num_permutations)
    return observed, float(p)


def mmd_test(x, y, num_permutations: int = 200, scales=(0.5, 1.0, 2.0), seed: int = 0, max_points: int = 2000) -> TestResult:
    """MMD^2 (V-statistic) with a sum of Gaussian kernels (characteristic), bandwidths = scales x median distance.

    x [n, d], y [m, d]; at most ``max_points`` of each are used (the Gram matrix is [n+m, n+m]).
    """
    x, y = _as_numpy(x)[:max_points], _as_numpy(y)[:max_points]
    z = np.concatenate([x, y])
    sq = np.maximum(((z[:, None, :] - z[None, :, :]) ** 2).sum(-1), 0.0)
    median = float(np.median(sq[np.triu_indices(len(z), 1)]))
    median = median if median > 0 else 1.0
    gram = sum(np.exp(-sq / (2 * (s**2) * median)) for s in scales)
    stat, p = _permutation_test(gram, len(x), num_permutations, np.random.default_rng(seed))
    return TestResult("mmd", stat, p, {"median_sq_distance": median, "scales": tuple(scales)})


def energy_test(x, y, num_permutations: int = 200, seed: int = 0, max_points: int = 2000) -> TestResult:
    """Energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| (= -z^T D z), permutation p-value."""
    x, y = _as_numpy(x)[:max_points], _as_numpy(y)[:max_points]
    z = np.concatenate([x, y])
    dist = np.sqrt(np.maximum(((z[:, None, :] - z[None, :, :]) ** 2).sum(-1), 0.0))
    stat, p = _permutation_test(-dist, len(x), num_permutations, np.random.default_rng(seed))
    return TestResult("energy", stat, p)


def sliced_ks_test(x, y, num_projections: int = 16, seed: int = 0) -> TestResult:
    """Two-sample KS (scipy) on the coordinate axes and random unit directions; Bonferroni-combined."""
    x, y = _as_numpy(x), _as_numpy(y)
    d = x.shape[1]
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((num_projections, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    dirs = np.concatenate([np.eye(d), dirs])
    results = [stats.ks_2samp(x @ v, y @ v) for v in dirs]
    p_values = [float(r.pvalue) for r in results]
    worst = int(np.argmin(p_values))
    return TestResult("sliced_ks", float(results[worst].statistic), bonferroni(p_values),
                      {"num_directions": len(dirs), "min_p": min(p_values)})


def pit_tests(x, cdfs) -> TestResult:
    """One-sample KS and Cramer-von Mises (scipy) of each coordinate against its exact CDF; Bonferroni.

    x [n, d]; cdfs: one callable per coordinate (numpy -> numpy)."""
    x = _as_numpy(x)
    p_values, statistics, per = [], [], {}
    for i, cdf in enumerate(cdfs):
        u = np.clip(cdf(x[:, i]), 0.0, 1.0)
        ks = stats.kstest(u, "uniform")
        cvm = stats.cramervonmises(u, "uniform")
        p_values += [float(ks.pvalue), float(cvm.pvalue)]
        statistics.append(float(ks.statistic))
        per[f"coord{i}"] = {"ks_p": float(ks.pvalue), "ks": float(ks.statistic), "cvm_p": float(cvm.pvalue)}
    return TestResult("pit_ks_cvm", max(statistics), bonferroni(p_values), per)


def gaussian_moment_tests(x, mean, cov) -> TestResult:
    """Whiten with the exact law, z = L^{-1}(x - mean), iid N(0, I) under H0, and test:

    mean:        n |zbar|^2 ~ chi2(d)                         (exact)
    scatter:     sum |z_i|^2 ~ chi2(n d), two-sided           (exact)
    covariance:  n (tr S - log det S - d) ~ chi2(d (d+1) / 2) (likelihood ratio, S = z^T z / n; asymptotic)
    radius:      KS of |z_i|^2 against chi2(d)
    coordinates: KS of each z_{.j} against N(0, 1)
    Bonferroni over all of them."""
    x = torch.as_tensor(x, dtype=torch.float64)
    n, d = x.shape
    chol = torch.linalg.cholesky(torch.as_tensor(cov, dtype=torch.float64))
    z = torch.linalg.solve_triangular(chol, (x - torch.as_tensor(mean, dtype=torch.float64)).T, upper=False).T.numpy()
    p = {}
    zbar = z.mean(0)
    p["mean"] = float(stats.chi2(d).sf(n * zbar @ zbar))
    total = float((z**2).sum())
    scatter = stats.chi2(n * d)
    p["scatter"] = float(min(1.0, 2 * min(scatter.cdf(total), scatter.sf(total))))
    S = z.T @ z / n
    sign, logdet = np.linalg.slogdet(S)
    lrt = n * (np.trace(S) - logdet - d) if sign > 0 else np.inf
    p["covariance"] = float(stats.chi2(d * (d + 1) // 2).sf(lrt))
    p["radius_ks"] = float(stats.kstest((z**2).sum(1), stats.chi2(d).cdf).pvalue)
    ks = [stats.kstest(z[:, j], "norm") for j in range(d)]
    for j, r in enumerate(ks):
        p[f"coord{j}_ks"] = float(r.pvalue)
    return TestResult("gaussian_moments", float(max(r.statistic for r in ks)), bonferroni(list(p.values())), p)
