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
FAILING_VERDICTS = ("fail", "missed", "error")
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
        if self.interrupted:
            return 130
        broken = [s for s in self.document.get("stages", {}).values() if s["status"].startswith("plan failed")]
        return 1 if self.failures or broken or not self.document["complete"] else 0

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


def plan_audit(config: AuditConfig) -> tuple[list[dict], dict[str, dict]]:
    """All cells of the audit (filtered by ``config.only``) and each stage's status."""
    specs: list[dict] = []
    status: dict[str, dict] = {}
    seen: set[str] = set()
    for index, item in enumerate(config.extra_samplers):  # a user's sampler that cannot load is a usage error
        try:
            registry.build_sampler(item if isinstance(item, str) else f"extra:{index}", config.extra_samplers)
        except Exception as error:
            raise AuditError(f"cannot load sampler {item!r}: {type(error).__name__}: {error}") from error
    for stage in registry.stages():
        ok, reason = stage.available()
        if not ok:
            status[stage.name] = {"title": stage.title, "status": reason or "not available", "cells": 0}
            continue
        try:
            planned = stage.plan(config)
        except Exception as error:  # a broken plugin stage is reported, not fatal
            status[stage.name] = {"title": stage.title, "status": f"plan failed: {type(error).__name__}: {error}", "cells": 0}
            continue
        chosen = []
        for spec in planned:
            if spec["id"] in seen:
                raise AuditError(f"two audit cells share the id {spec['id']!r} (give the samplers distinct names)")
            seen.add(spec["id"])
            if _matches(spec["id"], config.only):
                chosen.append(spec)
        specs.extend(chosen)
        status[stage.name] = {"title": stage.title, "status": "ran" if planned else "no cells", "cells": len(chosen)}
    return specs, status


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
    caught = {c["sampler"] for c in cells.values() if c["verdict"] == "caught"}
    return [c for c in cells.values()
            if c["verdict"] in ("fail", "error") or (c["verdict"] == "missed" and c["sampler"] not in caught)
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
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    registry.CURRENT_EXTRA = list(config.extra_samplers)
    try:
        specs, stage_status = plan_audit(config)
    except (KeyError, ImportError, AttributeError, TypeError, ValueError) as error:
        raise AuditError(f"could not plan the audit: {error}") from error
    finally:
        registry.CURRENT_EXTRA = []
    fingerprint = config.fingerprint()
    fingerprint["extra_samplers"] = config.to_dict()["extra_samplers"]

    previous: dict[str, dict] = {}
    runs: list[dict] = []
    if resume and results_path.exists():
        try:
            old = json.loads(results_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise AuditError(f"cannot resume: {results_path} is not valid JSON ({error})") from error
        if old.get("schema") != SCHEMA or old.get("config") != fingerprint:
            raise AuditError(
                f"cannot resume: {results_path} was written by an audit with other settings "
                f"(mode/seed/samplers differ); run without --resume or use another --out"
            )
        previous = old.get("cells", {})
        runs = old.get("runs", [])
    run_id = uuid.uuid4().hex[:12]
    runs.append({"run_id": run_id, "started_at": time.time(), "resumed": bool(previous), "command": command,
                 "jobs": jobs, "scheduler": None if scheduler is None else str(scheduler),
                 "environment": environment(), "only": list(config.only)})

    all_ids = [s["id"] for s in specs]
    order = {cell_id: i for i, cell_id in enumerate(all_ids)}
    cells: dict[str, dict] = dict(previous)
    todo = [s for s in specs if s["id"] not in cells]
    document: dict[str, Any] = {"schema": SCHEMA, "config": fingerprint, "stages": stage_status,
                "plugins": registry.load_plugins(), "cells": {}, "complete": False, "summary": {}, "runs": runs}

    def save(final: bool = False) -> None:
        ordered = sorted(cells.values(), key=lambda c: (order.get(c["id"], len(order)), c["id"]))
        document["cells"] = {c["id"]: c for c in ordered}
        document["complete"] = all(cell_id in cells for cell_id in all_ids)
        document["summary"] = _summary(document["cells"])
        if final:
            runs[-1]["finished_at"] = time.time()
        runs[-1]["computed"] = computed
        write_json_atomic(results_path, document)

    computed = 0
    interrupted = False
    save()
    bar = _progress(len(todo), progress)
    try:
        for cell in _execute(todo, config, jobs, scheduler):
            cell["run_id"] = run_id
            cells[cell["id"]] = cell
            computed += 1
            save()
            bar.set_postfix_str(cell["id"][-40:], refresh=False)
            bar.update(1)
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


def _progress(total: int, enabled: bool | None):
    from tqdm.auto import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, desc="audit", unit="cell", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


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
