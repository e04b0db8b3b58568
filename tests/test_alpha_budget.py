"""The default suite's statistical false-fail rates sum to under 1e-3.

Collects the whole default suite (``-m "not slow"``) in a subprocess; the conftest hook writes every
collected item with the alpha of its ``statistical`` marker to a ledger (AUTOSPEC_ALPHA_LEDGER), and the
total is checked here from the ledger itself (not from a summary line that a partial run reports as 0).

What counts: a test asserting that a correct sampler passes a statistical check fails by chance with
probability alpha and is marked with it.  A test asserting that a wrong sampler (mutant, baseline,
tempered setting) is *rejected* fails with probability 1 - power; those are power checks, not
false-fail rates of correct code: they are not marked and their margin is documented where they are
(each runs far above its min_detectable_tv, so 1 - power is negligible).  Proofs (exact_law) and
deterministic computations spend no alpha.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import ALPHA_BUDGET

TESTS = Path(__file__).parent
# A few marked tests that must be seen: if the markers stopped reaching the hook, the total would be 0.
MUST_BE_COUNTED = [
    "tests/test_wrong_samplers.py::test_correct_samplers_pass_check_exact",
    "tests/test_diffusion_exact.py::test_exact_against_gaussian_chain_law",
    "tests/test_structured_targets.py::test_speculative_passes_exact_statistics_moderate_n",
    "tests/test_calibration.py::test_calibration_quick",
]


def test_alpha_budget_of_default_suite(tmp_path):
    ledger = tmp_path / "ledger.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", AUTOSPEC_ALPHA_LEDGER=str(ledger))
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not slow", "-p", "no:cacheprovider", str(TESTS)],
        capture_output=True, text=True, env=env, cwd=TESTS.parent, timeout=600,
    )
    assert out.returncode == 0, f"collection failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    rows = json.loads(ledger.read_text())
    assert len(rows) > 200, f"only {len(rows)} items collected: not the whole default suite"
    marked = [r for r in rows if r["alpha"] > 0]
    for prefix in MUST_BE_COUNTED:
        assert any(r["nodeid"].startswith(prefix) for r in marked), f"{prefix} not counted: markers not seen"
    total = sum(r["alpha"] for r in rows)
    match = re.search(r"statistical alpha total \(this collection, not slow\): ([0-9.eE+-]+) over (\d+) tests", out.stdout)
    assert match and float(match.group(1)) == float(f"{total:.6g}") and int(match.group(2)) == len(marked)
    top = "\n".join(f"  {r['alpha']:.2g}  {r['nodeid']}" for r in sorted(marked, key=lambda r: -r["alpha"])[:15])
    assert total < ALPHA_BUDGET, f"default suite alphas sum to {total:g} >= {ALPHA_BUDGET:g}; largest:\n{top}"


def test_marker_is_counted(pytestconfig):
    # this module is part of the collection; the hook has run and stored a number
    assert isinstance(getattr(pytestconfig, "_statistical_alpha_total", None), float)
