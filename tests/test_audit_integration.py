"""Issue 7 in the audit: DraftSpeculative cells, inexact baselines as negative controls (speed versus
error), third-party verdicts with versions; the stages that run verification.calibration/mutation/depth."""

from __future__ import annotations

import copy
from importlib import metadata

import pytest

from verification.audit import AuditConfig, plan_audit, run_audit, third_party
from verification.audit.controls import TargetDraftSpeculative
from verification.audit.runner import _summary, failing_cells
from verification.peers import PeerUnavailable
from verification.report import render_report

ONLY = ["controls/*", "peers/transformers/*", "exact/DraftSpeculative*", "check/DraftSpeculative(block*",
        "mutation/mutant:block-residual-unscaled/*", "depth/SequenceSpeculative*"]
SMALL = {"draft_exact_targets": ["tab-n3q2-zeros"], "draft_samplers": ["DraftSpeculative(token)", "DraftSpeculative(block)"],
         "draft_check_targets": ["tab-n4q3-zeros"], "num_samples": 3000, "depth_ns": [16, 32], "depth_samples": 8}


def _transformers_version():
    try:
        return metadata.version("transformers")
    except metadata.PackageNotFoundError:
        return None


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    out = tmp_path_factory.mktemp("integration")
    return run_audit(AuditConfig(only=ONLY, overrides=SMALL), out_dir=out, progress=False)


@pytest.mark.statistical(alpha=1e-4)  # one check cell of DraftSpeculative (the same event as test_draft_speculative_cells_are_exact)
def test_the_integrated_audit_passes(audit):
    assert audit.exit_code == 0, audit.document["summary"]
    stages = {c["stage"] for c in audit.cells}
    assert {"controls", "peers", "exact", "check", "mutation", "depth"} <= stages


def test_every_baseline_is_flagged_and_every_exact_sampler_passes(audit):
    controls = [c for c in audit.cells if c["stage"] == "controls"]
    baselines = [c for c in controls if not c["claims_exact"]]
    assert len(baselines) >= 4 and all(c["negative_control"] for c in baselines)
    for cell in baselines:
        assert cell["verdict"] == "flagged", cell
        assert cell["evidence"]["exact_tv"] > cell["evidence"]["flag_tv"]
    for cell in controls:
        if cell["claims_exact"]:
            assert cell["verdict"] == "pass" and cell["evidence"]["exact_tv"] < 1e-10, cell


def test_draft_speculative_cells_are_exact(audit):
    exact = [c for c in audit.cells if c["stage"] == "exact"]
    assert {c["sampler"].split(",")[0] for c in exact} == {"DraftSpeculative(token", "DraftSpeculative(block"}
    assert all(c["verdict"] == "pass" and c["evidence"]["exact_tv"] < 1e-10 for c in exact)
    checks = [c for c in audit.cells if c["stage"] == "check"]
    assert checks and all(c["verdict"] == "pass" for c in checks)


def test_mutation_and_depth_come_from_the_statistics_and_depth_modules(audit):
    (mutant,) = [c for c in audit.cells if c["stage"] == "mutation"]
    assert mutant["verdict"] == "caught" and mutant["evidence"]["flagged_by_exact_law"]
    (depth,) = [c for c in audit.cells if c["stage"] == "depth"]
    low, high = depth["evidence"]["rounds_exponent_ci"]
    assert low <= depth["evidence"]["rounds_exponent"] <= high
    assert depth["evidence"]["theory_exponent"] == 0.5


def test_report_has_speed_error_and_third_party_tables(audit):
    html = audit.report_path.read_text()
    assert 'id="speed-error-table"' in html and 'id="third-party-table"' in html
    for cell in audit.cells:
        if cell["stage"] == "controls":
            assert cell["sampler"].replace("'", "&#39;") in html
    version = _transformers_version()
    if version is None:
        assert "skipped:" in html
    else:
        assert f'<td data-label="package">transformers</td><td data-label="version">{version}</td>' in html
        assert 'id="zero-probability-repro"' in html and "P = [1, 0]" in html


def test_an_unflagged_negative_control_fails_the_audit():
    cells = {"controls/B/t/speed-vs-error": {"id": "controls/B/t/speed-vs-error", "sampler": "B", "verdict": "undetected",
                                             "negative_control": True},
             "check/U/t/check_exact": {"id": "check/U/t/check_exact", "sampler": "U", "verdict": "undetected"}}
    assert [c["sampler"] for c in failing_cells(cells)] == ["B"]  # a user's inexact sampler is not a control
    assert _summary(cells)["unflagged_controls"] == ["B"]


def test_an_absent_peer_package_is_a_skip_with_its_reason(audit, monkeypatch):
    def absent(key, quick):
        raise PeerUnavailable("transformers is not installed (pip install 'autospec[peers]')")

    monkeypatch.setattr(third_party, "_rows", absent)
    spec = next(c for c in audit.cells if c["stage"] == "peers")
    outcome = third_party.run_peers(spec, 0)
    assert outcome["verdict"] == "skip" and "not installed" in outcome["evidence"]["reason"]
    document = copy.deepcopy(audit.document)
    document["cells"][spec["id"]].update(verdict="skip", evidence=outcome["evidence"])
    html = render_report(document)
    assert "skipped: transformers is not installed" in html


def test_peer_verdicts():
    verdict = third_party.peer_verdict
    assert verdict([{"verdict": "pass"}, {"verdict": "deviation"}]) == "deviation"
    assert verdict([{"verdict": "pass (flagged)"}, {"verdict": "pass (rounding only)"}]) == "pass"
    assert verdict([{"verdict": "fail (not flagged)"}]) == "undetected"
    assert verdict([{"verdict": "skip"}]) == "skip"
    assert verdict([{"verdict": "error"}, {"verdict": "pass"}]) == "error"


def test_quick_plan_has_the_issue_7_cells():
    specs, status = plan_audit(AuditConfig(mode="quick"))
    stages = {s["stage"] for s in specs}
    assert {"controls", "peers"} <= stages
    rules = {s["sampler"].split("(")[1].split(",")[0] for s in specs if s["sampler"].startswith("DraftSpeculative(")
             and s["stage"] in ("exact", "check")}
    assert rules == {"token", "block", "specinfer", "spectr"}


def test_target_draft_speculative_rejects_an_unknown_draft():
    with pytest.raises(ValueError, match="draft must be one of"):
        TargetDraftSpeculative(draft="nope")
