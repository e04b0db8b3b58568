"""Audit plugin: draft-model speculative decoding and the inexact baselines (issue 7).

* Samplers ``DraftSpeculative(<rule>, <draft>)`` for the exact-law and check
  cells.  Their draft oracle is built from the target's oracle at sample time
  (a tempered copy, its argmax, or a mix with the uniform law), so one sampler
  serves every audit target; the draft is a known law before the draw, which
  is all exactness needs.
* Stage ``controls``: speed versus error.  Every inexact baseline of
  ``autospec.samplers.baselines`` beside the exact samplers on the instances
  of ``verification.speed_error``, each with its exact TV (by ``exact_law``)
  and expected depth (target + draft rounds).  A baseline is a negative control: it must be
  flagged (verdict ``flagged``); one that is not (``undetected``) fails the
  audit, because then the instance or the harness cannot see the error it
  exists to show.
"""

from __future__ import annotations

from autospec.samplers.base import Sampler

__all__ = ["DRAFTS", "DRAFT_SAMPLERS", "TargetDraftSpeculative", "plan_controls", "run_controls", "register_audit"]

# draft kind -> (label, how the draft oracle is built from the target's oracle)
DRAFTS = {
    "tempered": "tempered T=0.5",
    "argmax": "argmax (zeros where the target has mass)",
    "mixed": "half uniform (mass where the target has none)",
}


class TargetDraftSpeculative(Sampler):
    """``DraftSpeculative`` whose draft oracle is made from the target's oracle when sampling.

    Draft rounds are counted by ``DraftSpeculative`` itself: the rounds and
    queries reported are target plus draft (sequential depth; split in ``info``).
    """

    def __init__(self, rule: str = "token", draft: str = "tempered", block_size: int = 2, num_drafts: int | None = None,
                 order: str = "random"):
        super().__init__()
        if draft not in DRAFTS:
            raise ValueError(f"draft must be one of {sorted(DRAFTS)}, got {draft!r}")
        self.rule, self.draft, self.block_size, self.num_drafts, self.order = rule, draft, block_size, num_drafts, order
        self._make(None)  # validates rule, block size and drafts now, not at the first sample
        multi = f", m={num_drafts or 2}" if rule == "multi" else ""
        self.name = f"DraftSpeculative({rule}{multi}, k={block_size}, draft={draft})"

    def _make(self, oracle):
        from autospec.samplers.draft_speculative import DraftSpeculative
        from autospec.targets.perturbed import MixtureOracle, TemperedOracle

        if oracle is None:  # a stand-in with the right attributes, only to validate the arguments
            from autospec.targets import TabularTarget

            oracle = TabularTarget.random(1, 2, seed=0).oracle()
        draft = {"tempered": lambda: TemperedOracle(oracle, 0.5), "argmax": lambda: TemperedOracle(oracle, 0.0),
                 "mixed": lambda: MixtureOracle(oracle, None, 0.5)}[self.draft]()
        return DraftSpeculative(draft, block_size=self.block_size, rule=self.rule, num_drafts=self.num_drafts,
                                order=self.order)

    def sample(self, oracle, num_samples, rng):
        return self._make(oracle).sample(oracle, num_samples, rng)


# registry key -> constructor arguments
DRAFT_SAMPLERS = {
    "DraftSpeculative(token)": dict(rule="token"),
    "DraftSpeculative(block)": dict(rule="block"),
    "DraftSpeculative(specinfer)": dict(rule="specinfer", num_drafts=2),
    "DraftSpeculative(spectr)": dict(rule="spectr", num_drafts=2),
    "DraftSpeculative(token,argmax)": dict(rule="token", draft="argmax"),
    "DraftSpeculative(block,argmax)": dict(rule="block", draft="argmax"),
    "DraftSpeculative(specinfer,mixed)": dict(rule="specinfer", num_drafts=2, draft="mixed"),
    "DraftSpeculative(spectr,mixed)": dict(rule="spectr", num_drafts=2, draft="mixed"),
}
# earlier names, still accepted by --sampler / --only ("multi" was the SpecInfer rule's name before SpecTr came)
DRAFT_SAMPLER_ALIASES = {
    "DraftSpeculative(multi)": "DraftSpeculative(specinfer)",
    "DraftSpeculative(multi,mixed)": "DraftSpeculative(specinfer,mixed)",
}


# ---------------------------------------------------------------- speed versus error

def _instances(config) -> tuple[bool, list]:
    from verification import speed_error

    quick = config.setting("speed_error") == "quick"
    return quick, speed_error.instances(quick)


def plan_controls(config) -> list[dict]:
    from verification import speed_error
    from verification.audit.stages import _spec

    quick, targets = _instances(config)
    cells = []
    for t_index, target in enumerate(targets):
        for s_index, sampler in enumerate(speed_error.samplers_for(target, quick)):
            cell = _spec("controls", f"speed-error:{t_index}:{s_index}", sampler, target.name, "speed-vs-error",
                         instances="quick" if quick else "full", instance=t_index, index=s_index)
            cell["negative_control"] = not cell["claims_exact"]
            cells.append(cell)
    return cells


def run_controls(spec: dict, seed: int) -> dict:
    """Exact TV and expected rounds of one sampler on one instance (a proof on that instance)."""
    from verification import speed_error
    from verification.audit.stages import judge

    params = spec["params"]
    quick = params["instances"] == "quick"
    target = speed_error.instances(quick)[params["instance"]]
    sampler = speed_error.samplers_for(target, quick)[params["index"]]
    row = speed_error.speed_error_row(sampler, target)
    if row["sampler"] != spec["sampler"]:
        raise RuntimeError(f"speed-vs-error sampler list changed: expected {spec['sampler']!r}, got {row['sampler']!r}")
    if row["claims_exact"]:
        rejected = row["verdict"] != "exact"
    else:
        rejected = row["verdict"] == "flagged"
    evidence = {
        "exact_tv": row["tv"],
        "unexplored_mass": row["unexplored_mass"],
        "expected_rounds": row["expected_rounds"],
        "expected_queries": row["expected_queries"],
        "leaves": row["leaves"],
        "draft": row["draft"],
        "tolerance": speed_error.EXACT_TV if row["claims_exact"] else None,
        "flag_tv": None if row["claims_exact"] else speed_error.FLAG_TV,
        "negative_control": spec.get("negative_control", False),
    }
    return {"verdict": judge(spec, rejected=rejected), "evidence": evidence}


def register_audit(registry) -> None:
    for key, kwargs in DRAFT_SAMPLERS.items():
        registry.register_sampler(key, lambda kwargs=kwargs: TargetDraftSpeculative(**kwargs))
    for old, key in DRAFT_SAMPLER_ALIASES.items():
        registry.register_sampler(old, lambda kwargs=DRAFT_SAMPLERS[key]: TargetDraftSpeculative(**kwargs))
    registry.register_stage(registry.Stage(
        "controls", plan_controls, run_controls,
        "Negative controls: inexact baselines, exact TV versus expected rounds", order=45))
