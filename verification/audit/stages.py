"""The built-in audit stages.

* ``exact``: exact output law by enumeration (a proof on that instance).
* ``check``: ``check_exact``, the one-sample test against the exact law.
* ``calibration``: correct samplers over many seeds; their p-values must be uniform.
* ``mutation``: every wrong sampler in the catalogue must be caught.
* ``depth``: mean rounds and queries versus n, log-log exponent fits.
* ``diffusion``: ``check_exact_diffusion`` on Gaussian targets (when that code is present).

A stage's cells share the fields ``id, stage, sampler, target, check`` and
the run fields ``verdict, evidence``.  Verdicts: ``pass``/``fail`` for a
sampler that claims exactness, ``caught``/``missed`` for a mutant,
(a mutant fails the audit only when every one of its cells missed it),
``flagged``/``undetected`` for a sampler that does not claim exactness,
``info`` for measurements, ``error`` when the cell raised.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np

from verification.audit.registry import (
    Stage,
    build_sampler,
    build_target,
    claims_exact,
    register_stage,
    sampler_label,
)

EXACT_TOLERANCE = 1e-9  # exact-law TV above this is an algebra slip, not rounding

FAILING_VERDICTS = {"fail", "missed", "error"}


def _spec(stage: str, sampler_ref: str, sampler: Any, target: str, check: str, **params) -> dict:
    name = sampler_label(sampler)
    return {
        "id": f"{stage}/{name}/{target}/{check}",
        "stage": stage,
        "sampler": name,
        "sampler_ref": sampler_ref,
        "claims_exact": claims_exact(sampler),
        "mutant": sampler_ref.startswith("mutant:"),
        "target": target,
        "check": check,
        "params": params,
    }


def _sampler_refs(config, key: str) -> list[tuple[str, Any]]:
    refs = [(ref, build_sampler(ref)) for ref in config.setting(key)]
    for index, item in enumerate(config.extra_samplers):
        ref = item if isinstance(item, str) else f"extra:{index}"
        refs.append((ref, build_sampler(ref, config.extra_samplers)))
    return refs


def judge(spec: dict, rejected: bool) -> str:
    """Verdict of a cell whose check rejected (or not) the hypothesis "exact"."""
    if spec.get("mutant"):
        return "caught" if rejected else "missed"
    if spec.get("claims_exact", True):
        return "fail" if rejected else "pass"
    return "flagged" if rejected else "undetected"


# ---------------------------------------------------------------- exact law

def plan_exact(config) -> list[dict]:
    cells = []
    for ref, sampler in _sampler_refs(config, "exact_samplers"):
        for target in config.setting("exact_targets"):
            cells.append(_spec("exact", ref, sampler, target, "exact-law"))
    return cells


def run_exact(spec: dict, seed: int) -> dict:
    from verification.exact import exact_law

    sampler = build_sampler(spec["sampler_ref"])
    target = build_target(spec["target"])
    law = exact_law(sampler, target, max_leaves=spec["params"].get("max_leaves", 200_000))
    low, high = law.tv_bounds
    evidence = {
        "exact_tv": law.tv,
        "tv_bounds": [low, high],
        "unexplored_mass": law.unexplored_mass,
        "leaves": law.leaves,
        "expected_rounds": law.expected_rounds,
        "expected_queries": law.expected_queries,
        "tolerance": EXACT_TOLERANCE,
        "worst_cells": law.worst_cells[:5],
    }
    if high <= EXACT_TOLERANCE:
        verdict = judge(spec, rejected=False)
    elif low > EXACT_TOLERANCE:
        verdict = judge(spec, rejected=True)
    else:
        verdict = "inconclusive"
        evidence["note"] = "unexplored mass too large to decide"
    return {"verdict": verdict, "evidence": evidence}


# ---------------------------------------------------------------- statistical check

def plan_check(config) -> list[dict]:
    cells = []
    for ref, sampler in _sampler_refs(config, "check_samplers"):
        for target in config.setting("check_targets"):
            cells.append(_spec("check", ref, sampler, target, "check_exact",
                               num_samples=config.setting("num_samples"), alpha=config.setting("alpha")))
    return cells


def _check_evidence(result) -> dict:
    data = result.to_dict()
    return {
        "test": data["test"],
        "statistic": data["statistic"],
        "p_value": data["p_value"],
        "alpha": data["alpha"],
        "num_samples": data["num_samples"],
        "tv_estimate": data["tv_estimate"],
        "tv_upper": data["tv_upper"],
        "min_detectable_tv": data.get("min_detectable_tv"),
        "mean_rounds": data.get("mean_rounds"),
        "mean_queries": data.get("mean_queries"),
        "worst_cells": data.get("worst_cells", [])[:5],
    }


def run_check(spec: dict, seed: int) -> dict:
    from verification.check import check_exact

    sampler = build_sampler(spec["sampler_ref"])
    target = build_target(spec["target"])
    params = spec["params"]
    result = check_exact(sampler, target, num_samples=params["num_samples"], alpha=float(params["alpha"]), seed=seed)
    return {"verdict": judge(spec, rejected=not result.passed), "evidence": _check_evidence(result)}


# ---------------------------------------------------------------- calibration

def plan_calibration(config) -> list[dict]:
    target = config.setting("calibration_target")
    return [
        _spec("calibration", ref, build_sampler(ref), target, "p-value-uniformity",
              runs=config.setting("calibration_runs"), num_samples=config.setting("calibration_samples"),
              alpha=config.setting("calibration_alpha"))
        for ref in config.setting("calibration_samplers")
    ]


def run_calibration_cell(spec: dict, seed: int) -> dict:
    """p-values of check_exact over many seeds must not be smaller than uniform ones.

    A valid test has P(p <= a) <= a at every level a; conservative (discrete,
    pooled, Holm-adjusted) tests pile p-values at 1, which is allowed.  So the
    verdict is the one-sided KS test for an empirical CDF above the uniform
    one (too many small p-values: false fails beyond the stated alpha); the
    two-sided KS p-value is reported too.
    """
    from scipy import stats

    from verification.check import check_exact

    sampler = build_sampler(spec["sampler_ref"])
    target = build_target(spec["target"])
    params = spec["params"]
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, 2**62, size=params["runs"])
    p_values = [check_exact(sampler, target, num_samples=params["num_samples"], alpha=0.5, seed=int(s)).p_value for s in seeds]
    ks = stats.kstest(p_values, "uniform", alternative="greater")
    two_sided = stats.kstest(p_values, "uniform")
    evidence = {
        "statistic": float(ks.statistic),
        "p_value": float(ks.pvalue),
        "alpha": params["alpha"],
        "test": "one-sided KS: check_exact p-values not stochastically smaller than U(0, 1)",
        "two_sided_ks_p": float(two_sided.pvalue),
        "rejection_rates": {str(a): float(np.mean(np.asarray(p_values) <= a)) for a in (0.01, 0.05, 0.1, 0.25, 0.5)},
        "runs": params["runs"],
        "num_samples": params["num_samples"],
        "p_values": [float(p) for p in p_values],
    }
    return {"verdict": judge(spec, rejected=ks.pvalue <= params["alpha"]), "evidence": evidence}


# ---------------------------------------------------------------- mutation

def plan_mutation(config) -> list[dict]:
    from verification.mutants import catalogue

    cells = []
    for mutant in catalogue("discrete"):
        ref = f"mutant:{mutant.name}"
        sampler = mutant.make()
        cells.append(_spec("mutation", ref, sampler, config.setting("mutant_exact_target"), "exact-law",
                           mutant=mutant.name, description=mutant.description))
        for target in config.setting("mutant_check_targets"):
            cells.append(_spec("mutation", ref, sampler, target, "check_exact",
                               mutant=mutant.name, description=mutant.description,
                               num_samples=config.setting("num_samples"), alpha=config.setting("alpha")))
    for cell in cells:
        name = cell["params"]["mutant"]
        cell.update(claims_exact=False, mutant=True, sampler=f"mutant:{name}",
                    id=f"mutation/mutant:{name}/{cell['target']}/{cell['check']}")
    return cells


def run_mutation(spec: dict, seed: int) -> dict:
    outcome = run_exact(spec, seed) if spec["check"] == "exact-law" else run_check(spec, seed)
    outcome["evidence"]["mutant"] = spec["params"]["mutant"]
    outcome["evidence"]["description"] = " ".join((spec["params"].get("description") or "").split())
    return outcome


# ---------------------------------------------------------------- depth

DEPTH_SAMPLERS = ["Sequential", "TokenSpeculative(adaptive)", "SequenceSpeculative(adaptive)"]
THEORY_EXPONENTS = {"Sequential": 1.0, "TokenSpeculative(adaptive)": 2 / 3, "SequenceSpeculative(adaptive)": 0.5}


def _depth_sampler(key: str):
    from autospec.samplers import AdaptiveBlockSize, SequenceSpeculative, Sequential, TokenSpeculative

    if key == "Sequential":
        return Sequential()
    cls = TokenSpeculative if key.startswith("Token") else SequenceSpeculative
    return cls(AdaptiveBlockSize())


def plan_depth(config) -> list[dict]:
    return [
        {"id": f"depth/{key}/markov-sticky/rounds-vs-n", "stage": "depth", "sampler": key, "sampler_ref": key,
         "claims_exact": True, "mutant": False, "target": "markov-sticky", "check": "rounds-vs-n",
         "params": {"ns": list(config.setting("depth_ns")), "num_samples": config.setting("depth_samples")}}
        for key in DEPTH_SAMPLERS
    ]


def run_depth_cell(spec: dict, seed: int) -> dict:
    """Mean rounds and queries per sample on sticky chains of growing n; slope of the log-log fit."""
    from autospec import Randomness
    from autospec.targets.markov_chain import MarkovChainTarget

    sampler = _depth_sampler(spec["sampler_ref"])
    ns, rounds, queries = spec["params"]["ns"], [], []
    for i, n in enumerate(ns):
        target = MarkovChainTarget.sticky(n, 2, stay=0.9)
        out = sampler.sample(target.oracle(), spec["params"]["num_samples"], Randomness(seed + i))
        rounds.append(float(out.rounds.double().mean()))
        queries.append(float(out.queries.double().mean()))
    log_n = np.log(ns)
    slope_r, intercept_r = np.polyfit(log_n, np.log(rounds), 1)
    slope_q, intercept_q = np.polyfit(log_n, np.log(queries), 1)
    evidence = {
        "ns": ns, "mean_rounds": rounds, "mean_queries": queries,
        "rounds_exponent": float(slope_r), "rounds_intercept": float(intercept_r),
        "queries_exponent": float(slope_q), "queries_intercept": float(intercept_q),
        "theory_exponent": THEORY_EXPONENTS.get(spec["sampler_ref"]),
        "num_samples": spec["params"]["num_samples"],
        "note": "built-in depth sweep (verification.depth supplies the full experiment when present)",
    }
    return {"verdict": "info", "evidence": evidence}


# ---------------------------------------------------------------- diffusion

_DIFFUSION_SAMPLERS = ["DiffusionSequential", "ASD", "SequenceSpeculativeDiffusion"]


def diffusion_available() -> tuple[bool, str]:
    try:
        verification = importlib.import_module("verification")
        samplers = importlib.import_module("autospec.samplers")
        importlib.import_module("autospec.diffusion")
        importlib.import_module("verification.mutants.diffusion")
    except ImportError as error:
        return False, f"not available: {error}"
    missing = [name for name, module in [("check_exact_diffusion", verification),
                                          *[(s, samplers) for s in _DIFFUSION_SAMPLERS]]
               if not hasattr(module, name)]
    if missing:
        return False, "not available: missing " + ", ".join(missing)
    return True, ""


def plan_diffusion(config) -> list[dict]:
    from verification.mutants import catalogue

    params = {"num_samples": config.setting("diffusion_samples"), "alpha": config.setting("alpha")}
    cells = [
        {"id": f"diffusion/{name}/gaussian-2d/check_exact_diffusion", "stage": "diffusion", "sampler": name,
         "sampler_ref": name, "claims_exact": True, "mutant": False, "target": "gaussian-2d",
         "check": "check_exact_diffusion", "params": dict(params)}
        for name in _DIFFUSION_SAMPLERS
    ]
    for mutant in catalogue("diffusion"):
        cells.append({"id": f"diffusion/mutant:{mutant.name}/gaussian-2d/check_exact_diffusion", "stage": "diffusion",
                      "sampler": f"mutant:{mutant.name}", "sampler_ref": f"mutant:{mutant.name}", "claims_exact": False,
                      "mutant": True, "target": "gaussian-2d", "check": "check_exact_diffusion",
                      "params": {**params, "mutant": mutant.name, "description": mutant.description}})
    return cells


def run_diffusion_cell(spec: dict, seed: int) -> dict:
    """check_exact_diffusion on the diffusion kill setting (2-d Gaussian, coarse grid)."""
    import verification
    from autospec import Randomness
    from autospec import samplers as S
    from verification.mutants.diffusion import KILL_LOOKAHEAD, kill_setting

    times, target = kill_setting()
    ref = spec["sampler_ref"]
    if ref.startswith("mutant:"):
        sampler = build_sampler(ref)
    elif ref == "DiffusionSequential":
        sampler = S.DiffusionSequential(times)
    else:
        sampler = getattr(S, ref)(times, lookahead=KILL_LOOKAHEAD)
    params = spec["params"]
    result = verification.check_exact_diffusion(sampler, target, num_samples=params["num_samples"],
                                                alpha=float(params["alpha"]), seed=seed)
    evidence = _generic_evidence(result)
    evidence.pop("details", None)
    evidence["min_detectable_tv"] = None
    if params.get("mutant"):
        evidence["mutant"] = params["mutant"]
        evidence["description"] = params.get("description", "")
    # One coordinate's histogram (and the exact chain CDF where known) for the diffusion panel.
    out = sampler.sample(target.denoiser(), min(params["num_samples"], 4000), Randomness(seed + 1))
    values = out.values[:, 0].double().numpy()
    counts, edges = np.histogram(values, bins=40)
    evidence["histogram"] = {"counts": counts.tolist(), "edges": edges.tolist(), "coordinate": 0}
    try:
        law = target.chain_law(times)
        mean, var = float(law.mean[0]), float(law.cov[0, 0])
        evidence["histogram"]["chain_normal"] = [mean, var]
    except Exception:
        pass
    return {"verdict": judge(spec, rejected=not bool(result.passed)), "evidence": evidence}


def _generic_evidence(result) -> dict:
    if hasattr(result, "to_dict"):
        data = result.to_dict()
    elif hasattr(result, "__dataclass_fields__"):
        from dataclasses import asdict

        data = asdict(result)
    elif isinstance(result, dict):
        data = dict(result)
    else:
        data = {"value": repr(result)}
    return jsonable(data)


def jsonable(value):
    """Plain JSON types (floats kept finite-or-string, tensors/arrays to lists)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (int, str, bool)) or value is None:
        return value
    return repr(value)


register_stage(Stage("exact", plan_exact, run_exact, "Exact law by enumeration", order=10), replace=False)
register_stage(Stage("check", plan_check, run_check, "Statistical check against the exact law", order=20), replace=False)
register_stage(Stage("calibration", plan_calibration, run_calibration_cell, "Calibration of p-values", order=30), replace=False)
register_stage(Stage("mutation", plan_mutation, run_mutation, "Mutants (wrong samplers) must be caught", order=40), replace=False)
register_stage(Stage("depth", plan_depth, run_depth_cell, "Parallel depth versus n", order=50), replace=False)
register_stage(Stage("diffusion", plan_diffusion, run_diffusion_cell, "Diffusion samplers", available=diffusion_available,
                     order=60), replace=False)
