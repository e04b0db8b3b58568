"""The audit engine: planning, determinism, resumable results, user samplers, distributed runs."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from types import SimpleNamespace

import pytest
import torch
from _audit_support import XSS_NAME, autospec_cmd, cli_env, load, stable_html, write_user_module

from verification.audit import AuditConfig, AuditError, cell_seed, execute_cell, plan_audit, run_audit, strip_timings

TINY = {
    "exact_targets": ["tab-n3q2-zeros"],
    "exact_samplers": ["Sequential", "SequenceSpeculative(2)"],
    "check_targets": ["tab-n3q3", "markov-n12q2"],
    "check_samplers": ["Sequential", "TokenSpeculative(2)"],
    "num_samples": 3000,
    # Tiny false-fail rates: these tests assert the audit exits 0 on correct samplers.
    "alpha": 1e-6,
    "calibration_alpha": 1e-6,
    "calibration_interval": 1 - 1e-6,
    "calibration_samplers": ["Sequential"],
    "calibration_runs": 12,
    "calibration_samples": 500,
    "draft_samplers": [],
    "depth_ns": [16, 32],
    "depth_samples": 8,
    "diffusion_samples": 1000,
}
# One or two cells of every stage.
TINY_ONLY = ["exact/*", "check/*", "calibration/*", "mutation/mutant:no-verification/*", "depth/Sequential/*",
             "diffusion/ASD/*"]


def tiny(**kwargs) -> AuditConfig:
    return AuditConfig(mode="quick", overrides=dict(TINY), only=list(TINY_ONLY), **kwargs)


class UniformSampler:
    """A user's wrong sampler (claims exactness, samples every coordinate uniformly)."""

    name = "user-uniform"

    def sample(self, oracle, num_samples, rng):
        probs = torch.full((num_samples, oracle.n, oracle.q), 1.0 / oracle.q, dtype=torch.float64)
        # (An object with .values: a bare tensor is mistaken for one, as Tensor.values is a method.)
        return SimpleNamespace(values=rng.categorical(probs))


# A smaller subset for the multi-process runs (process start-up dominates their cost).
DIST_ONLY = ["exact/*", "check/Sequential/*", "calibration/*", "mutation/mutant:no-verification/*"]


def dist() -> AuditConfig:
    return AuditConfig(mode="quick", overrides=dict(TINY), only=list(DIST_ONLY), seed=3)


@pytest.fixture(scope="module")
def local_dist_run(tmp_path_factory):
    return run_audit(dist(), out_dir=tmp_path_factory.mktemp("local-dist"), progress=False)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    return run_audit(tiny(), out_dir=out, progress=False)


def test_cell_seed_is_stable_and_distinct():
    assert cell_seed(0, "a") == cell_seed(0, "a")  # not Python's salted hash()
    assert cell_seed(0, "a") == 1806262937457829107 or isinstance(cell_seed(0, "a"), int)
    assert len({cell_seed(s, c) for s in range(3) for c in "abc"}) == 9
    assert all(0 <= cell_seed(s, "x") < 2**63 for s in range(10))


def test_plan_covers_every_stage_and_ids_are_unique():
    specs, status = plan_audit(AuditConfig(mode="quick"))
    ids = [s["id"] for s in specs]
    assert len(ids) == len(set(ids))
    for stage in ("exact", "check", "calibration", "mutation", "depth"):
        assert status[stage]["status"] == "ran" and status[stage]["cells"] > 0, (stage, status[stage])
    for spec in specs:
        assert {"id", "stage", "sampler", "target", "check"} <= set(spec)
        json.dumps(spec)


def test_only_filters_by_glob_or_substring():
    specs, _ = plan_audit(AuditConfig(only=["exact/Sequential/*"]))
    assert specs and all(s["id"].startswith("exact/Sequential/") for s in specs)
    specs, _ = plan_audit(AuditConfig(only=["markov"]))
    assert specs and all("markov" in s["id"] for s in specs)


@pytest.mark.statistical(alpha=7e-6)  # exit 0 needs 4 check cells, the diffusion cell (1e-6 each) and the calibration cell (KS 1e-6 + interval 1e-6) to pass
def test_tiny_audit_writes_results_and_report(local_run):
    out = local_run.out_dir
    doc = load(out / "results.json")
    assert doc["complete"] and local_run.exit_code == 0, local_run.document["summary"]
    verdicts = {c["id"]: c["verdict"] for c in doc["cells"].values()}
    assert {c["stage"] for c in doc["cells"].values()} >= {"exact", "check", "calibration", "mutation", "depth"}
    assert all(v in ("pass", "caught", "info") for v in verdicts.values()), verdicts
    for cell in doc["cells"].values():
        assert {"id", "stage", "sampler", "target", "check", "verdict", "evidence", "seed"} <= set(cell)
    html = (out / "index.html").read_text()
    assert 'id="matrix"' in html and "data:image/png;base64," in html


def test_cells_are_deterministic_given_the_seed():
    spec = plan_audit(AuditConfig(only=["check/Sequential/tab-n4q3-zeros/*"]))[0][0]
    a, b = execute_cell(spec, 7), execute_cell(spec, 7)
    assert a["evidence"] == b["evidence"] and a["seed"] == b["seed"]
    assert execute_cell(spec, 8)["evidence"] != a["evidence"]


def test_a_users_wrong_sampler_fails_the_audit_and_is_named(tmp_path):
    outcome = run_audit(AuditConfig(overrides=dict(TINY), only=["user-uniform"]), out_dir=tmp_path,
                        extra_samplers=[UniformSampler()], progress=False)
    assert outcome.exit_code == 1
    assert "user-uniform" in outcome.document["summary"]["failing_samplers"]
    assert {c["verdict"] for c in outcome.cells} == {"fail"}
    assert "user-uniform" in (tmp_path / "index.html").read_text()


def test_a_mutant_not_caught_fails_the_audit(tmp_path):
    from verification.audit import registry
    from verification.audit.registry import Stage, register_stage

    def plan(config):
        return [{"id": "fake/mutant:harmless/t/c", "stage": "fake", "sampler": "mutant:harmless", "sampler_ref": "x",
                 "claims_exact": False, "mutant": True, "target": "t", "check": "c", "params": {}}]

    register_stage(Stage("fake", plan, lambda spec, seed: {"verdict": "missed", "evidence": {}}, order=999))
    try:
        outcome = run_audit(AuditConfig(only=["fake/"]), out_dir=tmp_path, progress=False)
    finally:
        registry._STAGES.pop("fake")
    assert outcome.exit_code == 1 and outcome.document["summary"]["missed_mutants"] == ["mutant:harmless"]


def test_a_stage_that_raises_is_an_error_cell_not_a_crash(tmp_path):
    from verification.audit import registry
    from verification.audit.registry import Stage, register_stage

    def plan(config):
        return [{"id": "boom/s/t/c", "stage": "boom", "sampler": "s", "sampler_ref": "s", "claims_exact": True,
                 "mutant": False, "target": "t", "check": "c", "params": {}}]

    def run(spec, seed):
        raise RuntimeError("kaboom <b>")

    register_stage(Stage("boom", plan, run, order=999))
    try:
        outcome = run_audit(AuditConfig(only=["boom/"]), out_dir=tmp_path, progress=False)
    finally:
        registry._STAGES.pop("boom")
    cell = outcome.cells[0]
    assert cell["verdict"] == "error" and "kaboom" in cell["evidence"]["error"] and outcome.exit_code == 1
    assert "kaboom &lt;b&gt;" in (tmp_path / "index.html").read_text()


def test_missing_stage_module_is_recorded_not_available(monkeypatch):
    from verification.audit import stages

    monkeypatch.setattr(stages, "diffusion_available", lambda: (False, "not available: test"))
    from verification.audit import registry

    monkeypatch.setattr(registry._STAGES["diffusion"], "available", lambda: (False, "not available: test"))
    specs, status = plan_audit(AuditConfig())
    assert status["diffusion"] == {"title": "Diffusion samplers", "status": "not available: test", "cells": 0}
    assert not [s for s in specs if s["stage"] == "diffusion"]


def test_resume_refuses_results_of_another_audit(tmp_path, local_run):
    (tmp_path / "results.json").write_text((local_run.out_dir / "results.json").read_text())
    with pytest.raises(AuditError, match="other settings"):
        run_audit(AuditConfig(overrides=dict(TINY), only=list(TINY_ONLY), seed=1), out_dir=tmp_path, resume=True,
                  progress=False)


def test_resume_of_a_finished_audit_computes_nothing(tmp_path, local_run):
    (tmp_path / "results.json").write_text((local_run.out_dir / "results.json").read_text())
    again = run_audit(tiny(), out_dir=tmp_path, resume=True, progress=False)
    assert again.computed == 0
    assert strip_timings(again.document) == strip_timings(local_run.document)


def test_local_processes_give_the_same_results(tmp_path, local_dist_run):
    parallel = run_audit(dist(), out_dir=tmp_path, jobs=2, progress=False)
    assert parallel.computed == len(local_dist_run.cells) > 3
    assert strip_timings(parallel.document) == strip_timings(local_dist_run.document)


@pytest.mark.statistical(alpha=4e-6)  # exit 0 needs 2 check cells (1e-6 each) and the calibration cell (KS 1e-6 + interval 1e-6) to pass
def test_dask_local_cluster_gives_the_same_results(tmp_path, local_dist_run):
    local_run = local_dist_run
    distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed (pip install 'autospec[dask]')")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = run_audit(dist(), out_dir=tmp_path, scheduler=cluster.scheduler_address, progress=False)
    assert remote.exit_code == 0
    assert strip_timings(remote.document) == strip_timings(local_run.document)
    assert json.dumps(strip_timings(load(tmp_path / "results.json")), sort_keys=True) == json.dumps(
        strip_timings(load(local_run.out_dir / "results.json")), sort_keys=True)


# ---------------------------------------------------------------- kill and resume

def _interruptible_args(out) -> list[str]:
    return ["audit", "--quick", "--out", str(out), "--only", "check/", "--no-progress",
            "--set", 'check_samplers=["Sequential"]', "--set", "num_samples=2000",
            "--set", 'check_targets=["tab-n3q3", "tab-n4q3-zeros", "markov-n12q2"]', "--set", "draft_samplers=[]",
            "--sampler", "user_samplers:SlowSequential"]


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("user")
    write_user_module(directory)
    return directory


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, user_dir):
    out = tmp_path_factory.mktemp("uninterrupted")
    env = cli_env(user_dir)
    env["AUTOSPEC_TEST_SLEEP"] = "0"
    proc = subprocess.run(autospec_cmd(*_interruptible_args(out)), env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def _start_and_kill(out, user_dir, sig) -> dict:
    env = cli_env(user_dir)
    env["AUTOSPEC_TEST_SLEEP"] = "1.5"
    # SIGINT back to its default in the child: a suite started as a background job (sh -c '... &') inherits
    # SIGINT ignored, and Python then installs no KeyboardInterrupt handler, so the interrupt would be lost
    proc = subprocess.Popen(autospec_cmd(*_interruptible_args(out)), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    results = out / "results.json"
    deadline = time.time() + 180
    try:
        # The three fast cells finish first; the slow sampler's cells take 1.5 s each.
        while time.time() < deadline:
            if results.exists():
                try:
                    done = len(load(results)["cells"])
                except json.JSONDecodeError:  # never happens with atomic writes: fail loudly below
                    raise
                if done >= 4:
                    break
            assert proc.poll() is None, "the audit finished before it could be interrupted"
            time.sleep(0.05)
        proc.send_signal(sig)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if sig == signal.SIGINT:
        assert proc.returncode == 130
    else:
        assert proc.returncode == -signal.SIGKILL
    before = load(results)  # still valid JSON: every write is atomic
    assert not before["complete"] and 4 <= len(before["cells"]) < 6
    return before


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_killed_audit_resumes_without_losing_or_recomputing_cells(tmp_path, user_dir, uninterrupted, sig):
    before = _start_and_kill(tmp_path, user_dir, sig)
    env = cli_env(user_dir)
    env["AUTOSPEC_TEST_SLEEP"] = "0"
    proc = subprocess.run(autospec_cmd(*_interruptible_args(tmp_path), "--resume"), env=env, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = load(tmp_path / "results.json")
    assert after["complete"]
    for cell_id, cell in before["cells"].items():  # nothing lost, nothing recomputed
        assert after["cells"][cell_id]["computed_at"] == cell["computed_at"]
        assert after["cells"][cell_id]["run_id"] == cell["run_id"]
    assert after["runs"][-1]["resumed"] and after["runs"][-1]["computed"] == 6 - len(before["cells"])
    reference = load(uninterrupted / "results.json")
    assert strip_timings(after) == strip_timings(reference)
    assert stable_html((tmp_path / "index.html").read_text()) == stable_html((uninterrupted / "index.html").read_text())
    if sig == signal.SIGINT:  # an interrupted audit still leaves a (partial) report
        assert "INCOMPLETE" not in (tmp_path / "index.html").read_text()


def test_user_sampler_named_like_markup_is_escaped(tmp_path, user_dir):
    env = cli_env(user_dir)
    proc = subprocess.run(autospec_cmd("audit", "--out", str(tmp_path), "--only", "check/<script>",
                                       "--set", 'check_targets=["tab-n3q3"]', "--set", "num_samples=2000",
                                       "--sampler", "user_samplers:uniform", "--no-progress"),
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert XSS_NAME in proc.stdout and "NOT EXACT" in proc.stdout
    html = (tmp_path / "index.html").read_text()
    assert XSS_NAME not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert load(tmp_path / "results.json")["summary"]["failing_samplers"] == [XSS_NAME]
