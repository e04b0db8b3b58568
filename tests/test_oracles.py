import pytest
import torch

from autospec.oracles import CountingOracle, OracleError
from autospec.targets import TabularTarget


class Broken:
    """An oracle whose answer is whatever the test puts in ``answer``."""

    name = "broken-oracle"

    def __init__(self, n=3, q=2):
        self.n, self.q = n, q
        self.answer = None

    def marginals(self, partial, sample_ids=None):
        return self.answer(partial) if callable(self.answer) else self.answer


def uniform(partial, q=2):
    return torch.full((*partial.shape, q), 1.0 / q, dtype=torch.float64)


@pytest.mark.parametrize(
    "answer, message",
    [
        (lambda p: uniform(p)[:, :2], r"shape \[1, 2, 2\], expected \[1, 3, 2\]"),
        (lambda p: uniform(p).index_fill(2, torch.tensor([0]), float("nan")), "non-finite"),
        (lambda p: uniform(p) * torch.tensor([-1.0, 2.0], dtype=torch.float64), "negative"),
        (lambda p: uniform(p) * 1.1, "summing to 1.1"),
        (lambda p: torch.ones(1, 3, 2, dtype=torch.long), "dtype"),
    ],
)
def test_invalid_answers_raise_naming_the_oracle(answer, message):
    inner = Broken()
    inner.answer = answer
    oracle = CountingOracle(inner, num_samples=1)
    with pytest.raises(OracleError, match="broken-oracle") as error:
        oracle.marginals(torch.full((1, 3), -1))
    assert error.match(message)


def test_pinned_coordinate_must_answer_its_one_hot():
    inner = Broken()
    inner.answer = uniform
    with pytest.raises(OracleError, match="pinned coordinate 1"):
        CountingOracle(inner, 1).marginals(torch.tensor([[-1, 1, -1]]))


@pytest.mark.parametrize(
    "partial, error, message",
    [
        (torch.zeros(2, 4, dtype=torch.long), ValueError, r"shape \[B, 3\]"),
        (torch.full((2, 3), 2), ValueError, r"-1 \(free\) or in \[0, 1\]"),
        (torch.full((2, 3), -2), ValueError, "free"),
        (torch.zeros(2, 3), TypeError, "integer"),
        ([[0, 1, -1]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_partial_assignments(partial, error, message):
    oracle = CountingOracle(TabularTarget.random(3, 2, seed=0).oracle(), 2)
    with pytest.raises(error, match=message):
        oracle.marginals(partial)


def test_rounds_and_queries_are_counted_per_sample():
    oracle = CountingOracle(TabularTarget.random(3, 2, seed=0).oracle(), num_samples=3)
    free = torch.full((4, 3), -1)
    oracle.marginals(free, sample_ids=torch.tensor([0, 0, 2, 2]))
    oracle.marginals(free[:1], sample_ids=torch.tensor([2]))
    assert oracle.rounds.tolist() == [1, 0, 2]
    assert oracle.queries.tolist() == [2, 0, 3]
    oracle.marginals(free)  # no sample_ids: a lock-step call charged to every sample
    assert oracle.rounds.tolist() == [2, 1, 3]
    assert int(oracle.queries.sum()) == 9


def test_zero_probability_pinnings_are_answered_and_marked():
    table = torch.zeros(2, 2, 2, dtype=torch.float64)
    table[0, 0, 0], table[1, 1, 1] = 0.5, 0.5
    oracle = TabularTarget(table).oracle()
    answer = oracle.query(torch.tensor([[0, 1, -1], [0, -1, -1]]))
    assert answer.feasible.tolist() == [False, True]
    assert torch.isfinite(answer.marginals).all()
    assert torch.allclose(answer.marginals[0].sum(-1), torch.ones(3, dtype=torch.float64))
    assert answer.marginals[1, 2].tolist() == [1.0, 0.0]


def test_positions_with_a_dense_only_oracle_and_the_same_counts():
    target = TabularTarget.random(4, 3, seed=2, zero_fraction=0.2)

    class DenseOnly:  # a user's oracle: the dense contract only
        n, q, name = 4, 3, "dense-only"

        def marginals(self, partial, sample_ids=None):
            return target.oracle().marginals(partial)

    partial = torch.tensor([[-1, 0, -1, -1], [2, -1, -1, 1], [-1, -1, -1, -1]])
    positions = torch.tensor([[0, 2], [1, 1], [3, 0]])
    dense = CountingOracle(DenseOnly(), 3)
    sliced = CountingOracle(DenseOnly(), 3)
    full = dense.marginals(partial, sample_ids=torch.tensor([0, 1, 1]))
    asked = sliced.marginals(partial, sample_ids=torch.tensor([0, 1, 1]), positions=positions)
    assert torch.equal(asked, full.gather(1, positions.unsqueeze(-1).expand(-1, -1, 3)))
    # a query is a row, whatever positions it asks for
    assert torch.equal(dense.rounds, sliced.rounds) and torch.equal(dense.queries, sliced.queries)
    assert sliced.queries.tolist() == [1, 2, 0]


@pytest.mark.parametrize("positions, error, message", [
    (torch.tensor([[0, 4]]), ValueError, r"\[0, 3\]"),
    (torch.tensor([0, 1]), ValueError, r"shape \[1, k\]"),
    (torch.tensor([[0.0]]), TypeError, "integer"),
])
def test_bad_positions(positions, error, message):
    with pytest.raises(error, match=message):
        CountingOracle(TabularTarget.random(4, 2, seed=0).oracle(), 1).marginals(torch.full((1, 4), -1), positions=positions)


def test_reread_gives_more_of_the_last_answer_without_a_round():
    target = TabularTarget.random(4, 3, seed=4, zero_fraction=0.2)
    oracle = CountingOracle(target.oracle(), 2)
    partial = torch.tensor([[-1, 0, -1, -1], [2, -1, -1, -1], [-1, -1, -1, -1]])
    oracle.marginals(partial, sample_ids=torch.tensor([0, 1, 1]), positions=torch.tensor([[0], [1], [2]]))
    rounds, queries = oracle.rounds.clone(), oracle.queries.clone()
    more = oracle.reread(torch.tensor([2, 0]), torch.tensor([[3, 1], [2, 3]]))
    dense = target.oracle().marginals(partial)
    assert torch.equal(more, torch.stack([dense[2, [3, 1]], dense[0, [2, 3]]]))
    assert torch.equal(oracle.rounds, rounds) and torch.equal(oracle.queries, queries)
