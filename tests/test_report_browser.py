"""The report in a real browser: headless Chromium at 1400 and 800 pixels wide.

The layout is checked from the page itself: a small probe script (added to a
copy of the report, never to the report) measures every element and every
line of text after layout and writes what it found into the page, which
Chromium's ``--dump-dom`` returns.  Checked: nothing wider than the viewport,
no two lines of text drawn over each other, every section present, plots
shown at a readable size.  Full-page screenshots are kept under
``reports/browser-test/`` (the assertion messages name them).

Chromium is Debian's ``chromium`` (``.ci/run`` installs it).  Where it is
missing the test is skipped with that reason, except under ``CI=true``, where
a missing browser is a failure: a skip must not pass for a check.
"""

from __future__ import annotations

import html as html_lib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from verification.audit import AuditConfig, run_audit

ARTEFACTS = Path(os.environ.get("AUTOSPEC_ARTEFACTS", Path(__file__).resolve().parents[1] / "reports" / "browser-test"))
# A small audit with a cell of every kind of section, one of them failing (a user's wrong sampler) and one long name.
ONLY = ["exact/Sequential/tab-n3q2-zeros/*", "check/*/tab-n3q3/*", "calibration/Sequential/*",
        "mutation/mutant:block-float32/*", "depth/*", "diffusion/ASD/*", "diffusion/mutant:diffusion_wrong_hyperplane/*",
        "diffusion/mutant:diffusion_reused_noise/*"]
SMALL = {"num_samples": 2000, "check_targets": ["tab-n3q3"], "check_samplers": ["Sequential", "SequenceSpeculative(2)"],
         "calibration_runs": 40, "calibration_samples": 200, "depth_ns": [16, 32, 64], "depth_samples": 8,
         "diffusion_samples": 1000, "draft_samplers": []}
SECTIONS = ["verdict", "verdict-matrix", "evidence", "evidence-table", "mutants", "mutant-table", "speed-error",
            "third-party", "calibration", "depth", "diffusion", "reproduce", "environment"]

PROBE = r"""
<script>
window.addEventListener("load", function () {
  var W = document.documentElement.clientWidth, found = {width: W, height: document.documentElement.scrollHeight,
      scrollWidth: document.documentElement.scrollWidth, wide: [], overlaps: [], sections: [], plots: []};
  function name(el) { return el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.className && el.className.baseVal === undefined ? "." + String(el.className).split(" ").join(".") : ""); }
  document.body.querySelectorAll("*").forEach(function (el) {
    if (el.closest("script, style")) return;
    var r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) return;
    if (r.right > W + 1 || r.left < -1) found.wide.push(name(el) + " [" + Math.round(r.left) + ", " + Math.round(r.right) + "]");
  });
  var boxes = [], walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    var node = walker.currentNode;
    if (!node.nodeValue.trim() || node.parentElement.closest("script, style")) continue;
    var closed = node.parentElement.closest("details:not([open])");  // folded away: not drawn
    if (closed && !node.parentElement.closest("summary")) continue;
    var range = document.createRange(); range.selectNodeContents(node);
    Array.prototype.forEach.call(range.getClientRects(), function (r) {
      if (r.width > 1 && r.height > 1) boxes.push({l: r.left, r: r.right, t: r.top + window.scrollY, b: r.bottom + window.scrollY,
                                                  text: node.nodeValue.trim().slice(0, 40)});
    });
  }
  boxes.sort(function (a, b) { return a.t - b.t; });
  for (var i = 0; i < boxes.length; i++) {
    for (var j = i + 1; j < boxes.length && boxes[j].t < boxes[i].b - 2; j++) {
      var a = boxes[i], b = boxes[j];
      var w = Math.min(a.r, b.r) - Math.max(a.l, b.l), h = Math.min(a.b, b.b) - Math.max(a.t, b.t);
      if (w > 2 && h > 2) found.overlaps.push(a.text + " | " + b.text);
    }
  }
  document.querySelectorAll("[id]").forEach(function (el) { found.sections.push(el.id); });
  document.querySelectorAll("img.plot").forEach(function (img) {
    found.plots.push({alt: img.alt, shown: img.getBoundingClientRect().width, natural: img.naturalWidth});
  });
  var pre = document.createElement("pre"); pre.id = "layout-probe"; pre.textContent = JSON.stringify(found);
  pre.style.display = "none"; document.body.appendChild(pre);
});
</script>
"""


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _browser(*args: str, profile: Path) -> subprocess.CompletedProcess:
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def chromium():
    path = _chromium()
    if path is None:
        message = "headless Chromium is not installed (apt-get install -y chromium; .ci/run installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}: under CI=true the browser test must run, not skip")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("browser-report")

    class LongNamedWrong:  # a user's wrong sampler with a long name: a failing row and a long label to lay out
        name = "MyVeryLongUserSamplerNameThatKeepsGoing(block_size=3, temperature=0.7, draft=tempered)"

        def sample(self, oracle, num_samples, rng):
            import torch

            probs = torch.full((num_samples, oracle.n, oracle.q), 1.0 / oracle.q, dtype=torch.float64)
            return rng.categorical(probs)

    run_audit(AuditConfig(only=ONLY + ["check/MyVeryLong*"], overrides=SMALL), out_dir=out, progress=False,
              extra_samplers=[LongNamedWrong()])
    return out / "index.html"


def _layout(page: Path, width: int, tmp: Path) -> dict:
    probe = tmp / f"probe-{width}.html"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    done = _browser("--dump-dom", "--virtual-time-budget=5000", f"--window-size={width},1000", probe.as_uri(),
                    profile=tmp / f"profile-{width}")
    start = done.stdout.find('<pre id="layout-probe"')
    assert start >= 0, f"the probe did not run in Chromium (exit {done.returncode}): {done.stderr[-2000:]}"
    text = done.stdout[done.stdout.index(">", start) + 1: done.stdout.index("</pre>", start)]
    return json.loads(html_lib.unescape(text))


@pytest.mark.parametrize("width", [1400, 800])
def test_report_layout_in_headless_chromium(chromium, report, tmp_path, width):
    found = _layout(report, width, tmp_path)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / f"report-{width}px.png"
    height = min(int(found["height"]) + 20, 16000)
    _browser(f"--screenshot={shot}", f"--window-size={width},{height}", report.as_uri(), profile=tmp_path / "shot")
    assert shot.exists() and shot.stat().st_size > 20_000, f"Chromium wrote no screenshot at {shot}"
    where = f"(screenshot: {shot})"
    assert found["width"] == width, f"the viewport is {found['width']} px, not {width} {where}"
    assert found["scrollWidth"] <= width, f"the page scrolls sideways: {found['scrollWidth']} px {where}"
    assert not found["wide"], f"elements wider than the {width} px viewport: {found['wide'][:10]} {where}"
    assert not found["overlaps"], f"text drawn over other text: {found['overlaps'][:10]} {where}"
    missing = [s for s in SECTIONS if s not in found["sections"]]
    assert not missing, f"sections missing: {missing} {where}"
    assert len(found["plots"]) >= 3, found["plots"]
    for plot in found["plots"]:  # shown at its own size, or as wide as the page allows: never a thumbnail
        assert plot["shown"] >= min(plot["natural"], width - 60) * 0.9, (plot, where)
    print(f"report screenshot at {width} px: {shot}")
