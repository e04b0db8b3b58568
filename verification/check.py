"""check_exact: a one-sample test of a sampler's output against the target's exact law.

The tests live in ``verification.gof``, the sample-size planning in
``verification.power``.  On a table small enough to test directly the default
(``test="auto"``) combines pooled Pearson on the joint, the corrected
chi-square when the table is sparse, and the family of exact marginal laws
into one max-statistic, calibrated jointly by Monte Carlo under the exact
multinomial null (no asymptotic law decides anything; see gof).  Otherwise
the target's exact statistic laws (single and pairwise marginals, counts, user
functions) are tested, each by its own Monte Carlo test, Holm over the family.
A sample in a cell of probability zero fails the check outright: it is proof
of inexactness.

Verdicts.  "fail": the p-value is <= alpha (for an exact sampler this happens
with probability <= alpha, exactly: Monte Carlo p-values are valid by
construction).  "inconclusive": the check could not have seen a deviation of
TV ``tolerance`` (its min_detectable_tv is larger), or the Monte Carlo budget
cannot resolve alpha; ``passed`` is False and ``assert_sampler_exact`` raises
with the sample size that would be needed.  "pass": otherwise.

Budget: pass ``num_samples``, or ``tv=eps`` to get the sample size whose
min_detectable_tv is eps; by default (neither) the size that detects
``DEFAULT_TV`` with power 0.99.  The result carries ``min_detectable_tv``:
what it bounds is in ``details["min_detectable_tv_of"]`` (the joint law's TV
over power's direction family, or the TV of some tested statistic's law).
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
    "DEFAULT_TV", "DEFAULT_TOLERANCE", "default_num_samples",
]

DEFAULT_NUM_SAMPLES = 20_000  # used only when a budget cannot be planned (no table, no statistics)
DEFAULT_TV = 0.02  # the default budget detects any deviation of this TV with power 0.99
DEFAULT_TOLERANCE = 0.5  # a check that cannot detect TV this large is inconclusive, not a pass
MAX_DEFAULT_SAMPLES = 400_000
MAX_JOINT_CELLS = 3**10  # larger tables are tested through their exact statistics
MIN_EXPECTED = gof.MIN_EXPECTED  # pool cells expected to hold fewer samples than this
TV_CONFIDENCE = gof.TV_CONFIDENCE


@dataclass
class CheckResult:
    """The evidence of one check.  ``verdict``: "pass" / "fail" / "inconclusive" (``passed`` is verdict == "pass").

    tv_estimate: plug-in TV of the joint law (joint path) or of the law of the statistic named ``tv_of`` (statistics
    path).  tv_upper: upper confidence bound (level tv_confidence) on the JOINT TV; None on the statistics path,
    where no joint bound exists.  min_detectable_tv: see details["min_detectable_tv_of"] for what it bounds.
    """

    sampler: str
    target: str
    test: str
    statistic: float
    p_value: float
    alpha: float
    passed: bool
    num_samples: int
    tv_estimate: float
    tv_upper: float | None
    tv_confidence: float
    worst_cells: list[dict] = field(default_factory=list)
    min_detectable_tv: float | None = None
    mean_rounds: float | None = None
    mean_queries: float | None = None
    details: dict = field(default_factory=dict)
    verdict: str = "pass"
    reason: str | None = None  # why the verdict is inconclusive (None otherwise)
    tolerance: float = DEFAULT_TOLERANCE
    tv_of: str = "joint law"
    statistics_tested: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"{self.verdict.upper()}: {self.sampler} on {self.target}: {self.test} statistic {self.statistic:.4g}, "
            f"p = {self.p_value:.3g} (alpha = {self.alpha:g}, Monte Carlo), {self.num_samples} samples",
        ]
        if self.reason:
            lines.append(f"  inconclusive: {self.reason}")
        if self.statistics_tested:
            names = ", ".join(self.statistics_tested[:12]) + (" ..." if len(self.statistics_tested) > 12 else "")
            lines.append(f"  statistics tested ({len(self.statistics_tested)}): {names}")
            lines.append(f"  largest plug-in TV of a tested statistic's law: {self.tv_estimate:.4f} ({self.tv_of}); "
                         "no bound on the joint law's TV: a deviation with exact tested statistics is invisible here")
        else:
            lines.append(f"  joint law: plug-in TV {self.tv_estimate:.4f}, {self.tv_confidence:.0%} upper confidence "
                         f"bound on the joint TV {self.tv_upper:.4f}")
        if self.min_detectable_tv is not None:
            of = self.details.get("min_detectable_tv_of", "")
            lines.append(f"  smallest TV detected with power {self.details.get('power', power.DEFAULT_POWER):g} at "
                         f"this size: {self.min_detectable_tv:.4f}" + (f" ({of})" if of else ""))
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


def _kind(test: str) -> str:
    return "pearson" if test == "chi2-joint" else test


def _plan_arguments(target, test: str, statistics) -> tuple[str, dict]:
    """(test, keyword arguments) for power.min_detectable_tv / samples_for_tv, as check_exact will test."""
    table = _joint_table(target)
    if table is not None:
        shaped = table.numpy().reshape((target.q,) * target.n)
        kind = _kind(test)
        stats_ = _statistics_of(target, statistics) if kind in ("auto", "marginals") else None
        if kind == "marginals":
            return "marginals", {"statistics": stats_}
        return kind, {"probs": shaped, "statistics": stats_ or None}
    stats_ = _statistics_of(target, statistics)
    return "marginals", {"statistics": stats_}


def default_num_samples(target, alpha: float = 1e-4, tv: float | None = None, test: str = "auto", statistics=None) -> int:
    """Samples for which ``test`` detects any deviation of TV ``tv`` (DEFAULT_TV) with power 0.99."""
    tv = DEFAULT_TV if tv is None else tv
    kind, kwargs = _plan_arguments(target, test, statistics)
    if kind == "marginals" and not kwargs["statistics"]:
        return DEFAULT_NUM_SAMPLES
    m = power.samples_for_tv(tv, kind, alpha, **kwargs)
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
    tolerance: float = DEFAULT_TOLERANCE,
) -> CheckResult:
    """Test H0 "the sampler's output law is the target's" at level ``alpha``.

    num_samples: the budget; or ``tv``: plan the budget so that TV >= tv is
    detected with power 0.99; neither: plan it for DEFAULT_TV.  test: "auto"
    (default), "pearson", "likelihood-ratio", "corrected", "marginals".
    statistics: extra exact statistics (ExactStatistic, or functions of the
    sample whose law is enumerated from the table).  tolerance: the check is
    inconclusive (not a pass) when its min_detectable_tv exceeds this.
    """
    if not isinstance(alpha, float) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a float in (0, 1), got {alpha!r}")
    if test not in gof.TESTS + ("chi2-joint",):
        raise ValueError(f"test must be one of {gof.TESTS}, got {test!r}")
    if num_samples is not None and tv is not None:
        raise ValueError("give either num_samples or tv (the deviation to detect), not both")
    if tv is not None and not (isinstance(tv, (int, float)) and 0 < tv <= 1):
        raise ValueError(f"tv must be a number in (0, 1], got {tv!r}")
    if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or not 0 < tolerance <= 1:
        raise ValueError(f"tolerance must be a number in (0, 1] (the TV a check must be able to see), got {tolerance!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    planned_tv = None  # the TV the planned budget was checked to detect (power.samples_for_tv)
    if num_samples is None:
        num_samples = default_num_samples(target, alpha, tv, test, statistics)
        if tv is not None or num_samples < MAX_DEFAULT_SAMPLES:  # not capped: the plan's claim holds as checked
            planned_tv = DEFAULT_TV if tv is None else float(tv)
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int (or None for the planned default), got {num_samples!r}")
    out = run_sampler(sampler, target.oracle(device), num_samples, Randomness(seed, device=device))
    n, q = target.n, target.q
    table = _joint_table(target)
    kind, plan = _plan_arguments(target, test, statistics)
    statistics_tested: list[str] = []
    tv_of = "joint law"
    if table is not None:
        observed = torch.bincount(_cell_index(out.values, q), minlength=q**n).numpy()
        probs = table.numpy()
        kind = _kind(test)
        shape = (q,) * n
        stats_ = plan.get("statistics")
        if kind == "auto":
            result = gof.auto_test(observed, probs, statistics=stats_, alpha=alpha, seed=seed, table_shape=shape)
        elif kind == "marginals":
            result = gof._single("marginals", observed, probs, alpha, seed, stats_, shape)
        elif kind == "corrected":
            result = gof.corrected_chisquare(observed, probs, alpha=alpha, seed=seed)
        else:
            result = (gof.pearson if kind == "pearson" else gof.likelihood_ratio)(observed, probs, alpha=alpha, seed=seed)
        detectable, detectable_bounds = _detectable(kind, num_samples, alpha, plan, planned_tv)
        statistic, p_value, verdict = result.statistic, result.p_value, result.verdict
        tv_hat = gof.tv_plug_in(observed, probs)
        worst = _worst_cells(observed, probs, lambda i: [int(v) for v in np.unravel_index(i, (q,) * n)], "cell")
        test_name = "chi2-joint" if kind == "pearson" else result.test
        details = {"degrees_of_freedom": result.dof, **result.details,
                   "tv_bias_corrected": gof.tv_bias_corrected(observed, probs),
                   "min_detectable_tv_of": ("TV of some tested statistic's law" if kind == "marginals" else
                                            "TV of the joint law, over the direction family of verification.power"),
                   "min_detectable_tv_bounds": detectable_bounds, "power": power.DEFAULT_POWER}
        tv_upper: float | None = tv_upper_bound(tv_hat, q**n, num_samples)
        if kind == "marginals":
            statistics_tested = [s.name for s in stats_ or ()]
            tv_upper, tv_of = None, "joint law (plug-in); the test itself only sees the statistics"
    else:
        stats_ = plan["statistics"]
        statistic, p_value, verdict, tv_hat, worst, details = _check_statistics(stats_, target, out.values, alpha, seed)
        test_name = "chi2-statistics-holm"
        detectable, detectable_bounds = _detectable("marginals", num_samples, alpha, plan, planned_tv)
        details.update(min_detectable_tv_of="TV of the law of some tested statistic (not the joint)",
                       min_detectable_tv_bounds=detectable_bounds, power=power.DEFAULT_POWER)
        statistics_tested = [s.name for s in stats_]
        tv_upper, tv_of = None, f"law of {details['tv_of']}"
    reason = None
    if verdict == gof.INCONCLUSIVE:
        reason = (f"the Monte Carlo budget cannot resolve alpha = {alpha:g} (p-values resolved down to "
                  f"~{1.0 / (details.get('mc_max_draws', 1) + 1):.2g}); the data was not clearly compatible")
    elif verdict == gof.PASS and detectable > tolerance:
        verdict = gof.INCONCLUSIVE
        reason = (f"at {num_samples} samples the check detects only TV >= {detectable:.3g} (power "
                  f"{power.DEFAULT_POWER:g}), above the tolerance {tolerance:g}: a pass would mean nothing")
    return CheckResult(
        sampler=sampler_name(sampler),
        target=str(getattr(target, "name", type(target).__name__)),
        test=test_name,
        statistic=float(statistic),
        p_value=float(p_value),
        alpha=alpha,
        passed=verdict == gof.PASS,
        num_samples=num_samples,
        tv_estimate=tv_hat,
        tv_upper=tv_upper,
        tv_confidence=gof.TV_CONFIDENCE,
        worst_cells=worst,
        min_detectable_tv=float(detectable),
        mean_rounds=float(out.rounds.double().mean()) if num_samples else None,
        mean_queries=float(out.queries.double().mean()) if num_samples else None,
        details=details,
        verdict=str(verdict),
        reason=reason,
        tolerance=float(tolerance),
        tv_of=tv_of,
        statistics_tested=statistics_tested,
    )


def _detectable(kind: str, num_samples: int, alpha: float, plan: dict, planned_tv: float | None) -> tuple[float, str]:
    """(min_detectable_tv, what it bounds).  A budget planned by power.samples_for_tv for TV eps was checked there
    (every direction of the family at eps, the real decision, full repetitions): its claim is eps itself, not a
    second, separately simulated search that could land a few percent away."""
    if planned_tv is not None:
        return planned_tv, (f"planned: power.samples_for_tv checked that {num_samples} samples detect TV {planned_tv:g} "
                            f"in every direction of its family with power >= {power.DEFAULT_POWER:g}")
    claim = power.detectable_tv(kind, num_samples, alpha, power.DEFAULT_POWER, **plan)
    return claim.tv, claim.bounds


def _cell_index(values: torch.Tensor, q: int) -> torch.Tensor:
    n = values.shape[1]
    strides = q ** torch.arange(n - 1, -1, -1)
    return (values.cpu().to(torch.long) * strides).sum(-1)


def _check_statistics(statistics, target, values, alpha: float, seed: int):
    if not statistics:
        raise ValueError(
            f"target {getattr(target, 'name', target)!r} has neither a small probability table nor exact statistic "
            "laws (exact_statistics()); nothing to test against"
        )
    family = gof.marginal_tests(values, statistics, alpha=alpha, seed=seed)
    rows = family.details["statistics"]
    for row, stat in zip(rows, statistics):
        observed = stat.counts(values).numpy()
        row["worst"] = _worst_cells(observed, stat.probs.numpy(), lambda i, s=stat: s.labels[i], stat.name, count=3)
        row["p_holm"] = row["p_adjusted"]
    worst_cells = sorted((c for r in rows for c in r["worst"]), key=lambda c: -abs(c["z"]))[:5]
    tv_row = max(rows, key=lambda r: r["tv"])
    details = {"statistics": rows, "correction": "holm", "tv_of": tv_row["statistic"],
               **{k: v for k, v in family.details.items() if k not in ("statistics", "correction")}}
    return family.statistic, family.p_value, family.verdict, tv_row["tv"], worst_cells, details


def _samples_needed(target, result: CheckResult, test: str = "auto", statistics=None) -> int | None:
    kind, plan = _plan_arguments(target, test, statistics)
    try:
        return int(power.samples_for_tv(result.tolerance, kind, result.alpha, **plan))
    except ValueError:
        return None


def assert_sampler_exact(sampler, target, **kwargs) -> CheckResult:
    """check_exact, raising AssertionError with the evidence when it does not pass (fail or inconclusive; an
    inconclusive check names the sample size that would detect TV ``tolerance``)."""
    result = check_exact(sampler, target, **kwargs)
    if result.verdict == gof.FAIL:
        raise AssertionError("sampler is not exact:\n" + result.summary())
    if result.verdict == gof.INCONCLUSIVE:
        needed = None
        if result.reason and result.reason.startswith("at "):  # low power: plan the size that sees the tolerance
            needed = _samples_needed(target, result, kwargs.get("test", "auto"), kwargs.get("statistics"))
        hint = (f"\n  num_samples={needed} would detect TV {result.tolerance:g} with power {power.DEFAULT_POWER:g}"
                if needed else "")
        raise AssertionError("check inconclusive (neither pass nor fail):\n" + result.summary() + hint)
    return result
