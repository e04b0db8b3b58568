"""The correctness audit: every sampler x target x check, one result per cell.

``run_audit(AuditConfig(mode="quick"), out_dir="reports")`` writes
``results.json`` (incrementally, resumable) and ``index.html``.  Stages plug
in through ``verification.audit.registry``.
"""

from verification.audit.config import MODES, AuditConfig, cell_seed
from verification.audit.registry import Stage, register_sampler, register_stage, register_target
from verification.audit.runner import (
    FAILING_VERDICTS,
    AuditError,
    AuditOutcome,
    execute_cell,
    plan_audit,
    run_audit,
    strip_timings,
)
from verification.audit.table import format_table

__all__ = [
    "AuditConfig",
    "AuditError",
    "AuditOutcome",
    "FAILING_VERDICTS",
    "MODES",
    "Stage",
    "cell_seed",
    "execute_cell",
    "format_table",
    "plan_audit",
    "register_sampler",
    "register_stage",
    "register_target",
    "run_audit",
    "strip_timings",
]
