"""Audits of third-party implementations under the harness (optional extra ``peers``).

Each adapter states the version it was written against and raises
``PeerUnavailable`` (a skip, with the reason) when the package is absent or the
routine has changed.  ``run_peer_audits()`` returns JSON-able audit cells.

* ``transformers_speculative``: transformers' ``_speculative_sampling``
  (assisted generation), exact output law by intercepting its random calls.
* ``transformers_generate``: ``generate(do_sample=True, assistant_model=...)``
  end to end with two tiny random Llamas, its random calls intercepted; its
  exact law against plain sampling's, per logits processor and candidate
  generator.
* ``diffusers_ddpm``: diffusers' DDPMScheduler against the exact VP-DDPM chain
  law of a Gaussian target; DDPMParallelScheduler (ParaDiGMS) measured like a
  Picard sampler.
"""

from __future__ import annotations

import traceback

from verification.peers.transformers_speculative import PeerUnavailable

__all__ = ["PeerUnavailable", "run_peer_audits", "transformers_cells"]

EXACT_TV = 1e-10


def _skip(sampler: str, reason: str) -> dict:
    return {"sampler": sampler, "target": "-", "check": "peer audit", "verdict": "skip", "evidence": {"reason": reason}}


def transformers_cells(quick: bool = True) -> list[dict]:
    import torch

    from autospec.targets import TabularTarget
    from autospec.targets.perturbed import TemperedOracle
    from verification.peers import transformers_speculative as hf

    routine, version = hf.load_speculative_sampling()
    name = f"transformers {version} generation.utils._speculative_sampling"
    target = TabularTarget.random(n=2, q=3, seed=1, concentration=0.5, zero_fraction=0.3)
    other = TabularTarget.random(n=2, q=3, seed=7, zero_fraction=0.4)
    pairs = [(TemperedOracle(target, 0.5), "tempered T=0.5"), (other, "other table (mass where target has none)")]
    cells = []
    for draft, label in pairs:
        zero = target.probs == 0
        ideal = hf.speculative_decoding_law(target, draft, gamma=2, dtype=torch.float64, model="ideal", routine=routine)
        grid = hf.speculative_decoding_law(target, draft, gamma=2, dtype=torch.float32, model="cpu-grid", routine=routine)
        tv_ideal = ideal.tv(target.probs)
        cells.append({
            "sampler": name, "target": f"{target.name}, draft {label}", "check": "exact law (float64, ideal uniform)",
            "verdict": "pass" if tv_ideal < EXACT_TV else "fail",
            "evidence": {"transformers": version, "written_against": hf.WRITTEN_AGAINST, "tv": tv_ideal,
                         "failed_mass": ideal.failed_mass, "expected_calls": ideal.expected_calls},
        })
        zero_mass = float(grid.probs[zero].sum())
        cells.append({
            "sampler": name, "target": f"{target.name}, draft {label}",
            "check": "exact law (float32 logits, torch CPU uniform grid 2^-24)",
            "verdict": "deviation" if zero_mass > 0 else "pass (rounding only)",
            "evidence": {"transformers": version, "tv": grid.tv(target.probs), "mass_on_target_zero_cells": zero_mass,
                         "explanation": "accept iff r <= p/q with r = torch.rand_like(); on CPU r = 0.0 has probability "
                                        "2^-24, so a drafted token of target probability 0 is accepted with that "
                                        "probability; the rest of the TV is float32 rounding"},
        })
    ensemble = hf.speculative_decoding_law(target, pairs[0][0], gamma=2, dtype=torch.float64, model="ideal",
                                           routine=routine, assistant_ensemble_weight=0.5)
    tv = ensemble.tv(target.probs)
    cells.append({
        "sampler": name + " (assistant_ensemble_weight=0.5, documented lossy)", "target": target.name,
        "check": "exact law: a documented-inexact mode must be flagged",
        "verdict": "pass (flagged)" if tv > 1e-3 else "fail (not flagged)",
        "evidence": {"transformers": version, "tv": tv},
    })
    from verification.peers.transformers_generate import generate_cells

    cells += generate_cells(quick)
    p_bad, p_exact = hf.zero_probability_repro()
    cells.append({
        "sampler": name, "target": "n=1, P=[1,0], draft D=[1/2,1/2], float32",
        "check": "minimal reproduction: probability of emitting a target-impossible token",
        "verdict": "deviation" if p_bad > p_exact else "pass",
        "evidence": {"transformers": version, "routine_probability": p_bad, "exact": p_exact,
                     "repro": "verification.peers.transformers_speculative.zero_probability_repro"},
    })
    return cells


def run_peer_audits(quick: bool = True) -> list[dict]:
    """Audit cells for every peer adapter; a missing or changed package gives a 'skip' cell with the reason."""
    cells: list[dict] = []
    try:
        cells += transformers_cells(quick)
    except PeerUnavailable as reason:
        cells.append(_skip("transformers _speculative_sampling", str(reason)))
    except Exception:  # an adapter crash is a finding, not a skip
        cells.append({"sampler": "transformers _speculative_sampling", "target": "-", "check": "peer audit",
                      "verdict": "error", "evidence": {"traceback": traceback.format_exc()}})
    try:
        from verification.peers.diffusers_ddpm import audit_ddpm, audit_paradigms

        cells.append(audit_ddpm())
        cells.append(audit_paradigms())
    except PeerUnavailable as reason:
        cells.append(_skip("diffusers DDPMScheduler / DDPMParallelScheduler", str(reason)))
    except Exception:
        cells.append({"sampler": "diffusers schedulers", "target": "-", "check": "peer audit", "verdict": "error",
                      "evidence": {"traceback": traceback.format_exc()}})
    return cells
