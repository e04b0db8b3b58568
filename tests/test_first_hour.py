"""Issue 14: a new user's first hour.  No lost results, one-line errors instead of tracebacks, progress in
logs, clear contract errors.  Each test here failed on the code before the fix."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from _audit_support import load

from verification import cli
from verification.audit import AuditConfig, AuditError, run_audit
from verification.audit.runner import AuditOutcome
from verification.audit.table import format_table

# One enumeration cell each: a fraction of a second.
EXACT_A = "exact/Sequential/tab-n3q2-zeros/*"
EXACT_B = "exact/TokenSpeculative(block_size=2)/tab-n3q2-zeros/*"


def _one_line_error(capsys, argv, *needles) -> str:
    code = cli.main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, (argv, captured.out, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


# ---------------------------------------------------------------- 1. no lost results, no green empty audit

def test_a_filter_that_matches_nothing_is_an_error_and_keeps_earlier_results(tmp_path, capsys):
    assert cli.main(["audit", "--out", str(tmp_path), "--only", EXACT_A, "--no-report"]) == 0
    before = (tmp_path / "results.json").read_text()
    capsys.readouterr()
    err = _one_line_error(capsys, ["audit", "--out", str(tmp_path), "--only", "zzzznomatch"], "zzzznomatch")
    assert "exact/" in err and "calibration" in err and "mutation" in err  # says what exists
    assert (tmp_path / "results.json").read_text() == before


def test_an_audit_never_deletes_results_it_did_not_recompute(tmp_path, capsys):
    assert cli.main(["audit", "--out", str(tmp_path), "--only", EXACT_A, "--no-report"]) == 0
    first = load(tmp_path / "results.json")["cells"]
    assert cli.main(["audit", "--out", str(tmp_path), "--only", EXACT_B, "--no-report"]) == 0
    second = load(tmp_path / "results.json")["cells"]
    assert len(first) == 1 and len(second) == 2 and set(first) < set(second)
    (kept,) = first
    assert second[kept]["computed_at"] == first[kept]["computed_at"]  # kept, not recomputed
    # Another seed: the earlier file is kept beside the new one, never overwritten.
    capsys.readouterr()
    assert cli.main(["audit", "--out", str(tmp_path), "--only", EXACT_A, "--seed", "9", "--no-report"]) == 0
    archived = [p for p in tmp_path.iterdir() if p.name.startswith("results-") and p.suffix == ".json"]
    assert len(archived) == 1 and load(archived[0])["cells"] == second
    assert archived[0].name in capsys.readouterr().err


def test_an_audit_with_no_cells_is_never_green(tmp_path):
    from verification.report import render_report

    document = {"schema": "autospec-audit/1", "config": {"mode": "quick", "seed": 0}, "stages": {}, "plugins": {},
                "cells": {}, "complete": True, "summary": {"counts": {}, "failures": []}, "runs": []}
    assert AuditOutcome(document, tmp_path, computed=0).exit_code != 0
    html = render_report(document)
    assert "Every sampler that claims exactness passed" not in html and "no cells" in html.lower()
    assert "NO CELLS" in format_table(document)


def test_stages_filtered_out_by_only_are_not_listed_as_ran(tmp_path):
    outcome = run_audit(AuditConfig(only=[EXACT_A]), out_dir=tmp_path, progress=False, report=False)
    stages = outcome.document["stages"]
    assert stages["exact"]["status"] == "ran" and stages["exact"]["cells"] == 1
    assert stages["check"]["status"] != "ran" and "--only" in stages["check"]["status"]


# ---------------------------------------------------------------- 2. one-line errors, before computing

def test_out_naming_a_file_is_a_one_line_error(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("x")
    _one_line_error(capsys, ["audit", "--out", str(target), "--only", EXACT_A], str(target), "directory")


def test_out_in_an_unwritable_place_fails_before_any_cell_is_computed(tmp_path, capsys, monkeypatch):
    from verification.audit import runner

    computed = []
    monkeypatch.setattr(runner, "execute_cell", lambda *a, **k: computed.append(a) or {})
    out = "/proc/autospec-cannot-write-here"
    _one_line_error(capsys, ["audit", "--out", out, "--only", EXACT_A], out)
    assert not computed


def test_resume_on_a_results_file_holding_a_list_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "results.json").write_text("[]")
    _one_line_error(capsys, ["audit", "--out", str(tmp_path), "--only", EXACT_A, "--resume"], "results.json")
    assert (tmp_path / "results.json").read_text() == "[]"


@pytest.mark.parametrize("argv, needle", [
    (["--ns", "0"], "--ns"), (["--ns", "abc"], "--ns"), (["--ns", "16,-4"], "--ns"),
    (["--samples", "-5"], "--samples"), (["--samples", "0"], "--samples"),
    (["--device", "tpu"], "--device"), (["--families", "bogus"], "--families"), (["--samplers", "bogus"], "--samplers"),
    (["--max-n", "0"], "--max-n"), (["--min-n", "64", "--max-n", "16"], "--min-n"),
    (["--policies", "bogus"], "--policies"), (["--fixed", "x"], "--fixed"), (["--threads", "0"], "--threads"),
])
def test_bad_depth_arguments_are_one_line_errors(argv, needle, capsys, tmp_path):
    _one_line_error(capsys, ["depth", *argv, "--out", str(tmp_path)], needle)
    assert not (tmp_path / "depth.json").exists()


def test_depth_options_have_help_text():
    parser = cli.build_parser()
    depth = parser._subparsers._group_actions[0].choices["depth"]
    for action in depth._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, action.option_strings


def test_an_unknown_audit_sampler_name_is_a_one_line_error(capsys, tmp_path):
    _one_line_error(capsys, ["audit", "--out", str(tmp_path), "--set", 'check_samplers=["bogus"]'], "bogus")


# ---------------------------------------------------------------- 3. a user's module in the working directory

def test_user_sampler_module_in_the_working_directory_is_found(tmp_path, monkeypatch, capsys):
    # The console script puts its own folder first on sys.path, not the working directory: as if so here.
    (tmp_path / "mysamplers_h14.py").write_text("from autospec.samplers import Sequential\nX = Sequential()\nX.name = 'mine'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "mysamplers_h14", raising=False)
    code = cli.main(["audit", "--list", "--only", "exact/mine/", "--sampler", "mysamplers_h14:X"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "exact/mine/tab-n3q2-zeros/exact-law" in captured.out.splitlines()


def test_a_missing_user_module_says_what_to_do(tmp_path, capsys):
    err = _one_line_error(capsys, ["audit", "--out", str(tmp_path), "--sampler", "nosuchmod_abc:X"], "nosuchmod_abc")
    assert "PYTHONPATH" in err


# ---------------------------------------------------------------- 4. progress when output is not a terminal

def test_progress_lines_when_output_is_not_a_terminal(tmp_path, capsys, monkeypatch):
    from verification.audit import runner

    assert not sys.stderr.isatty()  # captured, as in CI logs and pipes
    monkeypatch.setattr(runner, "SLOW_CELL_S", 0.0)  # every cell counts as slow here
    run_audit(AuditConfig(only=[EXACT_A, EXACT_B]), out_dir=tmp_path, progress=None, report=False)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("[") and "2 cells to compute (exact 2)" in lines[0], lines
    assert any("exact/Sequential/tab-n3q2-zeros/exact-law: pass (" in line for line in lines), lines  # per slow cell
    assert any("stage exact done: 2 cells" in line for line in lines), lines  # per stage
    assert all(line.startswith("[") and "s] " in line for line in lines), lines  # each with the elapsed time


# ---------------------------------------------------------------- 7. contract errors

def test_a_sampler_class_instead_of_an_instance_is_a_clear_error(tmp_path):
    from autospec.samplers import Sequential
    from autospec.targets import TabularTarget
    from verification import check_exact, exact_law

    target = TabularTarget.random(3, 2, seed=0)
    for call in (lambda: exact_law(Sequential, target), lambda: check_exact(Sequential, target, num_samples=100)):
        with pytest.raises(TypeError, match=r"pass an instance: Sequential\(\), not Sequential"):
            call()
    with pytest.raises(AuditError, match=r"pass an instance: Sequential\(\), not Sequential"):
        run_audit(AuditConfig(only=["exact/"]), out_dir=tmp_path, extra_samplers=[Sequential], progress=False)


class _WrongShape:
    def sample(self, oracle, num_samples, rng):
        return torch.zeros((num_samples, oracle.n + 1), dtype=torch.long)


class _FloatValues:
    def sample(self, oracle, num_samples, rng):
        x = torch.full((num_samples, oracle.n), -1, dtype=torch.long)
        for i in range(oracle.n):
            x[:, i] = rng.categorical(oracle.marginals(x)[:, i])
        return x.to(torch.float32)


def test_a_wrong_output_shape_is_one_error_type_everywhere():
    from autospec.targets import TabularTarget
    from verification import SamplerContractError, check_exact, exact_law

    target = TabularTarget.random(3, 2, seed=0)
    with pytest.raises(SamplerContractError, match="shape"):
        exact_law(_WrongShape(), target)
    with pytest.raises(SamplerContractError, match=r"\[100, 3\]"):
        check_exact(_WrongShape(), target, num_samples=100)


def test_float_output_is_rejected_with_the_reason():
    from autospec.targets import TabularTarget
    from verification import SamplerContractError, check_exact, exact_law

    target = TabularTarget.random(3, 2, seed=0)
    for call in (lambda: exact_law(_FloatValues(), target), lambda: check_exact(_FloatValues(), target, num_samples=100)):
        with pytest.raises(SamplerContractError, match="integer"):
            call()


def test_transformers_repro_prints_a_readable_line():
    # The README prints zero_probability_repro(); its value is checked in tests/test_peers.py.
    from verification.peers.transformers_speculative import ReproResult

    result = ReproResult(2.0**-25, 0.0)
    text = str(result)
    assert not text.startswith("(") and "2.98e-08" in text and "2^-25" in text and "exact law gives 0" in text
    routine, exact = result  # still unpacks as (routine, exact)
    assert (routine, exact) == (2.0**-25, 0.0)


def test_format_table_is_lower_case_and_says_which_check_caught_a_mutant():
    cell = {"id": "mutation/mutant:block-float32/t/c", "stage": "mutation", "sampler": "mutant:block-float32",
            "target": "t", "check": "exact-law + check_exact", "verdict": "caught",
            "evidence": {"exact_tv": 2.2e-9, "rejections": 0, "num_seeds": 1, "min_detectable_tv": 0.03,
                         "flagged_by_exact_law": True, "caught_by_check": False}}
    document = {"cells": {cell["id"]: cell}, "stages": {}, "summary": {"counts": {"caught": 1}}, "complete": True}
    table = format_table(document)
    assert "CAUGHT" not in table and "caught" in table
    assert "by exact law" in table and "check_exact rejected 0/1" in table
    json.dumps(document)
