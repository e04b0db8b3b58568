"""Render an audit document (results.json) into one self-contained index.html.

Jinja2 with autoescape on: sampler names, target names and error messages
are user input and must never become markup.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from verification.audit.table import key_number

__all__ = ["render_report", "write_report", "reproduce_command"]

TEMPLATES = Path(__file__).parent / "templates"
VERDICT_CLASS = {
    "pass": "good", "caught": "good", "flagged": "good",
    "fail": "bad", "missed": "warn", "error": "bad",
    "info": "info", "undetected": "warn", "inconclusive": "warn",
    "deviation": "warn", "skip": "info",
}


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["num"] = _num
    return env


def _num(value, digits: int = 3) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        return f"{value:.{digits}g}" if 1e-3 <= abs(value) < 1e5 else f"{value:.{max(digits - 1, 1)}e}"
    return str(value)


def reproduce_command(document: dict) -> str:
    config = document["config"]
    parts = ["autospec", "audit", f"--{config['mode']}", "--seed", str(config["seed"])]
    run = (document.get("runs") or [{}])[-1]
    for pattern in run.get("only") or []:
        parts += ["--only", pattern]
    for sampler in config.get("extra_samplers", []):
        parts += ["--sampler", sampler]
    return " ".join(shlex.quote(p) for p in parts)


def _matrix(cells: list[dict]) -> dict:
    """Rows: samplers; columns: (stage, check, target); entries: cells."""
    columns: list[tuple[str, str, str]] = []
    rows: list[str] = []
    entries: dict[tuple[str, tuple], dict] = {}
    for cell in cells:
        column = (cell["stage"], cell["check"], cell["target"])
        if column not in columns:
            columns.append(column)
        if cell["sampler"] not in rows:
            rows.append(cell["sampler"])
        entries[(cell["sampler"], column)] = cell
    return {
        "columns": columns,
        "rows": [{"sampler": r, "cells": [entries.get((r, c)) for c in columns]} for r in rows],
    }


def _mutants(cells: list[dict]) -> list[dict]:
    table: dict[str, dict] = {}
    for cell in cells:
        if cell["stage"] != "mutation" and not cell.get("mutant"):
            continue
        name = cell["evidence"].get("mutant") or cell["sampler"]
        row = table.setdefault(name, {"mutant": name, "sampler": cell["sampler"],
                                      "description": cell["evidence"].get("description", ""), "checks": []})
        row["checks"].append(cell)
    for row in table.values():
        row["caught"] = any(c["verdict"] == "caught" for c in row["checks"])
        row["all_caught"] = all(c["verdict"] == "caught" for c in row["checks"])
        row["missed_cells"] = [c for c in row["checks"] if c["verdict"] == "missed"]
    return list(table.values())


def _speed_error(cells: list[dict]) -> list[dict]:
    """Rows of the speed-versus-error table: per instance, baselines and exact samplers by expected rounds."""
    rows = [c for c in cells if c["stage"] == "controls" and c["verdict"] != "error"]
    return sorted(rows, key=lambda c: (c["target"], c["claims_exact"], c["evidence"].get("expected_rounds") or 0))


def _peers(cells: list[dict]) -> list[dict]:
    """Third-party cells with their adapters' rows (each a verdict with evidence and versions)."""
    return [c for c in cells if c["stage"] == "peers"]


def render_report(document: dict) -> str:
    from verification.report import plots

    cells = list(document["cells"].values())
    calibration = [dict(cell=c, plot=plots.calibration_plot(c)) for c in cells
                   if c["stage"] == "calibration" and c["verdict"] != "error" and c["evidence"].get("p_values")]
    depth_cells = [c for c in cells if c["stage"] == "depth" and c["verdict"] != "error" and "ns" in c["evidence"]]
    diffusion_cells = [c for c in cells if c["stage"] == "diffusion" and c["verdict"] != "error"]
    context = {
        "doc": document,
        "cells": cells,
        "summary": document.get("summary", {}),
        "stages": document.get("stages", {}),
        "matrix": _matrix(cells),
        "mutants": _mutants(cells),
        "speed_error": _speed_error(cells),
        "peers": _peers(cells),
        "calibration": calibration,
        "depth_plot": plots.depth_plot(depth_cells) if depth_cells else None,
        "depth_cells": depth_cells,
        "diffusion_plot": plots.diffusion_plot(diffusion_cells) if any(
            c["evidence"].get("histogram") for c in diffusion_cells) else None,
        "diffusion_cells": diffusion_cells,
        "run": (document.get("runs") or [{}])[-1],
        "runs": document.get("runs", []),
        "command": reproduce_command(document),
        "verdict_class": VERDICT_CLASS,
        "key_number": key_number,
    }
    return _env().get_template("index.html.j2").render(**context)


def write_report(document: dict, out_dir: str | os.PathLike) -> Path:
    """Write DIR/index.html atomically; returns its path."""
    path = Path(out_dir) / "index.html"
    html = render_report(document)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    return path
