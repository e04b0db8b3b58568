"""Hypothesis strategies for the hard cases: random targets (with zero cells), samplers, partial assignments.

    from hypothesis import given
    from verification.strategies import tabular_targets

    @given(tabular_targets(max_n=3, max_q=3))
    def test_my_sampler_is_exact(target):
        assert exact_law(MySampler(), target).tv < 1e-10
"""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["probability_tables", "tabular_targets", "builtin_samplers", "partial_assignments"]


@st.composite
def probability_tables(draw, min_n: int = 1, max_n: int = 4, min_q: int = 2, max_q: int = 3,
                       allow_zeros: bool = True, min_zeros: int = 0):
    """A float64 table of shape (q,) * n, summing to 1, with (optionally) cells of probability zero.

    Weights mix tiny, ordinary and dominant values, so that near-degenerate
    conditionals are generated as well as exact zeros.
    """
    import torch

    n = draw(st.integers(min_n, max_n), label="n")
    q = draw(st.integers(min_q, max_q), label="q")
    size = q**n
    weight = st.one_of(st.just(0.0), st.floats(1e-6, 1e-3), st.floats(0.01, 1.0), st.floats(1.0, 100.0)) if allow_zeros \
        else st.one_of(st.floats(1e-6, 1e-3), st.floats(0.01, 1.0), st.floats(1.0, 100.0))
    weights = draw(st.lists(weight, min_size=size, max_size=size), label="weights")
    if min_zeros and allow_zeros:
        zeros = draw(st.sets(st.integers(0, size - 1), min_size=min(min_zeros, size - 1), max_size=min(min_zeros, size - 1)))
        weights = [0.0 if i in zeros else w for i, w in enumerate(weights)]
    if sum(weights) <= 0:
        weights[draw(st.integers(0, size - 1))] = 1.0
    table = torch.tensor(weights, dtype=torch.float64)
    return (table / table.sum()).reshape((q,) * n)


@st.composite
def tabular_targets(draw, min_n: int = 1, max_n: int = 4, min_q: int = 2, max_q: int = 3,
                    allow_zeros: bool = True, min_zeros: int = 0):
    """A ``TabularTarget`` on [q]^n from ``probability_tables``."""
    from autospec.targets import TabularTarget

    table = draw(probability_tables(min_n, max_n, min_q, max_q, allow_zeros, min_zeros))
    return TabularTarget(table, name=f"hypothesis(n={table.dim()}, q={table.shape[0]})")


def builtin_samplers(max_block: int = 4):
    """The reference samplers: Sequential, and both speculative ones with block sizes 1..max_block."""
    from autospec.samplers import SequenceSpeculative, Sequential, TokenSpeculative

    blocks = st.integers(1, max_block)
    return st.one_of(st.builds(Sequential), st.builds(TokenSpeculative, blocks), st.builds(SequenceSpeculative, blocks))


@st.composite
def partial_assignments(draw, n: int, q: int, batch: int = 1):
    """A LongTensor [batch, n] with -1 for free coordinates."""
    import torch

    rows = draw(st.lists(st.lists(st.integers(-1, q - 1), min_size=n, max_size=n), min_size=batch, max_size=batch))
    return torch.tensor(rows, dtype=torch.long)
