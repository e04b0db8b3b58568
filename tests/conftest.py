"""Shared pytest configuration.

The ``statistical(alpha=...)`` marker: a test whose assertion can fail by
chance even when the code is right declares that probability (its false-fail
rate, with its fixed seed).  The alphas of the default (not slow) suite are
summed at collection; the sum must stay under ALPHA_BUDGET
(tests/test_alpha_budget.py enforces it).
"""

import json
import os

import pytest

ALPHA_BUDGET = 1e-3


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "statistical(alpha): the test fails by chance with probability <= alpha when the code is right"
    )


def _alpha_of(item) -> float:
    # a bare @statistical counts as 1e-4, the pytest plugin's default alpha
    return sum(float(m.kwargs.get("alpha", m.args[0] if m.args else 1e-4)) for m in item.iter_markers("statistical"))


def pytest_collection_modifyitems(session, config, items):
    default = [item for item in items if item.get_closest_marker("slow") is None]
    config._statistical_alpha_total = float(sum(_alpha_of(item) for item in default))
    config._statistical_alpha_count = sum(1 for item in default if item.get_closest_marker("statistical"))
    ledger = os.environ.get("AUTOSPEC_ALPHA_LEDGER")
    if ledger:  # tests/test_alpha_budget.py: every default-suite item with its alpha, checked item by item
        rows = [{"nodeid": item.nodeid, "alpha": _alpha_of(item)} for item in default]
        with open(ledger, "w") as handle:
            json.dump(rows, handle)


def pytest_report_collectionfinish(config, start_path, items):
    total = getattr(config, "_statistical_alpha_total", 0.0)
    count = getattr(config, "_statistical_alpha_count", 0)
    return f"statistical alpha total (this collection, not slow): {total:.6g} over {count} tests (budget {ALPHA_BUDGET:g})"


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a module: on the shared 2-core machine intra-op threads only contend."""
    from verification.calibration import single_thread

    with single_thread():
        yield
