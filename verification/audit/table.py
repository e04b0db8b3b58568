"""The verdict table printed at the end of an audit."""

from __future__ import annotations

__all__ = ["caught_by", "format_table", "key_number"]


def key_number(cell: dict) -> str:
    """The one number that best explains a cell's verdict."""
    ev = cell.get("evidence", {})
    if cell["verdict"] == "error":
        return str(ev.get("error", ""))[:60]
    if "exact_tv" in ev and "rejections" in ev:  # a mutant: the proof and the statistical check
        return f"{caught_by(cell)}: TV={ev['exact_tv']:.2e}, check_exact rejected {ev['rejections']}/{ev['num_seeds']}" + (
            f" (detects TV>={ev['min_detectable_tv']:.2g})" if isinstance(ev.get("min_detectable_tv"), (int, float)) else "")
    if "exact_tv" in ev:
        return f"TV={ev['exact_tv']:.2e}"
    if "rounds_exponent" in ev:
        return f"rounds~n^{ev['rounds_exponent']:.2f}"
    p, alpha = ev.get("p_value"), ev.get("alpha")
    if isinstance(p, (int, float)):
        text = f"p={p:.3g}"
        if isinstance(alpha, (int, float)):
            text += f" (alpha={alpha:g})"
        return text
    return ""


def caught_by(cell: dict) -> str:
    """Which check caught a mutant cell ("by exact law and check_exact", "by exact law only", "missed")."""
    ev = cell.get("evidence", {})
    law = ev.get("flagged_by_exact_law")
    check = ev.get("caught_by_check")
    if law is None and check is None:  # a single-check cell (check_exact_diffusion, a user's stage)
        return f"{'caught' if cell['verdict'] == 'caught' else 'missed'} by {cell['check']}"
    if law and check:
        return "caught by exact law and check_exact"
    if law:
        return "caught by exact law only"
    if check:
        return "caught by check_exact only"
    return "missed by every check"


def format_table(document: dict, width: int = 44) -> str:
    cells = list(document["cells"].values())
    header = ("stage", "sampler", "target", "check", "verdict", "evidence")
    rows = [(c["stage"], _clip(c["sampler"], width), _clip(c["target"], 24), c["check"], _loud(c["verdict"]), key_number(c))
            for c in cells]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), line]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    out.append(line)
    for name, stage in document.get("stages", {}).items():
        if stage["status"] not in ("ran", "no cells", "filtered out by --only"):
            out.append(f"stage {name}: {stage['status']}" + (" (FAILURE)" if stage["status"].startswith("plan failed") else ""))
    summary = document.get("summary", {})
    counts = ", ".join(f"{v} {k}" for k, v in summary.get("counts", {}).items())
    if not cells:
        out.append("NO CELLS: nothing was checked, so nothing is shown exact")
    else:
        out.append(f"{len(cells)} cells: {counts}" + ("" if document.get("complete") else " (INCOMPLETE)"))
    if summary.get("failing_samplers"):
        out.append("NOT EXACT (or errored): " + ", ".join(summary["failing_samplers"]))
    if summary.get("missed_mutants"):
        out.append("mutants NOT caught: " + ", ".join(summary["missed_mutants"]))
    if summary.get("unflagged_controls"):
        out.append("negative controls NOT flagged (harness failure): " + ", ".join(summary["unflagged_controls"]))
    return "\n".join(out)


def _loud(verdict: str) -> str:
    """Verdicts that fail the audit in capitals, so they stand out in a long table; the rest lower case."""
    return verdict.upper() if verdict in ("fail", "error", "missed", "undetected") else verdict


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
