"""Audit plugin: third-party implementations under the harness (issue 7, extra ``peers``).

Stage ``peers``, one cell per adapter of ``verification.peers``:

* ``transformers``: ``generation.utils._speculative_sampling`` (assisted
  generation), exact output law by intercepting its random calls, plus the
  minimal instance of the zero-probability deviation;
* ``diffusers-ddpm``: ``DDPMScheduler`` against the exact VP-DDPM chain law;
* ``diffusers-paradigms``: ``DDPMParallelScheduler`` (ParaDiGMS) measured like
  our Picard sampler.

Each cell keeps the adapter's rows (verdict and evidence, package versions)
for the report's third-party table.  A third party's deviation is a finding,
reported with its evidence, not a failure of this audit (verdict
``deviation``); a package that is absent or changed gives ``skip`` with the
reason; an adapter that crashes is an ``error``; a documented-lossy mode that
is not flagged is an ``undetected`` negative control (the harness failed).
"""

from __future__ import annotations

import traceback
from importlib import metadata
from typing import Any

__all__ = ["ADAPTERS", "plan_peers", "run_peers", "peer_verdict", "register_audit"]

# cell key -> (package, what it audits)
ADAPTERS = {
    "transformers": ("transformers", "_speculative_sampling (assisted generation)"),
    "diffusers-ddpm": ("diffusers", "DDPMScheduler"),
    "diffusers-paradigms": ("diffusers", "DDPMParallelScheduler (ParaDiGMS)"),
}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def plan_peers(config) -> list[dict]:
    if not config.setting("peers"):
        return []
    quick = config.mode == "quick"
    return [{"id": f"peers/{key}/{routine}", "stage": "peers", "sampler": f"{package} {routine}", "sampler_ref": key,
             "claims_exact": False, "mutant": False, "target": "synthetic oracles", "check": "third-party audit",
             "params": {"adapter": key, "quick": quick}}
            for key, (package, routine) in ADAPTERS.items()]


def _rows(key: str, quick: bool) -> list[dict]:
    from verification import peers
    from verification.peers.diffusers_ddpm import audit_ddpm, audit_paradigms

    if key == "transformers":
        return peers.transformers_cells(quick)
    return [audit_ddpm() if key == "diffusers-ddpm" else audit_paradigms()]


def peer_verdict(rows: list[dict]) -> str:
    verdicts = [str(r["verdict"]) for r in rows]
    if any(v == "error" for v in verdicts):
        return "error"
    if any("not flagged" in v for v in verdicts):
        return "undetected"
    if verdicts and all(v == "skip" for v in verdicts):
        return "skip"
    if any(v.startswith("fail") or v == "deviation" for v in verdicts):
        return "deviation"
    return "pass"


def run_peers(spec: dict, seed: int) -> dict:
    from verification.peers import PeerUnavailable

    key = spec["params"]["adapter"]
    package, routine = ADAPTERS[key]
    try:
        rows = _rows(key, spec["params"]["quick"])
    except PeerUnavailable as reason:
        rows = [{"sampler": f"{package} {routine}", "target": "-", "check": "peer audit", "verdict": "skip",
                 "evidence": {"reason": str(reason)}}]
    except Exception:  # an adapter crash is a finding about the adapter, not a skip
        rows = [{"sampler": f"{package} {routine}", "target": "-", "check": "peer audit", "verdict": "error",
                 "evidence": {"traceback": traceback.format_exc(limit=8)}}]
    verdict = peer_verdict(rows)
    evidence: dict[str, Any] = {"package": package, "version": _version(package), "written_against": _written_against(key),
                "routine": routine, "rows": rows,
                "negative_control": verdict == "undetected"}
    if verdict == "error":
        evidence["error"] = next(r["evidence"]["traceback"].strip().splitlines()[-1] for r in rows if r["verdict"] == "error")
        evidence["traceback"] = next(r["evidence"]["traceback"] for r in rows if r["verdict"] == "error")
    if verdict == "skip":
        evidence["reason"] = rows[0]["evidence"]["reason"]
    repro = [r for r in rows if "repro" in r.get("evidence", {})]
    if repro:
        evidence["repro"] = _repro(repro[0])
    return {"verdict": verdict, "evidence": evidence}


def _written_against(key: str) -> str | None:
    """The version the adapter was written against (it skips when the routine has changed)."""
    from verification.peers import diffusers_ddpm, transformers_speculative

    return (transformers_speculative if key == "transformers" else diffusers_ddpm).WRITTEN_AGAINST


def _repro(row: dict) -> dict:
    """The minimal reproducing instance of ``zero_probability_repro`` (its row), described for the report."""
    return {
        "verdict": row["verdict"],
        "instance": "one token (n = 1, vocabulary 2), target P = [1, 0], draft D = [1/2, 1/2], gamma = 1, float32 logits",
        "routine_probability": row["evidence"]["routine_probability"],
        "exact_probability": row["evidence"]["exact"],
        "cause": "the routine accepts a drafted token iff r <= p/q with r = torch.rand_like(...); on CPU r = 0.0 has "
                 "probability 2^-24, so the impossible token 1 (p = 0) is drafted with probability 1/2 and accepted "
                 "with probability 2^-24: P(emit 1) = 2^-25 = 2.98e-8, where the exact value is 0",
        "reproduce": "python -c 'from verification.peers.transformers_speculative import zero_probability_repro; "
                     "print(zero_probability_repro())'",
    }


def register_audit(registry) -> None:
    registry.register_stage(registry.Stage("peers", plan_peers, run_peers, "Third-party implementations (extra peers)",
                                           order=70))
