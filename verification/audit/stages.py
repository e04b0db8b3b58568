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


def _pairs(config, samplers_key: str, targets_key: str) -> list[tuple[str, Any, str]]:
    """(ref, sampler, target) of the main matrix, then of the draft-model samplers on their own
    (smaller) targets: enumerating a multi-draft sampler on n = 3, q = 3 takes minutes."""
    pairs = [(ref, s, t) for ref, s in _sampler_refs(config, samplers_key) for t in config.setting(targets_key)]
    drafts = [(ref, build_sampler(ref)) for ref in config.setting("draft_samplers")]
    draft_targets = config.setting("draft_" + targets_key)
    return pairs + [(ref, s, t) for ref, s in drafts for t in draft_targets]


def judge(spec: dict, rejected: bool, inconclusive: bool = False) -> str:
    """Verdict of a cell whose check rejected (or not) the hypothesis "exact".  An inconclusive check (it could
    not have seen a deviation of its tolerance, or its Monte Carlo budget cannot resolve alpha) neither passes a
    sampler nor catches a mutant: its cell says "inconclusive", which fails the audit."""
    if inconclusive and not rejected:
        return "inconclusive"
    if spec.get("mutant"):
        return "caught" if rejected else "missed"
    if spec.get("claims_exact", True):
        return "fail" if rejected else "pass"
    return "flagged" if rejected else "undetected"


# ---------------------------------------------------------------- exact law

def plan_exact(config) -> list[dict]:
    return [_spec("exact", ref, sampler, target, "exact-law") for ref, sampler, target in _pairs(config, "exact_samplers", "exact_targets")]


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
    return [_spec("check", ref, sampler, target, "check_exact", num_samples=config.setting("num_samples"),
                  alpha=config.setting("alpha"))
            for ref, sampler, target in _pairs(config, "check_samplers", "check_targets")]


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
    return {"verdict": judge(spec, rejected=result.verdict == "fail", inconclusive=result.verdict == "inconclusive"),
            "evidence": _check_evidence(result)}


# ---------------------------------------------------------------- calibration

def plan_calibration(config) -> list[dict]:
    target = config.setting("calibration_target")
    specs = [
        _spec("calibration", ref, build_sampler(ref), target, f"p-value-uniformity ({test})", test=test,
              runs=config.setting("calibration_runs"), num_samples=config.setting("calibration_samples"),
              alpha=config.setting("calibration_alpha"), interval=config.setting("calibration_interval"))
        for ref in config.setting("calibration_samplers") for test in config.setting("calibration_tests")
    ]
    far_tail = config.settings().get("calibration_far_tail")
    if specs and far_tail:  # the decisions' far tail does not depend on the sampler: measured once, on the first cell
        specs[0]["params"]["far_tail"] = dict(far_tail)
    return specs


def run_calibration_cell(spec: dict, seed: int) -> dict:
    """``verification.calibration.run_calibration`` on one (sampler, target, test).

    Its p-values over ``runs`` independent blocks must be uniform (KS at
    ``alpha``) and its rejection count at level 0.05 inside the 99% binomial
    interval; conservative tests (Holm, Bonferroni) are held to the upper end
    only.
    """
    from verification.calibration import run_calibration

    params = spec["params"]
    pair = (build_sampler(spec["sampler_ref"]), build_target(spec["target"]))
    result = run_calibration([pair], tests=(params["test"],), num_seeds=params["runs"], num_samples=params["num_samples"],
                             ks_alpha=float(params["alpha"]), interval=float(params.get("interval", 0.99)),
                             seed=seed % 2**31)
    row = result["rows"][0]
    evidence = {
        "test": f"{row['test']}: KS uniformity of p-values" + (" (one-sided: conservative test)" if row["one_sided"] else ""),
        "statistic": row["ks_statistic"], "p_value": row["ks_p_value"], "alpha": row["ks_alpha"],
        "rejections": row["rejections"], "rejection_alpha": row["alpha"], "binomial_interval": row["binomial_interval"],
        "runs": row["num_seeds"], "num_samples": row["num_samples"], "p_values": row["p_values"],
    }
    passed = row["passed"]
    if params.get("far_tail"):  # measured false-fail rate vs nominal, Clopper-Pearson intervals (calibration.py)
        from verification.calibration import run_far_tail_calibration

        far = params["far_tail"]
        tail = run_far_tail_calibration(num_samples=far["num_samples"], tests=tuple(far["tests"]),
                                        alphas=tuple(far["alphas"]), rows=far["rows"], seed=seed % 2**31)
        evidence["far_tail"] = _without_timings(tail)  # a cell's evidence is the same in every process
        passed = passed and tail["passed"]
    return {"verdict": judge(spec, rejected=not passed), "evidence": evidence}


def _without_timings(value):
    """``value`` without its "seconds" entries (wall-clock times differ between equal runs)."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


# ---------------------------------------------------------------- mutation

def plan_mutation(config) -> list[dict]:
    from verification.mutants import catalogue
    from verification.mutation import instance_for

    cells = []
    for mutant in catalogue("discrete"):
        cell = _spec("mutation", f"mutant:{mutant.name}", mutant.make(), instance_for(mutant).name, "exact-law + check_exact",
                     mutant=mutant.name, description=" ".join(mutant.description.split()),
                     num_seeds=config.setting("mutant_seeds"), alpha=config.setting("alpha"))
        cell.update(claims_exact=False, mutant=True, sampler=f"mutant:{mutant.name}",
                    id=f"mutation/mutant:{mutant.name}/{cell['target']}/{cell['check']}")
        cells.append(cell)
    return cells


def run_mutation_cell(spec: dict, seed: int) -> dict:
    """``verification.mutation.run_mutation`` on one mutant, on its own instance.

    Caught when its exact law is off (TV > 1e-10, a proof) and the
    statistical check (default budget) rejects it in 99% of the seeds, the
    latter only where the TV is at least the check's min_detectable_tv.
    """
    from verification.mutation import run_mutation

    params = spec["params"]
    result = run_mutation([params["mutant"]], num_seeds=params["num_seeds"], alpha=float(params["alpha"]), seed=seed % 2**31)
    row = result["rows"][0]
    evidence = {k: v for k, v in row.items() if "seconds" not in k}  # timings differ between equal runs
    return {"verdict": judge(spec, rejected=result["passed"]), "evidence": evidence}


# ---------------------------------------------------------------- depth

DEPTH_SAMPLERS = {"Sequential": "sequential", "TokenSpeculative(adaptive)": "token", "SequenceSpeculative(adaptive)": "sequence"}


def plan_depth(config) -> list[dict]:
    return [
        {"id": f"depth/{key}/markov-sticky/rounds-vs-n", "stage": "depth", "sampler": key, "sampler_ref": key,
         "claims_exact": True, "mutant": False, "target": "markov-sticky", "check": "rounds-vs-n",
         "params": {"ns": list(config.setting("depth_ns")), "num_samples": config.setting("depth_samples")}}
        for key in DEPTH_SAMPLERS
    ]


def run_depth_cell(spec: dict, seed: int) -> dict:
    """``verification.depth.run_depth`` for one sampler (adaptive block size) on sticky chains (family
    "markov"): mean rounds and queries with 95% intervals, the OLS exponent with its interval, theory."""
    from verification import depth

    params = spec["params"]
    kind = DEPTH_SAMPLERS[spec["sampler_ref"]]
    config = depth.DepthConfig(ns=list(params["ns"]), families=["markov"], samplers=[kind], fixed=[], adaptive=True,
                               samples={n: params["num_samples"] for n in params["ns"]}, seed=seed % 2**31,
                               sequential_samples_large=params["num_samples"])
    result = depth.run_depth(config, log=lambda *args, **kwargs: None)
    records = sorted(result["records"], key=lambda r: r["n"])
    fit = next(f for f in result["fits"] if f["policy"] == ("-" if kind == "sequential" else "adaptive"))
    fitted = [r for r in records if r["n"] in fit["ns"]]

    def intercept(key: str, slope: float) -> float:  # an OLS line passes through the means of the logs
        return float(np.mean(np.log([r[key] for r in fitted])) - slope * np.mean(np.log(fit["ns"])))

    evidence = {
        "ns": [r["n"] for r in records], "mean_rounds": [r["rounds_mean"] for r in records],
        "rounds_ci": [r["rounds_ci"] for r in records],
        "mean_queries": [r["queries_mean"] for r in records], "queries_ci": [r["queries_ci"] for r in records],
        "rounds_exponent": fit["slope"], "rounds_exponent_ci": fit["slope_ci"], "fit_ns": fit["ns"],
        "rounds_intercept": intercept("rounds_mean", fit["slope"]),
        "queries_exponent": fit["queries_slope"], "queries_intercept": intercept("queries_mean", fit["queries_slope"]),
        "theory_exponent": fit["theory"], "lower_bound_exponent": fit["lower_bound"],
        "num_samples": params["num_samples"], "family": "markov (sticky chain, q=2, stay=0.9)",
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
register_stage(Stage("mutation", plan_mutation, run_mutation_cell, "Mutants (wrong samplers) must be caught", order=40), replace=False)
register_stage(Stage("depth", plan_depth, run_depth_cell, "Parallel depth versus n", order=50), replace=False)
register_stage(Stage("diffusion", plan_diffusion, run_diffusion_cell, "Diffusion samplers", available=diffusion_available,
                     order=60), replace=False)
