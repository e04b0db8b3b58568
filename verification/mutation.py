"""Mutation audit: every wrong sampler in the catalogue must be caught.

For each discrete mutant, on its instance (a table with n <= 4):

1. ``exact_law``: the mutant's exact output law by enumeration; flagged when
   its TV to the target exceeds ``exact_tolerance`` (correct samplers give
   ~1e-16; float64 rounding never reaches 1e-10).  This is a proof.
2. ``check_exact`` at the DEFAULT budget (num_samples=None) and alpha, over
   ``num_seeds`` seeds: caught when rejected in at least ``required`` of them.

Results are JSON-able dicts; ``statistically_visible`` tells whether the exact
TV is at least the check's min_detectable_tv (a mutant far below it, e.g.
float32 rounding at TV 1e-9, can only be caught by the proof).
"""

from __future__ import annotations

import time

from verification.calibration import single_thread
from verification.check import check_exact
from verification.exact import exact_law

__all__ = ["run_mutation", "instance_for"]


def instance_for(mutant):
    """The tiny target (n <= 4) a mutant is audited on."""
    from verification.mutants import discrete

    return discrete.instance_for(mutant.name)


def _verdict(row: dict) -> str:
    """One line saying how the mutant was caught; an exact-law-only mutant is named as such, never silently missed."""
    flagged = row.get("flagged_by_exact_law")
    if row["caught_by_check"]:
        return "caught by exact_law and check_exact" if flagged else "caught by check_exact (exact_law not flagged)"
    if flagged and not row.get("statistically_visible", True):
        return (f"caught by exact_law only: exact TV {row['exact_tv']:.2g} is below the check's min_detectable_tv "
                f"{row['min_detectable_tv']:.2g} (a sample test would need ~(min_detectable_tv / TV)^2 = "
                f"{(row['min_detectable_tv'] / max(row['exact_tv'], 1e-300)) ** 2:.1g} times the budget)")
    return f"MISSED by check_exact: rejected in {row['rejections']} of {row['num_seeds']} seeds"


def run_mutation(mutants=None, num_seeds: int = 100, alpha: float = 1e-4, required: float = 0.99,
                 exact: bool = True, exact_tolerance: float = 1e-10, num_samples: int | None = None,
                 seed: int = 0) -> dict:
    """Audit the discrete catalogue (or the given mutants / names).

    Quick setting for an audit stage: num_seeds=3 (about 10 s per mutant).
    """
    from verification.mutants import catalogue

    everything = {m.name: m for m in catalogue("discrete")}
    if mutants is None:
        mutants = list(everything.values())
    mutants = [everything[m] if isinstance(m, str) else m for m in mutants]
    rows = []
    with single_thread():
        for mutant in mutants:
            target = instance_for(mutant)
            row = {"mutant": mutant.name, "description": mutant.description, "target": target.name}
            if exact:
                start = time.perf_counter()
                law = exact_law(mutant.make(), target)
                sibling = exact_law(mutant.sibling(), target)
                row.update(exact_tv=law.tv, sibling_exact_tv=sibling.tv, flagged_by_exact_law=bool(law.tv > exact_tolerance),
                           exact_seconds=time.perf_counter() - start)
            rejections, seconds, result = 0, [], None
            for s in range(seed, seed + num_seeds):
                start = time.perf_counter()
                result = check_exact(mutant.make(), target, num_samples=num_samples, alpha=alpha, seed=s)
                seconds.append(time.perf_counter() - start)
                rejections += result.verdict == "fail"  # an inconclusive check has not caught anything
            row.update(num_seeds=num_seeds, rejections=rejections, alpha=alpha,
                       num_samples=result.num_samples if result else None,
                       min_detectable_tv=result.min_detectable_tv if result else None,
                       max_seconds_per_check=max(seconds) if seconds else 0.0,
                       caught_by_check=bool(num_seeds and rejections >= required * num_seeds))
            if exact and result is not None:
                row["statistically_visible"] = bool(row["exact_tv"] >= result.min_detectable_tv)
            row["verdict"] = _verdict(row)
            rows.append(row)
    return {"stage": "mutation", "rows": rows,
            "passed": all(r.get("flagged_by_exact_law", True) and (r["caught_by_check"] or not r.get("statistically_visible", True))
                          for r in rows)}
