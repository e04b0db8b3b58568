"""Evidence for each entry of the wild catalogue, and the audit stage ``wild``.

For an entry on its instance:

1. ``exact_law`` of the reproduction and of its correct sibling (a proof on
   that instance).  A biased entry is flagged when its TV exceeds
   ``EXACT_TOLERANCE``; an entry whose reported rule is in fact exact is
   proved so when its TV is below it.
2. ``check_exact`` at the default budget (alpha 1e-4, power 0.99 at TV 0.02):
   caught when it rejects.  When the exact TV is below the budget's
   ``min_detectable_tv`` the entry says so, with the number of samples a
   one-sample test would need (``verification.power.samples_for_tv``).
3. For a bug that needs a batch of more than two sequences: the exact batch
   differential check (row 2 of a batch of 3 against batch 1), which
   ``exact_law`` alone (one sample per run) cannot see.
"""

from __future__ import annotations

import time

from verification.check import check_exact, default_num_samples
from verification.exact import exact_law
from verification.power import min_detectable_tv, samples_for_tv

__all__ = ["run_entry", "EXACT_TOLERANCE", "plan_wild", "run_wild", "register_audit"]

EXACT_TOLERANCE = 1e-10  # float64 enumeration of a correct rule gives ~1e-16


def run_entry(entry, check: bool = True, differential: bool = True, alpha: float = 1e-4, seed: int = 0) -> dict:
    """JSON-able evidence row for one ``WildEntry`` (see the module docstring)."""
    from verification.differential import check_batch_invariance

    target = entry.instance()
    start = time.perf_counter()
    law, sibling = exact_law(entry.make(), target), exact_law(entry.sibling(), target)
    row = {"entry": entry.name, "citation": entry.citation, "url": entry.url, "mechanism": entry.mechanism,
           "expected": entry.expected, "target": target.name, "sampler": entry.make().name,
           "exact_tv": law.tv, "sibling_exact_tv": sibling.tv, "unexplored_mass": law.unexplored_mass,
           "exact_seconds": time.perf_counter() - start, "note": entry.note}
    row["flagged_by_exact_law"] = bool(law.tv > EXACT_TOLERANCE)
    # The default budget of check_exact and what it can see (planned, not run).
    row["check_num_samples"] = default_num_samples(target, alpha)
    row["min_detectable_tv"] = min_detectable_tv("auto", row["check_num_samples"], alpha, probs=target.probs.numpy())
    if entry.expected == "biased" and EXACT_TOLERANCE < law.tv < row["min_detectable_tv"]:
        row["samples_needed_at_exact_tv"] = samples_for_tv(law.tv, "pearson", alpha, probs=target.probs.numpy())
    if check:
        result = check_exact(entry.make(), target, alpha=alpha, seed=seed)
        row.update(check_num_samples=result.num_samples, check_p_value=result.p_value, check_alpha=alpha,
                   min_detectable_tv=result.min_detectable_tv, caught_by_check=not result.passed)
    if differential and entry.batch_only:
        batch = check_batch_invariance(entry.make, target, batch_sizes=(3,), rows=(2,))
        row.update(batch_differential_tv=batch.max_tv, caught_by_batch_differential=batch.status == "fail")
    row["verdict"], row["ok"] = _verdict(entry, row)
    return row


def _verdict(entry, row: dict) -> tuple[str, bool]:
    if entry.expected == "exact":
        if row["flagged_by_exact_law"]:
            return f"reported rule expected exact but exact_law gives TV {row['exact_tv']:.3g}", False
        return f"proved exact by exact_law (TV {row['exact_tv']:.1e} < {EXACT_TOLERANCE:g}): the reported bias does not hold for this rule", True
    by = [name for name, key in (("exact_law", "flagged_by_exact_law"), ("check_exact", "caught_by_check"),
                                 ("the batch differential check", "caught_by_batch_differential")) if row.get(key)]
    if not by:
        return "MISSED by every check run", False
    text = "caught by " + ", ".join(by)
    if entry.batch_only and not row["flagged_by_exact_law"]:
        text += " (exact_law at one sample per run sees nothing: the bug needs > 2 sequences)"
    if "samples_needed_at_exact_tv" in row and not row.get("caught_by_check"):
        text += (f"; {'not caught by check_exact: ' if 'caught_by_check' in row else ''}below check_exact's default budget (min detectable TV {row['min_detectable_tv']:.2g} with "
                 f"{row['check_num_samples']} samples): a one-sample test needs ~{row['samples_needed_at_exact_tv']:.2g} "
                 "samples")
    return text, True


# ---------------------------------------------------------------- the audit stage

def plan_wild(config) -> list[dict]:
    from verification.wild import catalogue

    quick = config.mode == "quick"
    return [{"id": f"wild/{e.name}", "stage": "wild", "sampler": f"{e.name} ({e.citation})", "sampler_ref": f"wild:{e.name}",
             "claims_exact": e.expected == "exact", "mutant": e.expected == "biased", "target": "instance of the entry",
             "check": "exact law" + ("" if quick and not e.batch_only else " + check_exact")
                      + ("" if quick or not e.batch_only else " + batch differential"),
             "params": {"entry": e.name, "quick": quick}}
            for e in catalogue()]


def run_wild(spec: dict, seed: int) -> dict:
    from verification.wild import entry

    item = entry(spec["params"]["entry"])
    quick = spec["params"]["quick"]
    # Quick: the exact laws (the proofs), and check_exact only where exact_law cannot decide alone (a bug that needs
    # a batch); the full audit adds check_exact everywhere and the exact batch enumeration (minutes on two cores).
    row = run_entry(item, check=not quick or item.batch_only, differential=not quick, seed=seed)
    if item.expected == "exact":
        verdict = "pass" if row["ok"] else "fail"
    else:
        verdict = "caught" if row["ok"] else "missed"
    return {"verdict": verdict, "evidence": row}


def register_audit(registry) -> None:
    registry.register_stage(registry.Stage("wild", plan_wild, run_wild,
                                           "Bugs found in the wild (reproductions with citations)", order=65))
