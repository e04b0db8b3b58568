"""The verdict table printed at the end of an audit."""

from __future__ import annotations

__all__ = ["format_table", "key_number"]


def key_number(cell: dict) -> str:
    """The one number that best explains a cell's verdict."""
    ev = cell.get("evidence", {})
    if cell["verdict"] == "error":
        return str(ev.get("error", ""))[:60]
    if "exact_tv" in ev and "rejections" in ev:  # a mutant: the proof and the statistical check
        text = f"TV={ev['exact_tv']:.2e}, check rejected {ev['rejections']}/{ev['num_seeds']}"
        if isinstance(ev.get("min_detectable_tv"), (int, float)):
            text += f" (detects TV>={ev['min_detectable_tv']:.2g})"
        return text
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


def format_table(document: dict, width: int = 44) -> str:
    cells = list(document["cells"].values())
    header = ("stage", "sampler", "target", "check", "verdict", "evidence")
    rows = [(c["stage"], _clip(c["sampler"], width), _clip(c["target"], 24), c["check"], c["verdict"].upper(), key_number(c))
            for c in cells]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), line]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    out.append(line)
    for name, stage in document.get("stages", {}).items():
        if stage["status"] not in ("ran", "no cells"):
            out.append(f"stage {name}: {stage['status']}" + (" (FAILURE)" if stage["status"].startswith("plan failed") else ""))
    summary = document.get("summary", {})
    counts = ", ".join(f"{v} {k}" for k, v in summary.get("counts", {}).items())
    out.append(f"{len(cells)} cells: {counts or 'none'}" + ("" if document.get("complete") else " (INCOMPLETE)"))
    if summary.get("failing_samplers"):
        out.append("NOT EXACT (or errored): " + ", ".join(summary["failing_samplers"]))
    if summary.get("missed_mutants"):
        out.append("mutants NOT caught: " + ", ".join(summary["missed_mutants"]))
    if summary.get("unflagged_controls"):
        out.append("negative controls NOT flagged (harness failure): " + ", ".join(summary["unflagged_controls"]))
    return "\n".join(out)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
