"""The HTML report: self-contained, escaped, with the verdict matrix and plots; renders in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

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
    assert "<script" not in html and "@import" not in html
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
    assert "<script" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 8


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(report_dir, tmp_path):
    import numpy as np
    from matplotlib import image

    shot = tmp_path / "shot.png"
    subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2400", f"--screenshot={shot}",
         (report_dir / "index.html").resolve().as_uri()],
        capture_output=True, timeout=120, check=False,
    )
    assert shot.exists() and shot.stat().st_size > 10_000, "Chromium wrote no screenshot"
    pixels = image.imread(str(shot))[..., :3]
    assert pixels.shape[0] >= 2000 and pixels.shape[1] >= 1200
    assert float(pixels.std()) > 0.05, "the screenshot is blank"
    # Colour: the verdict matrix's green cells are drawn (not just black text on white).
    green = (pixels[..., 1] > pixels[..., 0] + 0.05) & (pixels[..., 1] > pixels[..., 2] + 0.02)
    assert green.mean() > 0.001
    # The plots are there further down: many distinct colours below the matrix.
    lower = pixels[pixels.shape[0] // 3:]
    assert len(np.unique((lower * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 200
