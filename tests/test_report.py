"""The HTML report: self-contained, escaped, read at a glance (verdict first, which check caught each mutant,
numbers kept whole, plots readable).  Its layout in a real browser: tests/test_report_browser.py."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

from verification.audit import AuditConfig, run_audit
from verification.report import render_report

ONLY = ["exact/Sequential/*", "check/SequenceSpeculative(block_size=3)/tab-n4q3-zeros/*", "calibration/Sequential/*",
        "mutation/mutant:no-verification/*", "depth/*", "diffusion/ASD/*"]
SMALL = {"num_samples": 3000, "calibration_runs": 12, "calibration_samples": 500, "depth_ns": [16, 32],
         "depth_samples": 8, "diffusion_samples": 1000}


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    outcome = run_audit(AuditConfig(only=ONLY, overrides=SMALL), out_dir=out, progress=False)
    assert outcome.exit_code == 0, outcome.document["summary"]
    return out


def test_report_is_self_contained(report_dir):
    html = (report_dir / "index.html").read_text()
    assert "<style>" in html
    # No network: nothing loaded from elsewhere (scripts, stylesheets, images, fonts).
    assert not re.search(r"""(src|href)=["'](https?:)?//""", html)
    assert "@import" not in html
    # One inline script (sorting and filtering), nothing loaded: no <script src=...>.
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts == ["<script>"], scripts
    assert "fetch(" not in html and "XMLHttpRequest" not in html
    assert html.count('src="data:image/png;base64,') >= 3  # calibration, depth, diffusion


def test_report_has_matrix_evidence_kill_table_and_reproduce_command(report_dir):
    html = (report_dir / "index.html").read_text()
    for anchor in ('id="matrix"', 'id="evidence-table"', 'id="mutants"', 'id="calibration"', 'id="depth"',
                   'id="diffusion"', 'id="environment"', 'id="reproduce"'):
        assert anchor in html, anchor
    for header in ("p-value", "alpha", "samples", "min detectable TV", "exact-law TV"):
        assert header in html
    assert "no-verification" in html and "autospec audit --quick --seed 0" in html


def test_every_user_string_is_escaped():
    evil = "<script>alert(1)</script>"
    cell = {"id": f"check/{evil}/{evil}/c", "stage": "check", "sampler": evil, "target": evil, "check": evil,
            "verdict": "fail", "seed": 1, "elapsed_s": 0.1,
            "evidence": {"p_value": 0.0, "alpha": 1e-4, "statistic": 1.0, "num_samples": 10,
                         "worst_cells": [{"cell": evil, "observed": 1, "expected": 0.5, "z": 3.0}]}}
    doc = {"config": {"mode": "quick", "seed": 0, "extra_samplers": [evil]}, "complete": True,
           "stages": {"check": {"title": evil, "status": evil, "cells": 1}}, "plugins": {evil: evil},
           "cells": {cell["id"]: cell}, "summary": {"counts": {"fail": 1}, "failures": [cell["id"]],
                                                     "failing_samplers": [evil], "missed_mutants": []},
           "runs": [{"run_id": "r", "command": evil, "environment": {"x": evil}, "only": [evil]}]}
    html = render_report(doc)
    assert "<script>alert" not in html and html.count("<script") == 1  # only the report's own script
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 8


def _mutant_cell(name, law, check, rejections=0):
    return {"id": f"mutation/mutant:{name}/t/exact-law + check_exact", "stage": "mutation", "sampler": f"mutant:{name}",
            "target": "t", "check": "exact-law + check_exact", "verdict": "caught" if law or check else "missed",
            "mutant": True, "claims_exact": False, "seed": 12345678901234567890 // 10, "elapsed_s": 0.5,
            "evidence": {"mutant": name, "description": f"{name} bug", "exact_tv": 2.17e-18 if not check else 0.2,
                         "flagged_by_exact_law": law, "caught_by_check": check, "rejections": rejections,
                         "num_seeds": 1, "min_detectable_tv": 0.03, "alpha": 1e-4, "num_samples": 20000}}


def _doc(cells):
    cells = {c["id"]: c for c in cells}
    from verification.audit.runner import _summary

    return {"config": {"mode": "quick", "seed": 0}, "complete": True, "stages": {}, "plugins": {}, "cells": cells,
            "summary": _summary(cells), "runs": []}


def test_mutant_table_says_which_check_caught_each_mutant():
    html = render_report(_doc([_mutant_cell("block-float32", law=True, check=False),
                               _mutant_cell("no-verification", law=True, check=True, rejections=1)]))
    table = html[html.index('id="mutant-table"'):html.index('id="mutant-footer"')]
    assert "caught by exact law only" in table and "caught by exact law and check_exact" in table
    footer = html[html.index('id="mutant-footer"'):]
    footer = footer[:footer.index("</p>")]
    assert "2 of 2 mutants caught" in footer and "every check" not in footer
    assert "1 caught by exact law only" in footer and "1 caught by exact law and check_exact" in footer
    # the checks are named as they are written (lower case), never upper-cased by the style sheet
    assert "text-transform: uppercase" not in html


def test_numbers_never_break_at_the_exponent():
    html = render_report(_doc([_mutant_cell("block-float32", law=True, check=False)]))
    assert '<span class="n">2.17e-18</span>' in html  # in running text (key numbers): kept whole
    assert re.search(r"td\.num \{[^}]*white-space: nowrap", html)  # in number columns
    assert ".n { white-space: nowrap; }" in html


def test_long_seeds_are_shortened_in_the_evidence_table():
    cell = _mutant_cell("block-float32", law=True, check=False)
    html = render_report(_doc([cell]))
    assert f">{str(cell['seed'])[:6]}…<" in html and f'title="cell seed {cell["seed"]}' in html


def test_failures_come_first_with_links_to_their_evidence():
    bad = {"id": "check/Mine/tab/check_exact", "stage": "check", "sampler": "Mine", "target": "tab", "check": "check_exact",
           "verdict": "fail", "seed": 1, "elapsed_s": 0.1, "evidence": {"p_value": 1e-9, "alpha": 1e-4, "num_samples": 10}}
    html = render_report(_doc([_mutant_cell("block-float32", law=True, check=False), bad]))
    banner = html[html.index('id="verdict"'):html.index('id="verdict-matrix"')]
    assert "FAILED: 1 of 2 cells" in banner and "<code>Mine</code>" in banner
    anchor = re.search(r'<a href="#(cell-\d+)"><code>Mine', banner).group(1)
    assert f'<tr id="{anchor}" data-verdict="fail" data-failing="1">' in html


def test_verdict_grids_are_dense_tables_or_lists_never_mostly_empty():
    from verification.report.render import _grids

    dense = [{"stage": "exact", "sampler": s, "target": t, "verdict": "pass"} for s in "ABC" for t in "xy"]
    sparse = [{"stage": "mutation", "sampler": f"m{i}", "target": f"t{i}", "verdict": "caught"} for i in range(6)]
    grids = {g["stage"]: g for g in _grids(dense + sparse, {})}
    assert grids["exact"]["dense"] and grids["exact"]["targets"] == ["x", "y"]
    assert not grids["mutation"]["dense"]  # 6 of 36 pairs filled: a list, not a table of empty cells


def _depth_cell(name, slope):
    ns = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    rounds = [n**slope for n in ns]
    return {"stage": "depth", "sampler": name, "target": "markov", "verdict": "info",
            "evidence": {"ns": ns, "mean_rounds": rounds, "rounds_ci": [[r * 0.9, r * 1.1] for r in rounds],
                         "mean_queries": [2 * r for r in rounds], "queries_ci": None, "rounds_exponent": slope,
                         "rounds_intercept": 0.0, "queries_exponent": slope, "queries_intercept": np.log(2),
                         "theory_exponent": slope}}


def _boxes(fig, artists):
    renderer = fig.canvas.get_renderer()
    return [a.get_window_extent(renderer) for a in artists if a.get_visible() and a.get_text()]


def test_depth_plot_is_readable():
    from verification.report import plots

    fig = plots.depth_figure([_depth_cell("Sequential", 1.0), _depth_cell("TokenSpeculative(adaptive)", 0.67),
                              _depth_cell("SequenceSpeculative(adaptive)", 0.5)])
    fig.canvas.draw()
    width, height = fig.get_size_inches() * 100
    assert width >= 1000 and height >= 400  # pixels at the report's 100 dpi
    for ax in fig.axes:
        ticks = _boxes(fig, ax.get_xticklabels())
        assert len(ticks) == 9
        assert all(a.x1 <= b.x0 for a, b in zip(ticks, ticks[1:])), "x tick labels overlap"
        assert all(t.height >= 9 for t in ticks)  # at least ~9 px tall text
    (legend,) = fig.legends
    box = legend.get_window_extent(fig.canvas.get_renderer())
    for ax in fig.axes:  # the legend covers no data point
        for line in ax.get_lines():
            points = ax.transData.transform(np.column_stack([np.asarray(v, dtype=float) for v in line.get_data()]))
            assert not any(box.contains(x, y) for x, y in points)
    plots._pyplot().close(fig)


def test_diffusion_plot_is_one_panel_per_sampler():
    from verification.report import plots

    cells = [{"sampler": f"S{i}", "verdict": "pass", "evidence": {"histogram": {
        "counts": [1, 5, 9, 5, 1], "edges": [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5], "chain_normal": [0.0, 1.0]}}} for i in range(9)]
    fig = plots.diffusion_figure(cells)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 9 and [ax.get_title().split(":")[0] for ax in visible] == [f"S{i}" for i in range(9)]
    assert all(len(ax.patches) == 1 for ax in visible)  # one histogram per panel, never nine overlaid
    plots._pyplot().close(fig)


def test_calibration_plot_draws_the_interval():
    from verification.report import plots

    rng = np.random.default_rng(0)
    cell = {"sampler": "Sequential", "target": "t", "evidence": {"p_values": rng.uniform(size=200).tolist(), "p_value": 0.09,
                                                                "rejections": 12, "binomial_interval": [3, 19]}}
    fig = plots.calibration_figure(cell)
    hist, qq = fig.axes
    bands = [p for p in hist.patches if "band" in str(p.get_label())]
    assert len(bands) == 1
    low, high = bands[0].get_y(), bands[0].get_y() + bands[0].get_height()
    assert 6 <= low < 20 < high <= 36  # Binomial(200, 0.1), 99% over 10 bins (0.1% each): 8 to 35
    assert "allowed 3 to 19" in fig._suptitle.get_text()
    assert qq.collections  # the KS band
    plots._pyplot().close(fig)


def test_an_incomplete_report_is_not_green():
    doc = _doc([_mutant_cell("block-float32", law=True, check=False)])
    html = render_report(dict(copy.deepcopy(doc), complete=False))
    assert 'class="banner warn"' in html and "INCOMPLETE" in html
