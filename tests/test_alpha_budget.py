"""The default suite's statistical false-fail rates sum to under 1e-3."""

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import ALPHA_BUDGET

TESTS = Path(__file__).parent


def test_alpha_budget_of_default_suite():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not slow", "-p", "no:cacheprovider", str(TESTS)],
        capture_output=True, text=True, env=env, cwd=TESTS.parent, timeout=600,
    )
    match = re.search(r"statistical alpha total \(default suite\): ([0-9.eE+-]+) over (\d+) tests", out.stdout)
    assert match, f"collection did not report the alpha total:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    total, count = float(match.group(1)), int(match.group(2))
    assert count > 0
    assert total < ALPHA_BUDGET, f"default suite alphas sum to {total:g} >= {ALPHA_BUDGET:g}"


def test_marker_is_counted(pytestconfig):
    # this module is part of the collection; the hook has run and stored a number
    assert isinstance(getattr(pytestconfig, "_statistical_alpha_total", None), float)
