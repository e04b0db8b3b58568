"""Certified checks: a false-fail rate and a false-pass rate that hold at every sample size, no asymptotics.

In the manner of TensorFlow Probability's statistical_testing: every check
takes ``false_fail_rate`` (a correct sampler fails with at most this
probability) and ``false_pass_rate`` (a sampler at least ``discrepancy`` away
passes with at most this probability), and comes with calculators
``min_discrepancy_detectable`` and ``min_num_samples``.  Every bound below is a
finite-sample inequality; nothing rests on a limit law.

One-dimensional laws (sup-distance between CDFs, "KS distance")
    statistic  D = sup_x |F_n(x) - F(x)|   (two-sample: sup_x |F_n(x) - G_m(x)|)
    false fail   DKW with Massart's constant: P(sup |F_n - F| > e) <= 2 exp(-2 n e^2),
                 for every F (atoms included).  Two-sample: both empirical CDFs
                 within their DKWM radius at false_fail_rate / 2 each.
    false pass   if sup |G - F| >= D at some x, the statistic is at least
                 |F_n(x) - F(x)| and F_n(x) is a binomial mean: one-sided
                 Hoeffding at that one point, P(F_n(x) - G(x) <= -t) <= exp(-2 n t^2)
                 (two-sample: the difference of two binomial means,
                 exp(-2 t^2 / (1/n + 1/m))).  So the detectable distance is the
                 threshold plus that one-point radius (sharper than TFP's second
                 DKWM radius, and the two-sample one uses the two-sample bound).

Finite tables (total variation of the joint law, or of a statistic's law)
    statistic  TV(p_hat, p) = max_A (p_hat(A) - p(A))   (two-sample: TV(p_hat, q_hat))
    false fail   the smaller of two thresholds, both fixed before the data:
                 * McDiarmid around the EXACT null mean: one sample moves TV by at
                   most 1/m, so P(TV >= E TV + t) <= exp(-2 m t^2); E TV under p
                   is computed exactly (De Moivre's binomial mean absolute
                   deviation, ``gof.expected_null_tv``).  Two-sample: E TV <=
                   0.5 sqrt((K - 1)(1/m1 + 1/m2)) for every p (Cauchy-Schwarz),
                   and bounded differences 1/m1, 1/m2.
                 * Weissman et al. (2003), the L1 deviation inequality, in its
                   one-sided-set form: P(TV >= t) <= (2^K - 2) exp(-2 m t^2)
                   (a union over the 2^K - 2 proper sets A of Hoeffding's bound
                   on p_hat(A) - p(A)); two-sample exp(-2 t^2 / (1/m1 + 1/m2)).
                 McDiarmid wins for large tables, Weissman for a handful of cells.
                 A sample in a cell of probability 0 fails outright (proof).
    false pass   TV(r, p) >= D means r(A) - p(A) >= D for one set A; the
                 statistic is at least p_hat(A) - p(A), so Hoeffding on that one
                 binomial mean gives the radius, whatever the number of cells.

Families (coordinates and projections of a diffusion sample, statistics of a
large target) spend false_fail_rate / J per member (Bonferroni); the false-pass
side needs no correction: one member at distance D is caught by itself.

Entry points: ``certify_exact`` (discrete sampler vs target), ``certify_same_law``
(two discrete samplers), ``certify_exact_diffusion`` (continuous, per
coordinate and projection).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy.special import ndtr

from autospec import Randomness
from verification.gof import expected_null_tv
from verification.running import run_sampler, sampler_name

__all__ = [
    "CertifiedResult", "dkwm_radius", "point_radius", "cdf_distance", "cdf_distance_two_sample", "cdf_threshold",
    "cdf_rejects", "cdf_two_sample_rejects", "sliced_two_sample_distances", "sliced_two_sample_rejects", "tv_to_table", "tv_between", "table_threshold", "table_rejects",
    "table_two_sample_rejects", "min_discrepancy_detectable", "min_num_samples", "certify_exact", "certify_same_law",
    "certify_exact_diffusion", "MAX_JOINT_CELLS",
]

MAX_JOINT_CELLS = 3**10  # larger tables are certified through the target's exact statistics
MAX_SAMPLES = 10**9  # the calculators give up above this (a message says so)
_GRID_CDF_TOLERANCE = 1e-9  # slack for numerically propagated (grid) chain CDFs, added to thresholds
_DIRECTION_SEED_OFFSET = 7_919
_REFERENCE_SEED_OFFSET = 1_000_003


def _rate(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def _size(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


# ---------------------------------------------------------------- radii
def dkwm_radius(num_samples: int, false_fail_rate: float) -> float:
    """e with P(sup |F_n - F| > e) <= false_fail_rate: sqrt(log(2 / rate) / (2 n)) (DKW, Massart's constant 2)."""
    return math.sqrt(math.log(2.0 / false_fail_rate) / (2.0 * num_samples))


def point_radius(inverse_sizes: float, rate: float) -> float:
    """One-sided Hoeffding radius of a (difference of) binomial mean(s): sqrt(log(1 / rate) * s / 2).

    inverse_sizes s: 1 / n for one sample, 1 / n + 1 / m for a difference of two.
    """
    return math.sqrt(math.log(1.0 / rate) * inverse_sizes / 2.0)


# ---------------------------------------------------------------- one-dimensional laws
def cdf_distance(samples, cdf, left_continuous_cdf=None) -> np.ndarray:
    """sup_x |F_n(x) - F(x)| for samples [..., n] (a batch of samples of size n each) -> [...].

    cdf: numpy -> numpy, the exact P(X <= x).  For laws with atoms pass
    ``left_continuous_cdf`` (P(X < x)) as well; without it F is taken continuous.
    """
    x = np.sort(np.asarray(samples, dtype=np.float64), axis=-1)
    n = x.shape[-1]
    upper = np.asarray(cdf(x), dtype=np.float64)
    lower = upper if left_continuous_cdf is None else np.asarray(left_continuous_cdf(x), dtype=np.float64)
    i = np.arange(1, n + 1, dtype=np.float64)
    # F_n jumps at each order statistic: compare F_n(x_(i)) = i/n with F(x_(i)), F_n(x_(i)-) = (i-1)/n with F(x_(i)-)
    return np.maximum((i / n - upper).max(-1), (lower - (i - 1) / n).max(-1))


def cdf_distance_two_sample(x, y) -> np.ndarray:
    """sup_t |F_x(t) - F_y(t)| for x [..., n1], y [..., n2] -> [...] (ties handled: compared after each tie group)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n1, n2 = x.shape[-1], y.shape[-1]
    values = np.concatenate([x, y], axis=-1)
    steps = np.concatenate([np.full(x.shape, 1.0 / n1), np.full(y.shape, -1.0 / n2)], axis=-1)
    order = np.argsort(values, axis=-1)  # ties need no stable order: gaps are read after each tie group
    values = np.take_along_axis(values, order, -1)
    gap = np.cumsum(np.take_along_axis(steps, order, -1), axis=-1)
    last_of_tie = np.concatenate([values[..., 1:] != values[..., :-1], np.ones(values.shape[:-1] + (1,), bool)], -1)
    return np.where(last_of_tie, np.abs(gap), 0.0).max(-1)


def cdf_threshold(num_samples: int, false_fail_rate: float, num_samples2: int | None = None) -> float:
    """Reject above this sup-distance: DKWM radius (two-sample: sum of both radii at false_fail_rate / 2)."""
    if num_samples2 is None:
        return dkwm_radius(num_samples, false_fail_rate)
    return dkwm_radius(num_samples, false_fail_rate / 2) + dkwm_radius(num_samples2, false_fail_rate / 2)


def cdf_rejects(samples, cdf, false_fail_rate: float, left_continuous_cdf=None) -> np.ndarray:
    """One-sample certified CDF test on samples [..., n] -> bool [...]: reject when D > DKWM radius."""
    samples = np.asarray(samples, dtype=np.float64)
    threshold = cdf_threshold(samples.shape[-1], _rate("false_fail_rate", false_fail_rate))
    return cdf_distance(samples, cdf, left_continuous_cdf) > threshold


def cdf_two_sample_rejects(x, y, false_fail_rate: float) -> np.ndarray:
    """Two-sample certified CDF test, x [..., n1], y [..., n2] -> bool [...]."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    threshold = cdf_threshold(x.shape[-1], _rate("false_fail_rate", false_fail_rate), y.shape[-1])
    return cdf_distance_two_sample(x, y) > threshold


def sliced_two_sample_distances(x, y, directions) -> np.ndarray:
    """sup-distance between the empirical CDFs of x.v and y.v per direction: x [..., n1, d], y [..., n2, d],
    directions [J, d] -> [..., J]."""
    x, y, v = (np.asarray(a, dtype=np.float64) for a in (x, y, directions))
    return cdf_distance_two_sample(np.swapaxes(x @ v.T, -1, -2), np.swapaxes(y @ v.T, -1, -2))


def sliced_two_sample_rejects(x, y, directions, false_fail_rate: float) -> np.ndarray:
    """Certified sliced two-sample test: reject when some direction's distance exceeds its threshold at
    false_fail_rate / J.  x [..., n1, d], y [..., n2, d], directions [J, d] -> bool [...]."""
    ff = _rate("false_fail_rate", false_fail_rate) / len(directions)
    threshold = cdf_threshold(np.shape(x)[-2], ff, np.shape(y)[-2])
    return (sliced_two_sample_distances(x, y, directions) > threshold).any(-1)


# ---------------------------------------------------------------- finite tables
def _table(probs) -> np.ndarray:
    probs = np.asarray(probs.cpu() if isinstance(probs, torch.Tensor) else probs, dtype=np.float64).reshape(-1)
    if probs.size < 2 or not np.isfinite(probs).all() or (probs < 0).any() or abs(probs.sum() - 1) > 1e-9:
        raise ValueError(f"probs must be a finite law on >= 2 cells summing to 1, got {probs.size} cells summing to {probs.sum():.12g}")
    return probs


def tv_to_table(counts, probs) -> np.ndarray:
    """TV(p_hat, p) for counts [..., K] -> [...]; infinite where a cell of probability 0 was observed."""
    counts = np.asarray(counts, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    m = counts.sum(-1)
    tv = 0.5 * np.abs(counts / np.maximum(m, 1)[..., None] - probs).sum(-1)
    return np.where((counts[..., probs <= 0] > 0).any(-1), np.inf, tv)


def tv_between(counts1, counts2) -> np.ndarray:
    """TV(p_hat, q_hat) between the empirical laws of counts [..., K] and [..., K] -> [...]."""
    c1, c2 = np.asarray(counts1, dtype=np.float64), np.asarray(counts2, dtype=np.float64)
    return 0.5 * np.abs(c1 / c1.sum(-1, keepdims=True) - c2 / c2.sum(-1, keepdims=True)).sum(-1)


def _log_proper_sets(cells: int) -> float:
    """log(2^K - 2), the number of proper non-empty subsets of K cells."""
    return cells * math.log(2.0) + math.log1p(-(2.0 ** (1 - cells))) if cells >= 2 else -math.inf


def table_threshold(num_samples: int, false_fail_rate: float, *, probs=None, cells: int | None = None,
                    num_samples2: int | None = None) -> tuple[float, str]:
    """(threshold, which bound) for the TV statistic; reject above it.

    One-sample (``probs`` given): min of McDiarmid around the exact null mean and Weissman.
    Two-sample (``cells`` K and ``num_samples2`` given): the same two bounds for TV(p_hat, q_hat) under a common law.
    Both thresholds are fixed before the data, so taking the smaller keeps the rate.
    """
    log_rate = math.log(1.0 / false_fail_rate)
    if probs is not None:
        probs = np.asarray(probs, dtype=np.float64).reshape(-1)
        k = int((probs > 0).sum())
        if k < 2:
            return 0.0, "one cell: TV is 0 under the null"
        s = 1.0 / num_samples
        mcdiarmid = expected_null_tv(probs, num_samples) + math.sqrt(log_rate * s / 2)
    else:
        if cells is None or num_samples2 is None:
            raise ValueError("table_threshold needs probs (one-sample) or cells and num_samples2 (two-sample)")
        k = int(cells)
        s = 1.0 / num_samples + 1.0 / num_samples2
        mcdiarmid = 0.5 * math.sqrt((k - 1) * s) + math.sqrt(log_rate * s / 2)
    weissman = math.sqrt((_log_proper_sets(k) + log_rate) * s / 2)
    return (mcdiarmid, "mcdiarmid") if mcdiarmid <= weissman else (weissman, "weissman")


def table_rejects(counts, probs, false_fail_rate: float) -> np.ndarray:
    """One-sample certified TV test on counts [..., K] (all rows of one size m) -> bool [...]."""
    counts = np.asarray(counts, dtype=np.float64)
    probs = _table(probs)
    m = int(round(float(counts.reshape(-1, counts.shape[-1])[0].sum())))
    threshold, _ = table_threshold(m, _rate("false_fail_rate", false_fail_rate), probs=probs)
    return tv_to_table(counts, probs) > threshold


def table_two_sample_rejects(counts1, counts2, false_fail_rate: float) -> np.ndarray:
    """Two-sample certified TV test on counts [..., K], [..., K] -> bool [...]."""
    c1, c2 = np.asarray(counts1, dtype=np.float64), np.asarray(counts2, dtype=np.float64)
    m1 = int(round(float(c1.reshape(-1, c1.shape[-1])[0].sum())))
    m2 = int(round(float(c2.reshape(-1, c2.shape[-1])[0].sum())))
    threshold, _ = table_threshold(m1, _rate("false_fail_rate", false_fail_rate), cells=c1.shape[-1], num_samples2=m2)
    return tv_between(c1, c2) > threshold


# ---------------------------------------------------------------- calculators
def min_discrepancy_detectable(num_samples: int, false_fail_rate: float = 1e-6, false_pass_rate: float = 1e-3, *,
                               probs=None, cells: int | None = None, num_samples2: int | None = None,
                               num_tests: int = 1) -> float:
    """Smallest discrepancy a certified check with these samples detects with probability >= 1 - false_pass_rate.

    The discrepancy is the TV of a finite law when ``probs`` (one-sample against
    that table) or ``cells`` (two-sample on K cells, ``num_samples2`` in the second
    sample, default equal) is given, else the sup-distance between one-dimensional
    CDFs (two-sample when ``num_samples2`` is given).  num_tests: members of a
    Bonferroni family (each at false_fail_rate / num_tests).
    """
    m = _size("num_samples", num_samples)
    ff = _rate("false_fail_rate", false_fail_rate) / _size("num_tests", num_tests)
    fp = _rate("false_pass_rate", false_pass_rate)
    if probs is not None and cells is not None:
        raise ValueError("give probs (one-sample) or cells (two-sample), not both")
    two_sample = cells is not None or num_samples2 is not None
    m2 = _size("num_samples2", num_samples2) if num_samples2 is not None else m
    s = 1.0 / m + (1.0 / m2 if two_sample else 0.0)
    if probs is not None:
        threshold, _ = table_threshold(m, ff, probs=_table(probs))
    elif cells is not None:
        threshold, _ = table_threshold(m, ff, cells=_size("cells", cells), num_samples2=m2)
    else:
        threshold = cdf_threshold(m, ff, m2 if two_sample else None)
    return threshold + point_radius(s, fp)


def min_num_samples(discrepancy: float, false_fail_rate: float = 1e-6, false_pass_rate: float = 1e-3, *,
                    probs=None, cells: int | None = None, two_sample: bool = False, num_tests: int = 1) -> int:
    """Smallest m (per sample, equal sizes for two-sample) with min_discrepancy_detectable(m, ...) <= discrepancy."""
    if isinstance(discrepancy, bool) or not isinstance(discrepancy, (int, float)) or not 0 < discrepancy <= 1:
        raise ValueError(f"discrepancy must be a number in (0, 1], got {discrepancy!r}")
    two_sample = two_sample or cells is not None

    def detectable(m: int) -> float:
        return min_discrepancy_detectable(m, false_fail_rate, false_pass_rate, probs=probs, cells=cells,
                                          num_samples2=m if two_sample else None, num_tests=num_tests)

    if detectable(MAX_SAMPLES) > discrepancy:
        raise ValueError(f"no sample size up to {MAX_SAMPLES:.0e} detects discrepancy {discrepancy:g} at these rates")
    lo, hi = 0, 1
    while detectable(hi) > discrepancy:  # every bound decreases roughly like 1 / sqrt(m)
        lo, hi = hi, min(2 * hi, MAX_SAMPLES)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if detectable(mid) <= discrepancy else (mid, hi)
    return hi


# ---------------------------------------------------------------- results
@dataclass
class CertifiedResult:
    """A certified verdict; ``guarantee`` says in words what the two rates bound."""

    sampler: str
    target: str
    test: str
    passed: bool
    statistic: float  # the largest discrepancy / threshold ratio's numerator (see details for every member)
    threshold: float
    num_samples: int
    false_fail_rate: float
    false_pass_rate: float
    detectable: float  # discrepancy detected with probability >= 1 - false_pass_rate
    discrepancy_of: str
    guarantee: str
    mean_rounds: float | None = None
    details: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}

    def summary(self) -> str:
        return (f"{self.verdict.upper()} (certified): {self.sampler} on {self.target}: {self.test}, "
                f"statistic {self.statistic:.4g} vs threshold {self.threshold:.4g}, {self.num_samples} samples\n"
                f"  {self.guarantee}")


def _guarantee(discrepancy_of: str, detectable: float, ff: float, fp: float) -> str:
    return (f"if the {discrepancy_of} is >= {detectable:.4g}, this check fails with probability >= {1 - fp:.6g}; "
            f"a correct sampler fails with probability <= {ff:g}. Finite-sample bounds, no asymptotics.")


def _counts(values: torch.Tensor, q: int) -> np.ndarray:
    n = values.shape[1]
    strides = q ** torch.arange(n - 1, -1, -1)
    return torch.bincount((values.cpu().to(torch.long) * strides).sum(-1), minlength=q**n).numpy()


def _joint(target) -> np.ndarray | None:
    probs = getattr(target, "probs", None)
    if isinstance(probs, torch.Tensor) and probs.numel() <= MAX_JOINT_CELLS:
        return probs.to(torch.float64).reshape(-1).cpu().numpy()
    return None


def _statistics(target, extra) -> list:
    from autospec.targets.statistics import ExactStatistic, statistic_law

    stats_ = list(target.exact_statistics()) if hasattr(target, "exact_statistics") else []
    for item in extra or []:
        stats_.append(item if isinstance(item, ExactStatistic) else statistic_law(target, item))
    if not stats_:
        raise ValueError(f"target {getattr(target, 'name', target)!r} has neither a probability table of at most "
                         f"{MAX_JOINT_CELLS} cells nor exact statistic laws; nothing to certify against")
    return stats_


def _target_name(target) -> str:
    return str(getattr(target, "name", type(target).__name__))


def certify_exact(sampler, target, false_fail_rate: float = 1e-6, false_pass_rate: float = 1e-3, tv: float = 0.1,
                  seed: int = 0, num_samples: int | None = None, device: str | torch.device = "cpu",
                  statistics=None) -> CertifiedResult:
    """Certified one-sample check of a discrete sampler against the target's exact law.

    Small table (<= MAX_JOINT_CELLS cells): the TV of the joint law.  Larger
    targets: the TV of each exact statistic's law (single and pair marginals,
    counts, ``statistics``), Bonferroni over them.  The budget is the
    ``min_num_samples`` for ``tv`` unless ``num_samples`` is given; the result
    states the discrepancy detected at the budget used.
    """
    ff, fp = _rate("false_fail_rate", false_fail_rate), _rate("false_pass_rate", false_pass_rate)
    table = _joint(target)
    stats_ = [] if table is not None else _statistics(target, statistics)
    members = [("joint law", table)] if table is not None else [(f"law of {s.name}", s.probs.numpy()) for s in stats_]
    j = len(members)
    if num_samples is None:
        num_samples = max(min_num_samples(tv, ff, fp, probs=p, num_tests=j) for _, p in members)
    m = _size("num_samples", num_samples)
    out = run_sampler(sampler, target.oracle(device), m, Randomness(seed, device=device))
    rows = []
    if table is not None:
        observed = [_counts(out.values, target.q)]
    else:
        observed = [s.counts(out.values).numpy() for s in stats_]
    for (name, probs), counts in zip(members, observed):
        threshold, bound = table_threshold(m, ff / j, probs=probs)
        stat = float(tv_to_table(counts, probs))
        rows.append({"member": name, "tv": stat, "threshold": threshold, "bound": bound, "rejects": stat > threshold,
                     "detectable": min_discrepancy_detectable(m, ff, fp, probs=probs, num_tests=j)})
    worst = max(rows, key=lambda r: r["tv"] - r["threshold"])
    detectable = max(r["detectable"] for r in rows)
    of = "TV between the sampler's joint law and the target's" if table is not None else (
        f"TV between the sampler's and the target's law of some tested statistic ({j} statistics; not the joint law)")
    return CertifiedResult(
        sampler=sampler_name(sampler), target=_target_name(target),
        test="certified TV, joint table" if table is not None else f"certified TV, {j} exact statistics (Bonferroni)",
        passed=not any(r["rejects"] for r in rows), statistic=worst["tv"], threshold=worst["threshold"],
        num_samples=m, false_fail_rate=ff, false_pass_rate=fp, detectable=detectable, discrepancy_of=of,
        guarantee=_guarantee(of, detectable, ff, fp),
        mean_rounds=float(out.rounds.double().mean()), details={"members": rows})


def certify_same_law(sampler_a, sampler_b, target, false_fail_rate: float = 1e-6, false_pass_rate: float = 1e-3,
                     tv: float = 0.1, seed: int = 0, num_samples: int | None = None,
                     device: str | torch.device = "cpu") -> CertifiedResult:
    """Certified two-sample check: do two discrete samplers (on the same target's oracle) have one law?

    TV between their joint laws on the q^n cells (num_samples from each); the
    bound does not use the target's table, only its size.
    """
    ff, fp = _rate("false_fail_rate", false_fail_rate), _rate("false_pass_rate", false_pass_rate)
    cells = target.q**target.n
    if cells > MAX_JOINT_CELLS:
        raise ValueError(f"certify_same_law compares joint tables of at most {MAX_JOINT_CELLS} cells, got q^n = {cells}")
    if num_samples is None:
        num_samples = min_num_samples(tv, ff, fp, cells=cells)
    m = _size("num_samples", num_samples)
    a = run_sampler(sampler_a, target.oracle(device), m, Randomness(seed, device=device))
    b = run_sampler(sampler_b, target.oracle(device), m, Randomness(seed + _REFERENCE_SEED_OFFSET, device=device))
    threshold, bound = table_threshold(m, ff, cells=cells, num_samples2=m)
    stat = float(tv_between(_counts(a.values, target.q), _counts(b.values, target.q)))
    detectable = min_discrepancy_detectable(m, ff, fp, cells=cells, num_samples2=m)
    of = "TV between the two samplers' joint laws"
    return CertifiedResult(
        sampler=f"{sampler_name(sampler_a)} vs {sampler_name(sampler_b)}", target=_target_name(target),
        test="certified two-sample TV, joint table", passed=stat <= threshold, statistic=stat, threshold=threshold,
        num_samples=m, false_fail_rate=ff, false_pass_rate=fp, detectable=detectable, discrepancy_of=of,
        guarantee=_guarantee(of, detectable, ff, fp), details={"bound": bound})


# ---------------------------------------------------------------- diffusion (one-dimensional projections)
def _directions(dim: int, num_projections: int, seed: int) -> np.ndarray:
    """The coordinate axes and ``num_projections`` random unit directions [J, d], fixed before any sample."""
    rng = np.random.default_rng(seed + _DIRECTION_SEED_OFFSET)
    random = rng.standard_normal((num_projections, dim))
    random /= np.linalg.norm(random, axis=1, keepdims=True)
    return np.concatenate([np.eye(dim), random])


def certify_exact_diffusion(sampler, target, false_fail_rate: float = 1e-6, false_pass_rate: float = 1e-3,
                            ks: float = 0.05, seed: int = 0, num_samples: int | None = None,
                            num_projections: int = 16) -> CertifiedResult:
    """Certified check of a diffusion sampler against the K-step chain's law, one-dimensional projections.

    Gaussian targets: the chain law is N(mean, cov) exactly, so every projection
    v.x has an exact normal CDF: one-sample DKWM on the d axes and
    ``num_projections`` random directions.  Targets with a grid chain law:
    one-sample DKWM per coordinate (threshold widened by the grid's CDF error
    allowance).  Otherwise: two-sample DKWM on the same projections against
    DiffusionSequential on the same times.  Bonferroni over the J projections.
    ks: the sup-distance between CDFs (along some tested direction) to detect.
    """
    from autospec.diffusion.chain_law import GaussianChainLaw
    from autospec.samplers.diffusion_sequential import DiffusionSequential

    ff, fp = _rate("false_fail_rate", false_fail_rate), _rate("false_pass_rate", false_pass_rate)
    times = getattr(sampler, "times", None)
    if times is None:
        raise TypeError(f"sampler {sampler!r} has no attribute 'times' (its time grid); certify_exact_diffusion needs it")
    law = target.chain_law(times) if hasattr(target, "chain_law") else None
    d = int(target.dim)
    if isinstance(law, GaussianChainLaw):
        directions, kind, slack = _directions(d, num_projections, seed), "exact Gaussian chain law", 0.0
    elif law is not None:
        directions, kind, slack = np.eye(d), "exact grid chain law", _GRID_CDF_TOLERANCE
    else:
        directions, kind, slack = _directions(d, num_projections, seed), "two-sample vs DiffusionSequential", 0.0
    j = len(directions)
    two_sample = law is None
    if num_samples is None:
        num_samples = min_num_samples(max(ks - 2 * slack, 1e-12), ff, fp, two_sample=two_sample, num_tests=j)
    m = _size("num_samples", num_samples)
    out = sampler.sample(target.denoiser(), m, Randomness(seed))
    values = getattr(out, "values", out)
    if not isinstance(values, torch.Tensor) or tuple(values.shape) != (m, d):
        raise ValueError(f"sampler {sampler!r} returned values of shape {list(getattr(values, 'shape', []))}, expected [{m}, {d}]")
    projected = (values.detach().cpu().to(torch.float64).numpy() @ directions.T).T  # [J, m]
    threshold = cdf_threshold(m, ff / j, m if two_sample else None) + slack
    if isinstance(law, GaussianChainLaw):
        mean, cov = law.mean.cpu().numpy(), law.cov.cpu().numpy()
        centre = directions @ mean
        scale = np.sqrt(np.einsum("jd,de,je->j", directions, cov, directions))
        distances = cdf_distance(projected, lambda x: ndtr((x - centre[:, None]) / scale[:, None]))
    elif law is not None:
        distances = np.array([float(cdf_distance(projected[i], lambda x, i=i: law.cdf(x, i))) for i in range(j)])
    else:
        reference = DiffusionSequential(times, device=getattr(sampler, "device", "cpu")).sample(
            target.denoiser(), m, Randomness(seed + _REFERENCE_SEED_OFFSET))
        distances = sliced_two_sample_distances(values.detach().cpu().numpy(), reference.values.detach().cpu().numpy(),
                                                directions)
    worst = int(np.argmax(distances))
    detectable = min_discrepancy_detectable(m, ff, fp, num_samples2=m if two_sample else None, num_tests=j) + 2 * slack
    of = "sup-distance between the sampler's and the chain's CDFs along some tested direction"
    rounds = getattr(out, "rounds", None)
    return CertifiedResult(
        sampler=sampler_name(sampler), target=repr(target), test=f"certified DKWM, {kind}, {j} directions (Bonferroni)",
        passed=bool((distances <= threshold).all()), statistic=float(distances[worst]), threshold=threshold,
        num_samples=m, false_fail_rate=ff, false_pass_rate=fp, detectable=detectable, discrepancy_of=of,
        guarantee=_guarantee(of, detectable, ff, fp),
        mean_rounds=float(rounds.double().mean()) if isinstance(rounds, torch.Tensor) else None,
        details={"directions": j, "worst_direction": worst, "distances": distances.tolist(),
                 "grid_cdf_allowance": slack})
