"""What an audit runs: its mode, seed, sample sizes, and the per-cell seeds.

Cell seeds come from the audit seed and the cell id through SHA-256, never
Python's ``hash()`` (salted per process), so a cell gives the same result in
any process, on any machine, in any order.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["AuditConfig", "MODES", "cell_seed"]


# Draft-model speculative decoding (verification.audit.controls), every rule, drafts made from the target.
DRAFT_SPECULATIVE = ["DraftSpeculative(token)", "DraftSpeculative(block)", "DraftSpeculative(specinfer)",
                     "DraftSpeculative(spectr)", "DraftSpeculative(token,argmax)", "DraftSpeculative(block,argmax)",
                     "DraftSpeculative(specinfer,mixed)", "DraftSpeculative(spectr,mixed)"]

MODES: dict[str, dict[str, Any]] = {
    # quick: small enough for a fresh clone on two cores in a few minutes.
    "quick": {
        "exact_targets": ["tab-n3q2-zeros", "tab-n3q3"],
        "exact_samplers": ["Sequential", "TokenSpeculative(2)", "SequenceSpeculative(2)", "TokenSpeculative(3)", "SequenceSpeculative(3)"],
        "check_targets": ["tab-n4q3-zeros", "markov-n12q2", "markov-sticky-n24q2"],
        "check_samplers": ["Sequential", "TokenSpeculative(2)", "SequenceSpeculative(2)", "TokenSpeculative(3)", "SequenceSpeculative(3)"],
        "num_samples": 20_000,
        "alpha": 1e-4,
        # draft-model speculative decoding: every rule on small targets (multi-draft enumeration grows fast)
        "draft_samplers": DRAFT_SPECULATIVE[:4],  # token, block and both multi-draft rules
        "draft_exact_targets": ["tab-n3q2-zeros"],
        "draft_check_targets": ["tab-n4q3-zeros", "markov-n12q2"],
        "calibration_samplers": ["Sequential", "SequenceSpeculative(2)"],
        "calibration_target": "tab-n3q2-zeros",
        "calibration_tests": ["pearson"],
        "calibration_runs": 200,
        "calibration_samples": 300,
        "calibration_alpha": 1e-3,
        "calibration_interval": 0.99,  # level of the binomial interval for the rejection count
        # far tail: false-fail rate of the real decisions vs nominal on a sparse peaked table (calibration.py)
        "calibration_far_tail": {"num_samples": 300, "tests": ["pearson", "corrected"], "alphas": [1e-2, 1e-3],
                                 "rows": 4_000},
        "mutant_seeds": 1,
        "depth_ns": [16, 32, 64, 128],
        "depth_samples": 64,
        "diffusion_samples": 4_000,
        "speed_error": "quick",  # the instances of verification.speed_error
        "peers": True,  # third-party audits (verification.peers), about 45 s
    },
    "full": {
        "exact_targets": ["tab-n3q2-zeros", "tab-n3q3", "tab-n4q2-zeros"],
        "exact_samplers": ["Sequential", "TokenSpeculative(2)", "SequenceSpeculative(2)", "TokenSpeculative(3)", "SequenceSpeculative(3)"],
        "check_targets": ["tab-n4q3-zeros", "tab-n6q2", "markov-n12q2", "markov-sticky-n24q2"],
        "check_samplers": ["Sequential", "TokenSpeculative(2)", "SequenceSpeculative(2)", "TokenSpeculative(4)", "SequenceSpeculative(4)"],
        "num_samples": 100_000,
        "alpha": 1e-5,
        "draft_samplers": DRAFT_SPECULATIVE,
        "draft_exact_targets": ["tab-n3q2-zeros"],
        "draft_check_targets": ["tab-n4q3-zeros", "tab-n6q2", "markov-n12q2", "markov-sticky-n24q2"],
        "calibration_samplers": ["Sequential", "TokenSpeculative(3)", "SequenceSpeculative(3)", "DraftSpeculative(block)"],
        "calibration_target": "tab-n3q3",
        "calibration_tests": ["pearson", "likelihood-ratio", "marginals"],
        "calibration_runs": 200,
        "calibration_samples": 1_000,
        "calibration_alpha": 1e-3,
        "calibration_interval": 0.99,  # level of the binomial interval for the rejection count
        "calibration_far_tail": {"num_samples": 1_000, "tests": ["pearson", "corrected", "auto"],
                                 "alphas": [1e-2, 1e-3, 1e-4], "rows": 40_000},
        "mutant_seeds": 10,
        "depth_ns": [16, 32, 64, 128, 256, 512],
        "depth_samples": 500,
        "diffusion_samples": 20_000,
        "speed_error": "full",
        "peers": True,
    },
}


@dataclass
class AuditConfig:
    """Everything that decides an audit's cells and their results.

    ``extra_samplers``: samplers added by the user, each a ``module:attr``
    string or a sampler object (objects must be picklable for --jobs > 1 or
    a scheduler).  ``overrides`` replaces entries of the mode's table (tests
    use it for tiny audits).
    """

    mode: str = "quick"
    seed: int = 0
    only: list[str] = field(default_factory=list)
    extra_samplers: list[Any] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"audit mode must be one of {sorted(MODES)}, got {self.mode!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"audit seed must be a non-negative int, got {self.seed!r}")
        unknown = set(self.overrides) - set(MODES[self.mode])
        if unknown:
            raise ValueError(f"unknown audit settings {sorted(unknown)}; known: {sorted(MODES[self.mode])}")

    def setting(self, key: str) -> Any:
        return self.overrides.get(key, MODES[self.mode][key])

    def settings(self) -> dict[str, Any]:
        return {**MODES[self.mode], **self.overrides}

    def fingerprint(self) -> dict[str, Any]:
        """What must agree for --resume to reuse finished cells."""
        return {"mode": self.mode, "seed": self.seed, "settings": self.settings()}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["extra_samplers"] = [s if isinstance(s, str) else repr(s) for s in self.extra_samplers]
        return data


def cell_seed(audit_seed: int, cell_id: str) -> int:
    """A 63-bit seed for one cell, from the audit seed and the cell id (SHA-256)."""
    digest = hashlib.sha256(f"autospec-audit:{audit_seed}:{cell_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1
