"""Run an audit: plan the cells, compute the missing ones, write results as they finish.

results.json is rewritten after every finished cell (temp file + os.replace,
so a killed audit leaves either the old or the new file, never half of one);
``resume=True`` keeps the finished cells of an earlier run with the same
seed and settings and computes only the rest.
"""

from __future__ import annotations

import fnmatch
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from verification.audit import registry
from verification.audit.config import AuditConfig, cell_seed

__all__ = [
    "AuditError",
    "AuditOutcome",
    "run_audit",
    "plan_audit",
    "execute_cell",
    "write_json_atomic",
    "strip_timings",
    "FAILING_VERDICTS",
    "TIMING_FIELDS",
]

SCHEMA = "autospec-audit/1"
FAILING_VERDICTS = ("fail", "missed", "error", "inconclusive")
TIMING_FIELDS = ("elapsed_s", "computed_at", "run_id", "pid")


class AuditError(RuntimeError):
    """The audit could not run as asked (bad resume file, unknown sampler, ...)."""


@dataclass
class AuditOutcome:
    document: dict
    out_dir: Path
    computed: int
    interrupted: bool = False

    @property
    def cells(self) -> list[dict]:
        return list(self.document["cells"].values())

    @property
    def failures(self) -> list[dict]:
        return failing_cells(self.document["cells"])

    @property
    def exit_code(self) -> int:
        """0 only when the audit has cells, all of them finished, and none fails (an empty audit is never green)."""
        if self.interrupted:
            return 130
        broken = [s for s in self.document.get("stages", {}).values() if s["status"].startswith("plan failed")]
        empty = not self.document["cells"]
        return 1 if self.failures or broken or empty or not self.document["complete"] else 0

    @property
    def results_path(self) -> Path:
        return self.out_dir / "results.json"

    @property
    def report_path(self) -> Path:
        return self.out_dir / "index.html"


# ---------------------------------------------------------------- planning

def _matches(cell_id: str, patterns: Iterable[str]) -> bool:
    patterns = [p for p in patterns if p]
    if not patterns:
        return True
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            if fnmatch.fnmatchcase(cell_id, pattern):
                return True
        elif pattern in cell_id:
            return True
    return False


def _load_hint(item: Any, error: Exception) -> str:
    if isinstance(error, ModuleNotFoundError) and isinstance(item, str):
        return (f" (run autospec from the folder that holds {error.name}.py or its package, or add that folder to "
                "PYTHONPATH)")
    return ""


def plan_audit(config: AuditConfig) -> tuple[list[dict], dict[str, dict]]:
    """All cells of the audit (filtered by ``config.only``) and each stage's status.

    Raises AuditError when a user's sampler cannot be loaded, when a built-in
    stage cannot plan (an unknown sampler or target name in the settings), and
    when ``config.only`` matches no cell (the message lists what exists).
    """
    specs: list[dict] = []
    status: dict[str, dict] = {}
    seen: set[str] = set()
    everything: list[str] = []
    for index, item in enumerate(config.extra_samplers):  # a user's sampler that cannot load is a usage error
        if isinstance(item, type):
            raise AuditError(_class_message(item))
        try:
            registry.build_sampler(item if isinstance(item, str) else f"extra:{index}", config.extra_samplers)
        except Exception as error:
            raise AuditError(f"cannot load sampler {item!r}: {type(error).__name__}: {error}{_load_hint(item, error)}") \
                from error
    for stage in registry.stages():
        ok, reason = stage.available()
        if not ok:
            status[stage.name] = {"title": stage.title, "status": reason or "not available", "cells": 0}
            continue
        try:
            planned = stage.plan(config)
        except registry.UnknownName as error:  # an unknown sampler or target name in the settings: a usage error
            raise AuditError(f"stage {stage.name}: {error.args[0] if error.args else error}") from error
        except Exception as error:  # a broken plugin stage is reported, not fatal
            status[stage.name] = {"title": stage.title, "status": f"plan failed: {type(error).__name__}: {error}", "cells": 0}
            continue
        chosen = []
        for spec in planned:
            if spec["id"] in seen:
                raise AuditError(f"two audit cells share the id {spec['id']!r} (give the samplers distinct names)")
            seen.add(spec["id"])
            everything.append(spec["id"])
            if _matches(spec["id"], config.only):
                chosen.append(spec)
        specs.extend(chosen)
        if not planned:
            state = "no cells"
        elif not chosen:
            state = "filtered out by --only"
        else:
            state = "ran"
        status[stage.name] = {"title": stage.title, "status": state, "cells": len(chosen)}
        if stage.how_to_read:
            status[stage.name]["how_to_read"] = stage.how_to_read
    if config.only and not specs:
        stage_names = list(dict.fromkeys(cell_id.split("/", 1)[0] for cell_id in everything))
        raise AuditError(f"--only {' '.join(config.only)} matches none of the {len(everything)} cells; a cell id is "
                         f"stage/sampler/target/check with stage one of {', '.join(stage_names)} "
                         f"(e.g. {everything[0] if everything else '-'}; autospec audit --list shows them all)")
    return specs, status


def _class_message(cls: type) -> str:
    name = cls.__name__
    return f"pass an instance: {name}(), not {name} (a sampler is an object with sample(oracle, num_samples, rng))"


# ---------------------------------------------------------------- one cell

def execute_cell(spec: dict, audit_seed: int, extra: list[Any] | None = None) -> dict:
    """Compute one cell; deterministic given (spec, audit_seed).  Top-level so it pickles."""
    import torch

    from verification.audit.stages import jsonable

    seed = cell_seed(audit_seed, spec["id"])
    registry.CURRENT_EXTRA = list(extra or [])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same arithmetic in every worker, and no oversubscription
    start = time.perf_counter()
    try:
        outcome = registry.get_stage(spec["stage"]).run(spec, seed)
        verdict, evidence = outcome["verdict"], outcome.get("evidence", {})
    except Exception as error:
        verdict = "error"
        evidence = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc(limit=8)}
    finally:
        torch.set_num_threads(threads)
        registry.CURRENT_EXTRA = []
    cell = dict(spec)
    cell.update(seed=seed, verdict=verdict, evidence=jsonable(evidence))
    cell.update(elapsed_s=round(time.perf_counter() - start, 3), computed_at=time.time(), pid=os.getpid())
    return cell


# ---------------------------------------------------------------- the results file

def write_json_atomic(path: Path, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=False, allow_nan=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def strip_timings(document: dict) -> dict:
    """The document without what legitimately differs between equal runs (timings, run log)."""
    data = json.loads(json.dumps(document))
    data.pop("runs", None)
    for cell in data.get("cells", {}).values():
        for key in TIMING_FIELDS:
            cell.pop(key, None)
    return data


def environment() -> dict:
    import numpy
    import scipy
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parents[2]).stdout.strip() or None
    except Exception:
        commit = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "git_commit": commit,
    }


def failing_cells(cells: dict[str, dict]) -> list[dict]:
    """Cells that fail the audit: fail and error, the cells of a mutant that no cell caught, and
    negative controls (inexact baselines) left undetected."""
    caught = {c["sampler"] for c in cells.values() if c["verdict"] in ("caught", "flagged")}
    return [c for c in cells.values()
            if c["verdict"] in ("fail", "error") or (c["verdict"] == "missed" and c["sampler"] not in caught)
            or (c["verdict"] == "inconclusive" and c["sampler"] not in caught)
            or (c["verdict"] == "undetected" and c.get("negative_control"))]


def _summary(cells: dict[str, dict]) -> dict:
    counts: dict[str, int] = {}
    for cell in cells.values():
        counts[cell["verdict"]] = counts.get(cell["verdict"], 0) + 1
    failures = failing_cells(cells)
    return {
        "counts": dict(sorted(counts.items())),
        "failures": [c["id"] for c in failures],
        "failing_samplers": sorted({c["sampler"] for c in failures if c["verdict"] in ("fail", "error")}),
        "inconclusive": [c["id"] for c in failures if c["verdict"] == "inconclusive"],
        "missed_mutants": sorted({c["sampler"] for c in failures if c["verdict"] == "missed"}),
        "unflagged_controls": sorted({c["sampler"] for c in failures if c["verdict"] == "undetected"}),
    }


# ---------------------------------------------------------------- the audit

def run_audit(
    config: AuditConfig | None = None,
    out_dir: str | os.PathLike = "reports",
    jobs: int = 1,
    scheduler: Any = None,
    resume: bool = False,
    progress: bool | None = None,
    report: bool = True,
    command: str | None = None,
    extra_samplers: list[Any] | None = None,
    log=None,
) -> AuditOutcome:
    """Run (or resume) an audit into ``out_dir``; returns the document and the exit code.

    ``extra_samplers``: user samplers (objects or ``module:attr``) audited like
    the built-in ones; a wrong one makes ``exit_code`` non-zero.
    ``scheduler``: a Dask scheduler address (or a ``distributed.Client``).
    """
    config = config or AuditConfig()
    if extra_samplers:
        config.extra_samplers = list(config.extra_samplers) + list(extra_samplers)
    if not isinstance(jobs, int) or jobs < 1:
        raise AuditError(f"jobs must be a positive int, got {jobs!r}")
    out = Path(out_dir)
    results_path = out / "results.json"
    registry.CURRENT_EXTRA = list(config.extra_samplers)
    try:
        specs, stage_status = plan_audit(config)
    except (KeyError, ImportError, AttributeError, TypeError, ValueError) as error:
        raise AuditError(f"could not plan the audit: {error}") from error
    finally:
        registry.CURRENT_EXTRA = []
    check_out_dir(out)  # before any cell is computed
    fingerprint = config.fingerprint()
    fingerprint["extra_samplers"] = config.to_dict()["extra_samplers"]

    # Earlier results in out_dir are never lost: cells of the same audit (seed and settings) are kept and only
    # the planned ones recomputed (--resume: only the missing ones); a file of another audit is set aside.
    old, why = _read_results(results_path)
    previous: dict[str, dict] = {}
    runs: list[dict] = []
    if old is not None and old.get("config") == fingerprint:
        previous, runs = dict(old.get("cells", {})), list(old.get("runs", []))
    elif resume and why is not None:
        raise AuditError(f"cannot resume: {results_path} {why}; run without --resume (it is then kept aside) "
                         "or use another --out")
    elif resume and old is not None:
        raise AuditError(
            f"cannot resume: {results_path} was written by an audit with other settings "
            f"(mode/seed/samplers differ); run without --resume or use another --out"
        )
    elif results_path.exists():
        kept = _set_aside(results_path)
        print(f"autospec audit: {results_path} is from another audit ({why or 'other mode/seed/settings'}); "
              f"kept as {kept.name}", file=sys.stderr)
    run_id = uuid.uuid4().hex[:12]
    runs.append({"run_id": run_id, "started_at": time.time(), "resumed": bool(resume and previous), "command": command,
                 "jobs": jobs, "scheduler": None if scheduler is None else str(scheduler),
                 "environment": environment(), "only": list(config.only)})

    all_ids = [s["id"] for s in specs]
    order = {cell_id: i for i, cell_id in enumerate(all_ids)}
    cells: dict[str, dict] = dict(previous)
    todo = [s for s in specs if not (resume and s["id"] in cells)]
    document: dict[str, Any] = {"schema": SCHEMA, "config": fingerprint, "stages": stage_status,
                "plugins": registry.load_plugins(), "cells": {}, "complete": False, "summary": {}, "runs": runs}

    def save(final: bool = False) -> None:
        ordered = sorted(cells.values(), key=lambda c: (order.get(c["id"], len(order)), c["id"]))
        document["cells"] = {c["id"]: c for c in ordered}
        document["complete"] = all(cell_id in cells and cells[cell_id].get("run_id") in finished for cell_id in all_ids)
        document["summary"] = _summary(document["cells"])
        if final:
            runs[-1]["finished_at"] = time.time()
        runs[-1]["computed"] = computed
        write_json_atomic(results_path, document)

    # A planned cell counts as finished when this run computed it, or (--resume) an earlier run did.
    finished = {r.get("run_id") for r in runs[:-1]} if resume else set()
    finished.add(run_id)
    computed = 0
    interrupted = False
    save()
    bar = _Progress(todo, progress)
    try:
        for cell in _execute(todo, config, jobs, scheduler):
            cell["run_id"] = run_id
            cells[cell["id"]] = cell
            computed += 1
            save()
            bar.update(cell)
            if log is not None:
                log(cell)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        save(final=True)
        if report:
            from verification.report import write_report

            write_report(document, out)
    return AuditOutcome(document, out, computed, interrupted)


def check_out_dir(out: Path) -> None:
    """Fail now, with one line, if ``out`` cannot hold the results (not after an hour of cells)."""
    if out.exists() and not out.is_dir():
        raise AuditError(f"--out {out}: is a file; expected a directory (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".autospec-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise AuditError(f"--out {out}: cannot write there ({error.strerror or error}); expected a writable directory") \
            from error


def _read_results(path: Path) -> tuple[dict | None, str | None]:
    """(the audit document at ``path``, None) or (None, why it is not one)."""
    if not path.exists():
        return None, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"is not valid JSON ({error})"
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("cells"), dict):
        return None, f"is not an autospec audit results file (expected a {SCHEMA} object, got {type(data).__name__})"
    return data, None


def _set_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(path.stat().st_mtime))
    kept = path.with_name(f"results-{stamp}.json")
    index = 1
    while kept.exists():
        kept = path.with_name(f"results-{stamp}-{index}.json")
        index += 1
    os.replace(path, kept)
    return kept


# A cell that takes longer than this gets its own progress line when output is not a terminal.
SLOW_CELL_S = 5.0


class _Progress:
    """Progress of an audit: a tqdm bar on a terminal; otherwise (CI logs, pipes) plain lines with the
    elapsed time: one when the audit starts, one per finished stage and one per slow cell."""

    def __init__(self, todo: list[dict], enabled: bool | None):
        self.start = time.perf_counter()
        self.total = len(todo)
        self.done = 0
        self.left: dict[str, int] = {}
        for spec in todo:
            self.left[spec["stage"]] = self.left.get(spec["stage"], 0) + 1
        self.stage_cells = dict(self.left)
        self.bad: dict[str, int] = {}
        tty = sys.stderr.isatty()
        self.lines = enabled is None and not tty
        self.bar = None
        if enabled or (enabled is None and tty):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc="audit", unit="cell", file=sys.stderr, dynamic_ncols=True)
        if self.lines:
            plan = ", ".join(f"{name} {count}" for name, count in self.left.items())
            self.say(f"audit: {self.total} cells to compute ({plan})")

    def say(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.start:5.0f}s] {text}", file=sys.stderr, flush=True)

    def update(self, cell: dict) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(cell["id"][-40:], refresh=False)
            self.bar.update(1)
        if not self.lines:
            return
        stage = cell["stage"]
        if cell["verdict"] in FAILING_VERDICTS:
            self.bad[stage] = self.bad.get(stage, 0) + 1
        if cell.get("elapsed_s", 0.0) >= SLOW_CELL_S:
            self.say(f"{self.done}/{self.total} {cell['id']}: {cell['verdict']} ({cell['elapsed_s']:.1f} s)")
        self.left[stage] -= 1
        if self.left[stage] == 0:
            bad = self.bad.get(stage, 0)
            self.say(f"stage {stage} done: {self.stage_cells[stage]} cells"
                     + (f", {bad} failing" if bad else "") + f" ({self.done}/{self.total} cells)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _execute(todo: list[dict], config: AuditConfig, jobs: int, scheduler: Any):
    """Yield finished cells as they complete (any order; the document re-sorts them)."""
    extra = list(config.extra_samplers)
    if scheduler is not None:
        yield from _execute_dask(todo, config.seed, extra, scheduler)
    elif jobs == 1 or len(todo) <= 1:
        for spec in todo:
            yield execute_cell(spec, config.seed, extra)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn: forking a process that has started torch's thread pool can deadlock.
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
        try:
            futures = [pool.submit(execute_cell, spec, config.seed, extra) for spec in todo]
            for future in as_completed(futures):
                yield future.result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def _execute_dask(todo: list[dict], seed: int, extra: list[Any], scheduler: Any):
    try:
        from distributed import Client, as_completed
    except ImportError as error:
        raise AuditError("--scheduler needs Dask: pip install 'autospec[dask]'") from error
    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    try:
        futures = [client.submit(execute_cell, spec, seed, extra, pure=False, key=f"autospec-cell-{i}-{uuid.uuid4().hex[:8]}")
                   for i, spec in enumerate(todo)]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()
    finally:
        if own:
            client.close()
