"""check_exact: a one-sample test of a sampler's output against the target's exact law.

The tests live in ``verification.gof``, the sample-size planning in
``verification.power``.  On a table small enough to test directly the default
(``test="auto"``) combines the joint test (pooled Pearson, or the corrected
chi-square when the table is sparse) with the family of exact marginal laws
(Holm), Bonferroni over the two.  Otherwise the target's exact statistic laws
(single and pairwise marginals, counts, user functions) are tested, Holm
corrected.  A sample in a cell of probability zero fails the check outright:
it is proof of inexactness.

Budget: pass ``num_samples``, or ``tv=eps`` to get the sample size whose
min_detectable_tv is eps; by default (neither) the size that detects
``DEFAULT_TV`` with power 0.99.  The result carries ``min_detectable_tv``: any
sampler at TV >= that from the target is rejected with probability >= 0.99
(for the statistics path: TV of some tested statistic's law).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from autospec import Randomness
from verification import gof, power
from verification.gof import tv_upper_bound
from verification.running import run_sampler, sampler_name

__all__ = [
    "CheckResult", "check_exact", "assert_sampler_exact", "tv_upper_bound", "DEFAULT_NUM_SAMPLES",
    "DEFAULT_TV", "default_num_samples",
]

DEFAULT_NUM_SAMPLES = 20_000  # used only when a budget cannot be planned (no table, no statistics)
DEFAULT_TV = 0.02  # the default budget detects any deviation of this TV with power 0.99
MAX_DEFAULT_SAMPLES = 400_000
MAX_JOINT_CELLS = 3**10  # larger tables are tested through their exact statistics
MIN_EXPECTED = gof.MIN_EXPECTED  # pool cells expected to hold fewer samples than this
TV_CONFIDENCE = gof.TV_CONFIDENCE


@dataclass
class CheckResult:
    sampler: str
    target: str
    test: str
    statistic: float
    p_value: float
    alpha: float
    passed: bool
    num_samples: int
    tv_estimate: float
    tv_upper: float
    tv_confidence: float
    worst_cells: list[dict] = field(default_factory=list)
    min_detectable_tv: float | None = None
    mean_rounds: float | None = None
    mean_queries: float | None = None
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        lines = [
            f"{verdict}: {self.sampler} on {self.target}: {self.test} statistic {self.statistic:.4g}, "
            f"p = {self.p_value:.3g} (alpha = {self.alpha:g}), {self.num_samples} samples",
            f"  TV estimate {self.tv_estimate:.4f}, {self.tv_confidence:.0%} upper bound {self.tv_upper:.4f}",
        ]
        if self.min_detectable_tv is not None:
            lines.append(f"  smallest TV detected with power 0.99 at this size: {self.min_detectable_tv:.4f}")
        for cell in self.worst_cells[:5]:
            lines.append(
                f"  {cell.get('statistic', 'cell')} {cell['cell']}: observed {cell['observed']}, "
                f"expected {cell['expected']:.1f} (z = {cell['z']:.2f})"
            )
        return "\n".join(lines)


def _worst_cells(observed, probs, labels, statistic: str, count: int = 5) -> list[dict]:
    total = observed.sum()
    expected = probs * total
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(expected > 0, (observed - expected) / np.sqrt(np.where(expected > 0, expected, 1)), np.where(observed > 0, np.inf, 0.0))
    top = np.argsort(-np.abs(z))[:count]
    return [
        {"statistic": statistic, "cell": labels(int(i)), "observed": int(observed[i]), "expected": float(expected[i]), "z": float(z[i])}
        for i in top
        if observed[i] > 0 or expected[i] > 0
    ]


def _joint_table(target) -> torch.Tensor | None:
    probs = getattr(target, "probs", None)
    if isinstance(probs, torch.Tensor) and probs.numel() <= MAX_JOINT_CELLS:
        return probs.to(torch.float64).reshape(-1).cpu()
    return None


def _statistics_of(target, extra) -> list:
    from autospec.targets.statistics import ExactStatistic, statistic_law

    stats_ = list(target.exact_statistics()) if hasattr(target, "exact_statistics") else []
    for item in extra or []:
        stats_.append(item if isinstance(item, ExactStatistic) else statistic_law(target, item))
    return stats_


def default_num_samples(target, alpha: float = 1e-4, tv: float | None = None, test: str = "auto", statistics=None) -> int:
    """Samples for which ``test`` detects any deviation of TV ``tv`` (DEFAULT_TV) with power 0.99."""
    tv = DEFAULT_TV if tv is None else tv
    table = _joint_table(target)
    if table is not None and test != "marginals":
        kind = "pearson" if test in ("pearson", "chi2-joint") else test
        m = power.samples_for_tv(tv, kind, alpha, probs=table.numpy())
    else:
        stats_ = _statistics_of(target, statistics)
        if not stats_:
            return DEFAULT_NUM_SAMPLES
        m = power.samples_for_tv(tv, "marginals", alpha, statistics=stats_)
    return int(min(m, MAX_DEFAULT_SAMPLES)) if tv == DEFAULT_TV else int(m)


def check_exact(
    sampler,
    target,
    num_samples: int | None = None,
    alpha: float = 1e-4,
    seed: int = 0,
    device: str | torch.device = "cpu",
    *,
    tv: float | None = None,
    test: str = "auto",
    statistics=None,
) -> CheckResult:
    """Test H0 "the sampler's output law is the target's" at level ``alpha``.

    num_samples: the budget; or ``tv``: plan the budget so that TV >= tv is
    detected with power 0.99; neither: plan it for DEFAULT_TV.  test: "auto"
    (default), "pearson", "likelihood-ratio", "corrected" (joint tests) or
    "marginals".  statistics: extra exact statistics (ExactStatistic, or
    functions of the sample whose law is enumerated from the table).
    """
    if not isinstance(alpha, float) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a float in (0, 1), got {alpha!r}")
    if test not in gof.TESTS + ("chi2-joint",):
        raise ValueError(f"test must be one of {gof.TESTS}, got {test!r}")
    if num_samples is not None and tv is not None:
        raise ValueError("give either num_samples or tv (the deviation to detect), not both")
    if tv is not None and not (isinstance(tv, (int, float)) and 0 < tv <= 1):
        raise ValueError(f"tv must be a number in (0, 1], got {tv!r}")
    if num_samples is None:
        num_samples = default_num_samples(target, alpha, tv, test, statistics)
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int (or None for the planned default), got {num_samples!r}")
    out = run_sampler(sampler, target.oracle(device), num_samples, Randomness(seed, device=device))
    n, q = target.n, target.q
    table = _joint_table(target)
    if table is not None and test != "marginals":
        observed = torch.bincount(_cell_index(out.values, q), minlength=q**n).numpy()
        probs = table.numpy()
        kind = "pearson" if test == "chi2-joint" else test
        if kind == "auto":
            stats_ = _statistics_of(target, statistics)
            result = gof.auto_test(observed, probs, out.values, stats_, alpha=alpha, seed=seed)
            detectable = power.min_detectable_tv("auto", num_samples, alpha, probs=probs)
        elif kind == "corrected":
            result = gof.corrected_chisquare(observed, probs, alpha=alpha, seed=seed)
            detectable = power.min_detectable_tv("corrected", num_samples, alpha, probs=probs)
        else:
            result = (gof.pearson if kind == "pearson" else gof.likelihood_ratio)(observed, probs)
            detectable = power.min_detectable_tv(kind, num_samples, alpha, probs=probs)
        statistic, p_value = result.statistic, result.p_value
        tv_hat = gof.tv_plug_in(observed, probs)
        worst = _worst_cells(observed, probs, lambda i: [int(v) for v in np.unravel_index(i, (q,) * n)], "cell")
        test_name = "chi2-joint" if kind == "pearson" else result.test
        details = {"degrees_of_freedom": result.dof, **result.details,
                   "tv_bias_corrected": gof.tv_bias_corrected(observed, probs),
                   "min_detectable_tv_of": "joint law", "power": power.DEFAULT_POWER}
        cells = q**n
    else:
        stats_ = _statistics_of(target, statistics)
        statistic, p_value, tv_hat, worst, cells, details = _check_statistics(stats_, target, out.values)
        test_name = "chi2-statistics-holm"
        detectable = power.min_detectable_tv("marginals", num_samples, alpha, statistics=stats_)
        details.update(min_detectable_tv_of="law of some tested statistic (not the joint)", power=power.DEFAULT_POWER)
    return CheckResult(
        sampler=sampler_name(sampler),
        target=str(getattr(target, "name", type(target).__name__)),
        test=test_name,
        statistic=float(statistic),
        p_value=float(p_value),
        alpha=alpha,
        passed=bool(p_value > alpha),
        num_samples=num_samples,
        tv_estimate=tv_hat,
        tv_upper=tv_upper_bound(tv_hat, cells, num_samples),
        tv_confidence=gof.TV_CONFIDENCE,
        worst_cells=worst,
        min_detectable_tv=float(detectable),
        mean_rounds=float(out.rounds.double().mean()) if num_samples else None,
        mean_queries=float(out.queries.double().mean()) if num_samples else None,
        details=details,
    )


def _cell_index(values: torch.Tensor, q: int) -> torch.Tensor:
    n = values.shape[1]
    strides = q ** torch.arange(n - 1, -1, -1)
    return (values.cpu().to(torch.long) * strides).sum(-1)


def _check_statistics(statistics, target, values):
    if not statistics:
        raise ValueError(
            f"target {getattr(target, 'name', target)!r} has neither a small probability table nor exact statistic "
            "laws (exact_statistics()); nothing to test against"
        )
    family = gof.marginal_tests(values, statistics, method="holm")
    rows = family.details["statistics"]
    for row, stat in zip(rows, statistics):
        observed = stat.counts(values).numpy()
        row["worst"] = _worst_cells(observed, stat.probs.numpy(), lambda i, s=stat: s.labels[i], stat.name, count=3)
        row["p_holm"] = row["p_adjusted"]
    worst_cells = sorted((c for r in rows for c in r["worst"]), key=lambda c: -abs(c["z"]))[:5]
    tv_row = max(rows, key=lambda r: r["tv"])
    details = {"statistics": rows, "correction": "holm", "tv_of": tv_row["statistic"]}
    return family.statistic, family.p_value, tv_row["tv"], worst_cells, tv_row["cells"], details


def assert_sampler_exact(sampler, target, **kwargs) -> CheckResult:
    """check_exact, raising AssertionError with the evidence when it fails."""
    result = check_exact(sampler, target, **kwargs)
    if not result.passed:
        raise AssertionError("sampler is not exact:\n" + result.summary())
    return result
