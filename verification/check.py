"""check_exact: a one-sample test of a sampler's output against the target's exact law.

On a table small enough to test directly, a Pearson chi-square test of the
full joint (cells with small expected counts pooled).  Otherwise, the target's
exact statistic laws (single and pairwise marginals, counts, ...), each tested
by chi-square, with a family-wise correction (Holm).  A sample in a cell of
probability zero fails the check outright: it is proof of inexactness.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy import stats
from statsmodels.stats.multitest import multipletests

from autospec import Randomness
from verification.running import run_sampler, sampler_name

__all__ = ["CheckResult", "check_exact", "assert_sampler_exact", "pooled_chisquare", "tv_upper_bound", "DEFAULT_NUM_SAMPLES"]

DEFAULT_NUM_SAMPLES = 20_000
MAX_JOINT_CELLS = 3**10  # larger tables are tested through their exact statistics
MIN_EXPECTED = 5.0  # pool cells expected to hold fewer samples than this
TV_CONFIDENCE = 0.95


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


def pooled_chisquare(observed: np.ndarray, expected_probs: np.ndarray) -> tuple[float, float, int]:
    """Pearson chi-square with cells of small expected count pooled.

    Cells are pooled smallest-first until the pooled cell's expected count
    reaches MIN_EXPECTED.  Returns (statistic, p_value, degrees of freedom);
    p = 0 when a cell of probability zero was observed.
    """
    observed = np.asarray(observed, dtype=np.float64)
    expected_probs = np.asarray(expected_probs, dtype=np.float64)
    total = observed.sum()
    if total == 0:
        return 0.0, 1.0, 0
    if (observed[expected_probs <= 0] > 0).any():
        return math.inf, 0.0, int((expected_probs > 0).sum())
    keep = expected_probs > 0
    observed, expected = observed[keep], expected_probs[keep] * total
    order = np.argsort(expected)
    cumulative = np.cumsum(expected[order])
    pooled_count = int(np.searchsorted(cumulative, MIN_EXPECTED)) + 1 if expected[order[0]] < MIN_EXPECTED else 0
    pooled_count = min(pooled_count, len(order))
    if pooled_count == len(order) - 1:  # a lone remaining cell would leave no degrees of freedom: pool it too
        pooled_count = len(order)
    small, large = order[:pooled_count], order[pooled_count:]
    obs = np.concatenate([observed[large], [observed[small].sum()]]) if pooled_count else observed[large]
    exp = np.concatenate([expected[large], [expected[small].sum()]]) if pooled_count else expected[large]
    if len(obs) < 2:
        return 0.0, 1.0, 0
    result = stats.chisquare(obs, exp * (obs.sum() / exp.sum()))
    return float(result.statistic), float(result.pvalue), len(obs) - 1


def tv_upper_bound(tv_plug_in: float, cells: int, num_samples: int, confidence: float = TV_CONFIDENCE) -> float:
    """Upper confidence bound on the TV between the sampler's law and the target.

    TV(sampler, target) <= TV(empirical, target) + TV(empirical, sampler), and
    TV(empirical, sampler) exceeds its mean bound 0.5 sqrt((cells - 1) / N)
    by more than sqrt(log(1 / delta) / (2 N)) with probability at most delta
    (McDiarmid: one sample moves it by at most 1 / N).  Distribution-free.
    """
    if num_samples == 0:
        return 1.0
    delta = 1.0 - confidence
    bound = tv_plug_in + 0.5 * math.sqrt(max(cells - 1, 0) / num_samples) + math.sqrt(math.log(1 / delta) / (2 * num_samples))
    return min(1.0, bound)


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


def check_exact(
    sampler,
    target,
    num_samples: int | None = None,
    alpha: float = 1e-4,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> CheckResult:
    """Test H0 "the sampler's output law is the target's" at level ``alpha``."""
    if not isinstance(alpha, float) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a float in (0, 1), got {alpha!r}")
    if num_samples is None:
        num_samples = DEFAULT_NUM_SAMPLES
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int (or None for the default), got {num_samples!r}")
    out = run_sampler(sampler, target.oracle(device), num_samples, Randomness(seed, device=device))
    n, q = target.n, target.q
    table = _joint_table(target)
    if table is not None:
        observed = torch.bincount(_cell_index(out.values, q), minlength=q**n).numpy()
        probs = table.numpy()
        statistic, p_value, dof = pooled_chisquare(observed, probs)
        tv = 0.5 * float(np.abs(observed / num_samples - probs).sum())
        worst = _worst_cells(observed, probs, lambda i: [int(v) for v in np.unravel_index(i, (q,) * n)], "cell")
        test, details, cells = "chi2-joint", {"degrees_of_freedom": dof}, q**n
    else:
        statistic, p_value, tv, worst, cells, details = _check_statistics(target, out.values)
        test = "chi2-statistics-holm"
    return CheckResult(
        sampler=sampler_name(sampler),
        target=str(getattr(target, "name", type(target).__name__)),
        test=test,
        statistic=statistic,
        p_value=p_value,
        alpha=alpha,
        passed=bool(p_value > alpha),
        num_samples=num_samples,
        tv_estimate=tv,
        tv_upper=tv_upper_bound(tv, cells, num_samples),
        tv_confidence=TV_CONFIDENCE,
        worst_cells=worst,
        mean_rounds=float(out.rounds.double().mean()) if num_samples else None,
        mean_queries=float(out.queries.double().mean()) if num_samples else None,
        details=details,
    )


def _cell_index(values: torch.Tensor, q: int) -> torch.Tensor:
    n = values.shape[1]
    strides = q ** torch.arange(n - 1, -1, -1)
    return (values.cpu().to(torch.long) * strides).sum(-1)


def _check_statistics(target, values):
    statistics = target.exact_statistics() if hasattr(target, "exact_statistics") else []
    if not statistics:
        raise ValueError(
            f"target {getattr(target, 'name', target)!r} has neither a small probability table nor exact statistic "
            "laws (exact_statistics()); nothing to test against"
        )
    p_values, rows = [], []
    for stat in statistics:
        observed = stat.counts(values).numpy()
        probs = stat.probs.numpy()
        chi2, p, dof = pooled_chisquare(observed, probs)
        tv = 0.5 * float(np.abs(observed / max(observed.sum(), 1) - probs).sum())
        p_values.append(p)
        rows.append({"statistic": stat.name, "chi2": chi2, "p_value": p, "dof": dof, "tv": tv, "cells": len(probs),
                     "worst": _worst_cells(observed, probs, lambda i, s=stat: s.labels[i], stat.name, count=3)})
    adjusted = multipletests(p_values, method="holm")[1]
    for row, adj in zip(rows, adjusted):
        row["p_holm"] = float(adj)
    worst_index = int(np.argmin(adjusted))
    worst_row = rows[worst_index]
    worst_cells = sorted((c for r in rows for c in r["worst"]), key=lambda c: -abs(c["z"]))[:5]
    tv_row = max(rows, key=lambda r: r["tv"])
    details = {"statistics": rows, "correction": "holm", "tv_of": tv_row["statistic"]}
    return worst_row["chi2"], float(adjusted[worst_index]), tv_row["tv"], worst_cells, tv_row["cells"], details


def assert_sampler_exact(sampler, target, **kwargs) -> CheckResult:
    """check_exact, raising AssertionError with the evidence when it fails."""
    result = check_exact(sampler, target, **kwargs)
    if not result.passed:
        raise AssertionError("sampler is not exact:\n" + result.summary())
    return result
