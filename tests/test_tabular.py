import itertools

import numpy as np
import pytest
import torch

from autospec.targets import TabularTarget, tabular


def brute_force_conditionals(probs: torch.Tensor, partial: list[int]) -> torch.Tensor | None:
    n, q = probs.dim(), probs.shape[0]
    out = torch.zeros(n, q, dtype=torch.float64)
    for cell in itertools.product(range(q), repeat=n):
        if all(p < 0 or p == c for p, c in zip(partial, cell)):
            for i, c in enumerate(cell):
                out[i, c] += probs[cell]
    mass = out[0].sum()
    return None if mass == 0 else out / mass


@pytest.mark.parametrize("n, q", [(1, 2), (3, 3), (4, 2), (5, 3)])
@pytest.mark.parametrize("precomputed", [True, False])
def test_conditionals_match_brute_force(n, q, precomputed, monkeypatch):
    if not precomputed:
        monkeypatch.setattr(tabular, "MAX_PATTERNS", 0)  # force the masked-sums path
    target = TabularTarget.random(n, q, seed=n * 10 + q, zero_fraction=0.3)
    oracle = target.oracle()
    assert (oracle._patterns is not None) == precomputed
    generator = np.random.default_rng(0)
    partial = torch.from_numpy(generator.integers(-1, q, size=(60, n)))
    answer = oracle.query(partial)
    for row in range(partial.shape[0]):
        expected = brute_force_conditionals(target.probs, partial[row].tolist())
        assert bool(answer.feasible[row]) == (expected is not None)
        if expected is not None:
            assert torch.allclose(answer.marginals[row], expected, atol=1e-12, rtol=0)
        else:
            assert torch.isfinite(answer.marginals[row]).all()


@pytest.mark.parametrize(
    "probs, message",
    [
        (np.full((2, 2), np.nan), "NaN"),
        (np.array([[0.5, 0.6], [-0.1, 0.0]]), "negative"),
        (np.full((2, 2), 0.3), "sum to 1"),
        (np.array([1.0]), "q >= 2"),
        (np.float64(1.0), "n >= 1"),
        (np.full((2, 3), 1 / 6), "equal axes"),
        ("abc", "array of numbers"),
    ],
)
def test_bad_tables(probs, message):
    with pytest.raises(ValueError, match=message):
        TabularTarget(probs)


def test_too_large_table_names_its_size():
    with pytest.raises(ValueError, match=r"2\^21 = 2097152 cells"):
        TabularTarget.random(21, 2)
    with pytest.raises(ValueError, match="q must be"):
        TabularTarget.random(3, 1)
    with pytest.raises(ValueError, match="n must be"):
        TabularTarget.random(0, 2)


def test_largest_table_is_accepted():
    target = TabularTarget.random(20, 2, seed=0)
    answer = target.oracle().query(torch.full((2, 20), -1))
    assert torch.allclose(answer.marginals[0, 3], target.marginal(3))


def test_from_log_weights_and_zero_cells():
    with np.errstate(divide="ignore"):
        log_weights = np.log(np.array([[1.0, 0.0], [3.0, 4.0]]))
    target = TabularTarget.from_log_weights(log_weights)
    assert torch.allclose(target.probs, torch.tensor([[0.125, 0.0], [0.375, 0.5]], dtype=torch.float64))
    with pytest.raises(ValueError, match="all -inf"):
        TabularTarget.from_log_weights(np.full((2, 2), -np.inf))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_marginals_at_every_size(n):
    target = TabularTarget.random(n, 3, seed=n)
    for i in range(n):
        assert target.marginal(i).shape == (3,)
        for j in range(n):
            if i != j:
                pair = target.pair_marginal(i, j)
                assert pair.shape == (3, 3) and torch.allclose(pair.sum(1), target.marginal(i))
