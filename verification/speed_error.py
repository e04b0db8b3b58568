"""Speed versus error: exact TV (by ``exact_law``) and expected sequential depth, side by side.

Every inexact baseline of ``autospec.samplers.baselines`` and the exact
samplers run on the same small tables; each row is a proof on that instance
(TV is the exact total variation of the sampler's output law, not an
estimate).  ``run_baseline_table`` returns JSON-able cells for the audit.

Counting: a round is one batch of parallel oracle calls of any model, so a
draft-model sampler's depth is its target rounds plus its draft rounds
(``expected_rounds``; the split is in ``expected_target_rounds`` and
``expected_draft_rounds``).  One query is one row of conditionals, [n, q], of
either model: n * q counting queries in the counting-oracle model.
"""

from __future__ import annotations

import time

from autospec.samplers import SequenceSpeculative, Sequential, TokenSpeculative
from autospec.samplers.base import SampleResult
from autospec.samplers.baselines import BASELINES
from autospec.samplers.draft_speculative import DraftSpeculative
from autospec.targets import TabularTarget
from autospec.targets.perturbed import TemperedOracle
from verification.exact import exact_law

__all__ = ["TargetCounts", "speed_error_row", "speed_error_rows", "format_table", "run_baseline_table", "run_draft_speculative_checks", "cells_from_rows", "EXACT_TV", "FLAG_TV", "instances"]

EXACT_TV = 1e-10  # a sampler claiming exactness must be this close (rounding only)
FLAG_TV = 1e-3  # an inexact baseline must be at least this far, or the instance is too easy to flag it


def instances(quick: bool = True) -> list[TabularTarget]:
    if quick:
        return [TabularTarget.random(n=2, q=3, seed=3, concentration=0.5)]
    return [TabularTarget.random(n=3, q=3, seed=3, concentration=0.5), TabularTarget.random(n=3, q=2, seed=4, concentration=0.5)]


def samplers_for(target, quick: bool = True) -> list:
    draft = TemperedOracle(target, 0.5)
    order = "fixed" if (quick or target.q > 2) else "random"
    exact = [
        Sequential(),
        TokenSpeculative(block_size=2),
        SequenceSpeculative(block_size=2),
        DraftSpeculative(draft, block_size=2, rule="token", order=order),
        DraftSpeculative(draft, block_size=2, rule="block", order=order),
        DraftSpeculative(draft, block_size=2, rule="specinfer", num_drafts=2, order=order),
        DraftSpeculative(draft, block_size=2, rule="spectr", num_drafts=2, order=order),
    ]
    # top-k with k >= q truncates nothing: it is sequential sampling, not a baseline on that instance
    baselines = [b for b in BASELINES() if getattr(b, "top_k", 0) < target.q]
    return baselines + exact


class TargetCounts:
    """A draft-model sampler seen through its target calls only: rounds and queries are the target's.

    Lets ``exact_law`` compute the expected *target* rounds (acceptance) of a sampler whose
    ``rounds`` are its full depth (target + draft)."""

    def __init__(self, sampler: DraftSpeculative):
        self.sampler = sampler
        self.name = f"{sampler.name} [target calls]"

    def sample(self, oracle, num_samples, rng) -> SampleResult:
        out = self.sampler.sample(oracle, num_samples, rng)
        return SampleResult(out.values, out.target_rounds, out.target_queries)


def speed_error_row(sampler, target) -> dict:
    """One row: the sampler's exact TV, expected depth and queries on ``target``, and its verdict.

    For a draft-model sampler the depth is target + draft rounds; the target's share is computed
    by a second enumeration (``TargetCounts``), the draft's is the difference."""
    start = time.perf_counter()
    law = exact_law(sampler, target)
    claims = bool(getattr(sampler, "exact", True))
    tv = law.tv
    if claims:
        verdict = "exact" if tv < EXACT_TV and law.unexplored_mass < EXACT_TV else "NOT EXACT"
    else:
        verdict = "flagged" if tv > FLAG_TV else "not flagged on this instance"
    target_rounds, target_queries = law.expected_rounds, law.expected_queries
    if isinstance(sampler, DraftSpeculative):
        target_only = exact_law(TargetCounts(sampler), target)
        target_rounds, target_queries = target_only.expected_rounds, target_only.expected_queries
    return {
        "sampler": getattr(sampler, "name", type(sampler).__name__),
        "target": target.name,
        "draft": getattr(sampler, "draft_name", None),
        "claims_exact": claims,
        "tv": tv,
        "unexplored_mass": law.unexplored_mass,
        "expected_rounds": law.expected_rounds,
        "expected_queries": law.expected_queries,
        "expected_target_rounds": target_rounds,
        "expected_draft_rounds": law.expected_rounds - target_rounds,
        "expected_target_queries": target_queries,
        "expected_draft_queries": law.expected_queries - target_queries,
        "leaves": law.leaves,
        "verdict": verdict,
        "seconds": time.perf_counter() - start,
    }


def speed_error_rows(quick: bool = True) -> list[dict]:
    return [speed_error_row(sampler, target) for target in instances(quick) for sampler in samplers_for(target, quick)]


def format_table(rows: list[dict]) -> str:
    width = max(len(r["sampler"]) for r in rows)
    lines = ["E[depth]: expected sequential rounds, target + draft (a round is one batch of parallel oracle calls of any model);",
             "E[queries]: expected rows of conditionals ([n, q] each, of either model; n * q counting queries per row).",
             f"{'sampler':{width}s}  {'target':26s} {'claims':6s} {'exact TV':>10s} {'E[depth]':>9s} {'target':>7s} {'draft':>7s} "
             f"{'E[queries]':>10s} {'target':>7s} {'draft':>7s}  verdict"]
    for r in rows:
        lines.append(
            f"{r['sampler']:{width}s}  {r['target']:26s} {'yes' if r['claims_exact'] else 'no':6s} "
            f"{r['tv']:10.3e} {r['expected_rounds']:9.4f} {r['expected_target_rounds']:7.4f} {r['expected_draft_rounds']:7.4f} "
            f"{r['expected_queries']:10.4f} {r['expected_target_queries']:7.4f} {r['expected_draft_queries']:7.4f}  {r['verdict']}"
        )
    return "\n".join(lines)


def run_baseline_table(quick: bool = True) -> list[dict]:
    """Audit cells: one per (sampler, target), check "exact-law", verdict pass/fail with evidence.

    pass means: a claimed-exact sampler has TV < 1e-10, or an inexact baseline
    is flagged (TV > 1e-3).
    """
    return cells_from_rows(speed_error_rows(quick))


def cells_from_rows(rows: list[dict]) -> list[dict]:
    cells = []
    for row in rows:
        ok = row["verdict"] in ("exact", "flagged")
        cells.append({
            "sampler": row["sampler"],
            "target": row["target"],
            "check": "exact-law speed-vs-error",
            "verdict": "pass" if ok else "fail",
            "evidence": {k: row[k] for k in ("claims_exact", "tv", "expected_rounds", "expected_target_rounds", "expected_draft_rounds",
                                             "expected_queries", "leaves", "verdict")},
        })
    return cells


def run_draft_speculative_checks(quick: bool = True) -> list[dict]:
    """Audit cells: exact_law of DraftSpeculative (every rule, fixed and random order) on (target, draft) pairs."""
    from autospec.targets.perturbed import MixtureOracle

    target = TabularTarget.random(n=2, q=3, seed=11, concentration=0.5, zero_fraction=0.25)
    other = TabularTarget.random(n=2, q=3, seed=12, zero_fraction=0.4)
    drafts = [TemperedOracle(target, 0.0), other.oracle(), MixtureOracle(target, other, 0.5)]
    if not quick:
        drafts.append(TemperedOracle(target, 2.0))
    configs = [("token", 1), ("block", 1), ("specinfer", 2), ("spectr", 2)] + ([] if quick else [("specinfer", 3), ("spectr", 3)])
    cells = []
    for draft in drafts:
        for rule, m in configs:
            for order in (("fixed",) if quick else ("fixed", "random")):
                sampler = DraftSpeculative(draft, block_size=2, rule=rule, num_drafts=m, order=order)
                law = exact_law(sampler, target)
                ok = law.tv < EXACT_TV and law.unexplored_mass < EXACT_TV
                cells.append({
                    "sampler": sampler.name,
                    "target": target.name,
                    "check": "exact-law",
                    "verdict": "pass" if ok else "fail",
                    "evidence": {"draft": draft.name, "tv": law.tv, "unexplored_mass": law.unexplored_mass,
                                 "expected_rounds": law.expected_rounds, "leaves": law.leaves,
                                 "worst_cells": law.worst_cells[:3]},
                })
    return cells
