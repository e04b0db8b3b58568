"""Render an audit document (results.json) into one self-contained index.html.

Jinja2 with autoescape on: sampler names, target names and error messages
are user input and must never become markup.
"""

from __future__ import annotations

import os
import re
import shlex
from collections import Counter
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from verification.audit.runner import failing_cells
from verification.audit.table import caught_by, key_number

__all__ = ["render_report", "write_report", "reproduce_command"]

TEMPLATES = Path(__file__).parent / "templates"
VERDICT_CLASS = {
    "pass": "good", "caught": "good", "flagged": "good",
    "fail": "bad", "missed": "warn", "error": "bad",
    "info": "info", "undetected": "warn", "inconclusive": "warn",
    "deviation": "warn", "skip": "info",
}


# One sentence per stage on how to read it (a stage registered with how_to_read= overrides these).
HOW_TO_READ = {
    "exact": "Exact output law by enumerating every random choice: pass means the sampler's law equals the target's "
             "to 1e-9 in total variation on that instance, a proof, not a test.",
    "check": "check_exact draws samples and tests them against the exact law: pass means p-value above alpha; "
             "'min detectable TV' is the smallest deviation the test catches with probability 0.99.",
    "calibration": "A correct sampler checked over many seeds: its p-values must look uniform (flat histogram inside "
                   "the shaded band, QQ points on the diagonal); a fail means the test itself is miscalibrated.",
    "mutation": "Deliberately wrong samplers: each must be caught; 'caught by exact law only' means its error is below "
                "what the sample test can see at this budget.",
    "controls": "Inexact baselines beside exact samplers on the same instances: a baseline must be flagged "
                "(exact TV above the flag level); an unflagged one is a harness failure.",
    "depth": "Adaptive oracle rounds per sample versus n on log-log axes: the fitted slope is the depth exponent "
             "(sequential 1, token-level ~2/3, sequence-level ~1/2).",
    "diffusion": "Diffusion samplers against the exact K-step chain law: pass means the sample test accepts; "
                 "a mutant must be caught.",
    "peers": "Third-party implementations run under the harness: a deviation is reported with its evidence and "
             "does not fail this audit.",
}
FAILING = ("fail", "error", "missed", "undetected", "inconclusive")
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:e[-+]?\d+)?(?:\^[-+]?[\d.]+)?")


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["num"] = _num
    env.filters["nobreak"] = _nobreak
    return env


def _nobreak(text) -> Markup:
    """Escape ``text`` and keep every number whole: a line never breaks inside "2.17e-18"."""
    text = str(text)
    out, last = [], 0
    for match in _NUMBER.finditer(text):
        out.append(escape(text[last:match.start()]))
        out.append(Markup('<span class="n">') + escape(match.group()) + Markup("</span>"))
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


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


def _grids(cells: list[dict], stages: dict) -> list[dict]:
    """One verdict grid per stage: samplers x targets where most pairs have a cell (a dense table), else a
    list of (sampler, target, verdict) chips; a wide table of mostly empty columns reads badly."""
    by_stage: dict[str, list[dict]] = {}
    for cell in cells:
        by_stage.setdefault(cell["stage"], []).append(cell)
    grids = []
    for name, members in by_stage.items():
        targets = list(dict.fromkeys(c["target"] for c in members))
        samplers = list(dict.fromkeys(c["sampler"] for c in members))
        entries: dict[tuple[str, str], list[dict]] = {}
        for cell in members:
            entries.setdefault((cell["sampler"], cell["target"]), []).append(cell)
        dense = len(targets) > 1 and len(samplers) > 1 and len(entries) >= 0.6 * len(targets) * len(samplers)
        info = stages.get(name, {})
        counts: dict[str, int] = {}
        for cell in members:
            counts[cell["verdict"]] = counts.get(cell["verdict"], 0) + 1
        grids.append({
            "stage": name, "title": info.get("title") or name, "cells": members, "dense": dense, "targets": targets,
            "how_to_read": info.get("how_to_read") or HOW_TO_READ.get(name, ""), "counts": counts,
            "failing": sum(counts.get(v, 0) for v in FAILING),
            "rows": [{"sampler": s, "cells": [entries.get((s, t), []) for t in targets]} for s in samplers],
        })
    return grids


def verdict_line(document: dict) -> tuple[str, str]:
    """(css class, one sentence): the audit's verdict, as the banner says it."""
    cells = document.get("cells", {})
    summary = document.get("summary", {})
    if not cells:
        return "warn", "No cells: this audit checked nothing, so it shows nothing exact."
    failures = summary.get("failures") or [c["id"] for c in failing_cells(cells)]
    if failures:
        return "bad", f"FAILED: {len(failures)} of {len(cells)} cells fail the audit."
    if not document.get("complete", True):
        return "warn", f"INCOMPLETE: {len(cells)} cells so far, none failing; resume with --resume to finish."
    return "good", (f"PASSED: all {len(cells)} cells. Every sampler that claims exactness passed; every mutant was "
                    "caught; every negative control was flagged.")


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
        row["caught_by"] = [caught_by(c) for c in row["checks"]]
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
    stages = document.get("stages", {})
    verdict_class, verdict_text = verdict_line(document)
    mutants = _mutants(cells)
    failing = failing_cells(document["cells"])
    calibration = [dict(cell=c, plot=plots.calibration_plot(c)) for c in cells
                   if c["stage"] == "calibration" and c["verdict"] != "error" and c["evidence"].get("p_values")]
    depth_cells = [c for c in cells if c["stage"] == "depth" and c["verdict"] != "error" and "ns" in c["evidence"]]
    diffusion_cells = [c for c in cells if c["stage"] == "diffusion" and c["verdict"] != "error"]
    context = {
        "doc": document,
        "cells": cells,
        "summary": document.get("summary", {}),
        "stages": stages,
        "grids": _grids(cells, stages),
        "verdict": {"class": verdict_class, "text": verdict_text},
        "failing": failing,
        "failing_ids": {c["id"] for c in failing},
        "how_to_read": HOW_TO_READ,
        "mutants": mutants,
        "mutant_tally": sorted(Counter(how for row in mutants for how in row["caught_by"]).items(), key=lambda x: -x[1]),
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
        "caught_by": caught_by,
        "anchor": {c["id"]: f"cell-{i}" for i, c in enumerate(cells, 1)},
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
