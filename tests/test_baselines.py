"""Every inexact baseline is flagged: exact TV > 1e-3 by exact_law, and rejected by check_exact."""

import pytest

from autospec.samplers.baselines import (
    BASELINES,
    ConfidenceUnmasking,
    ParallelUnmasking,
    TopKSequential,
    TypicalAcceptance,
)
from autospec.targets import TabularTarget
from verification import check_exact, exact_law
from verification.speed_error import cells_from_rows, format_table, speed_error_rows

TARGET = TabularTarget.random(n=2, q=3, seed=3, concentration=0.5)
ALPHA = 1e-6  # per check_exact call; these calls must *reject*, so alpha bounds nothing that can false-fail


@pytest.mark.parametrize("sampler", BASELINES(), ids=lambda s: s.name)
def test_baseline_flagged(sampler):
    assert sampler.exact is False
    law = exact_law(sampler, TARGET)
    assert law.unexplored_mass < 1e-12
    assert law.tv > 1e-3, f"{sampler.name}: TV {law.tv:.3e} too small to flag"
    result = check_exact(sampler, TARGET, num_samples=5_000, alpha=ALPHA, seed=1, test="pearson")
    assert not result.passed, result.summary()


def test_product_target_is_not_a_false_alarm():
    """On a product target parallel unmasking is exact: the harness flags the algebra, not the label."""
    import numpy as np

    a, b = np.array([0.2, 0.5, 0.3]), np.array([0.6, 0.1, 0.3])
    product = TabularTarget(np.outer(a, b), name="product")
    assert exact_law(ParallelUnmasking(k=2), product).tv < 1e-12


def test_speed_error_table(capsys):
    rows = speed_error_rows(quick=True)
    by_claim = {r["sampler"]: r for r in rows}
    for r in rows:
        if r["claims_exact"]:
            assert r["verdict"] == "exact", r
        else:
            assert r["verdict"] == "flagged", r
        assert r["expected_rounds"] is not None
    # The one-round shortcut is the fastest and among the worst.
    assert by_claim["ParallelUnmasking(k=2)"]["expected_rounds"] == pytest.approx(1.0)
    print("\n" + format_table(rows))  # shown with -s or when the test fails, never under -q
    cells = cells_from_rows(rows)
    assert all(c["verdict"] == "pass" for c in cells) and len(cells) == len(rows)


def test_argument_errors():
    with pytest.raises(ValueError):
        ParallelUnmasking(k=0)
    with pytest.raises(ValueError):
        ConfidenceUnmasking(threshold=0.0)
    with pytest.raises(ValueError):
        TopKSequential(top_k=0)
    assert TypicalAcceptance().exact is False
