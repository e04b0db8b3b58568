"""The autospec command: subcommands, arguments, exit codes, the table."""

from __future__ import annotations

import json

import pytest

from verification import cli


def test_help_lists_audit_and_depth(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "audit" in out and "depth" in out


def test_no_subcommand_prints_help_and_fails(capsys):
    assert cli.main([]) == 2


def test_audit_arguments_parse():
    args = cli.build_parser().parse_args(["audit", "--full", "--out", "x", "--jobs", "3", "--scheduler", "tcp://h:1",
                                          "--resume", "--only", "a,b", "--seed", "5", "--sampler", "m:s"])
    assert (args.mode, args.out, args.jobs, args.scheduler, args.resume, args.only, args.seed, args.sampler) == (
        "full", "x", 3, "tcp://h:1", True, ["a,b"], 5, ["m:s"])
    assert cli.build_parser().parse_args(["audit"]).mode == "quick"
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["audit", "--quick", "--full"])


def test_list_shows_cells(capsys):
    assert cli.main(["audit", "--list", "--only", "exact/"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith("exact/") for line in lines if not line.startswith("#"))


@pytest.mark.parametrize("argv", [["audit", "--jobs", "0"], ["audit", "--set", "nonsense=1"], ["audit", "--set", "x"],
                                  ["audit", "--seed", "-1"]])
def test_bad_arguments_exit_2(argv, capsys):
    assert cli.main(argv + ["--out", "/nonexistent-never-written"]) == 2
    assert "autospec audit:" in capsys.readouterr().err


def test_unknown_user_sampler_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["audit", "--out", str(tmp_path), "--sampler", "no_such_module_xyz:thing", "--only", "check/"]) == 2
    assert "no_such_module_xyz" in capsys.readouterr().err


def test_audit_runs_prints_table_and_writes_files(tmp_path, capsys):
    code = cli.main(["audit", "--out", str(tmp_path), "--only", "check/Sequential/tab-n4q3-zeros/*",
                     "--only", "exact/Sequential/tab-n3q2-zeros/*", "--set", "num_samples=2000", "--seed", "4"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "stage" in out and " pass " in out and "2 cells: 2 pass" in out
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["config"]["seed"] == 4 and len(doc["cells"]) == 2
    assert (tmp_path / "index.html").exists()


def test_depth_subcommand_without_module_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_depth_module", lambda: None)
    assert cli._run_depth(None) == 2
    assert "not available" in capsys.readouterr().err


def test_depth_subcommand_delegates_when_module_has_the_hooks(monkeypatch):
    calls = {}

    class FakeDepth:
        @staticmethod
        def add_arguments(parser):
            parser.add_argument("--max-n", type=int, default=8)

        @staticmethod
        def run_from_args(args):
            calls["max_n"] = args.max_n
            return 0

    monkeypatch.setattr(cli, "_depth_module", lambda: FakeDepth)
    assert cli.main(["depth", "--max-n", "64"]) == 0 and calls == {"max_n": 64}
