"""Prefix queries (``PrefixRows``): structured oracles answer a draft's prefixes from the base
assignment and the drafted deltas (never writing [rows, n] out); the answers must be the
materialised rows' answers, the counting wrapper must validate and count them like ``query``,
and the speculative samplers that use them must keep their exact law (exact_law vs the table)."""

import pytest
import torch
from _prefix_support import drafted_prefix_rows

from autospec import Randomness
from autospec.oracles import CountingOracle, PrefixRows
from autospec.samplers import AdaptiveBlockSize, SequenceSpeculative, Sequential, TokenSpeculative
from autospec.targets import CurieWeissTarget, DPPTarget, MarkovChainTarget, XorTarget

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

TARGETS = [
    CurieWeissTarget(12, beta=1.3, h=0.2),
    MarkovChainTarget.random(9, q=3, seed=1, zero_fraction=0.4),  # forbidden transitions: infeasible rows
    MarkovChainTarget.sticky(12),
    DPPTarget.random(12, 3, "projection", seed=2),  # fixed cardinality: infeasible rows
    DPPTarget.fourier_l_ensemble(12, 5),
    XorTarget.random(12, density=0.5, seed=1),  # parity: infeasible rows
    XorTarget.random(12, density=0.6, arity=2, seed=3),
]


def _rows(target, A=40, K=5, seed=0) -> PrefixRows:
    """Random prefix rows: base pins drawn from a real sample (40% pinned, then 5% flipped), K distinct
    free drafted columns per sample (15% of the slots undrafted), random values, every length 0..K."""
    g = torch.Generator().manual_seed(seed)
    x = Sequential().sample(target.oracle(), A, Randomness(seed)).values
    base = torch.where(torch.rand(x.shape, generator=g) < 0.4, x, torch.full_like(x, -1))
    flip = (torch.rand(x.shape, generator=g) < 0.05) & (base >= 0)
    base = torch.where(flip, (base + 1) % target.q, base)
    return drafted_prefix_rows(base, K, target.q, g)


@pytest.mark.parametrize("index", range(len(TARGETS)), ids=[t.name for t in TARGETS])
def test_prefix_answers_are_the_materialised_rows_answers(index):
    target = TARGETS[index]
    table = target.to_tabular().oracle()
    infeasible = 0
    for seed in range(2):
        rows = _rows(target, seed=seed)
        positions = torch.randint(0, target.n, (rows.num_rows, 4), generator=torch.Generator().manual_seed(seed))
        full = rows.materialise()
        assert torch.equal(rows.pins_at(positions), full.gather(1, positions))
        reference = table.answer(full)
        ok = reference.feasible
        infeasible += int((~ok).sum())
        got = target.oracle().answer_prefixes(rows, positions)
        there = reference.marginals.gather(1, positions.unsqueeze(-1).expand(-1, -1, target.q))
        assert torch.isfinite(got.marginals).all()
        assert (got.marginals[ok] - there[ok]).abs().max() <= 1e-12
        assert torch.equal(got.feasible, ok)
        counted = CountingOracle(target.oracle(), rows.base.shape[0])
        answer = counted.query_prefixes(rows, sample_ids=rows.owner, positions=positions)
        assert (answer[ok] - there[ok]).abs().max() <= 1e-12
        assert counted.rounds.tolist() == [1] * rows.base.shape[0]
        assert counted.queries.tolist() == [6] * rows.base.shape[0]  # K + 1 rows per sample
        every_third = torch.arange(0, rows.num_rows, 3)
        again = counted.reread(every_third, positions[every_third, :2])
        assert (again - there[every_third, :2])[ok[every_third]].abs().max() <= 1e-12
        assert counted.rounds.tolist() == [1] * rows.base.shape[0]  # a reread charges nothing
    if index in (1, 3, 5, 6):
        assert infeasible > 10, "the rows should exercise infeasible pinnings"


def test_bad_prefix_rows_are_named():
    target = MarkovChainTarget.sticky(6)
    counted = CountingOracle(target.oracle(), 1)
    base = torch.tensor([[0, -1, -1, -1, -1, -1]])
    good = dict(columns=torch.tensor([[1, 2]]), values=torch.tensor([[1, 0]]), drafted=torch.tensor([[True, True]]),
                owner=torch.tensor([0, 0, 0]), length=torch.tensor([0, 1, 2]))
    positions = torch.tensor([[3], [3], [3]])
    for change, message in [(dict(columns=torch.tensor([[0, 2]])), "already pinned"),
                            (dict(columns=torch.tensor([[2, 2]])), "repeats a drafted column"),
                            (dict(length=torch.tensor([0, 1, 3])), "rows.length"),
                            (dict(values=torch.tensor([[2, 0]])), "rows.values")]:
        rows = PrefixRows(base, **{**good, **change})
        with pytest.raises(ValueError, match=message):
            counted.query_prefixes(rows, positions=positions)


@pytest.mark.parametrize("make", [lambda: DPPTarget.random(4, 2, "projection", seed=2),
                                  lambda: XorTarget.random(4, density=0.6, arity=2, seed=3),
                                  lambda: MarkovChainTarget.random(4, q=3, seed=1, zero_fraction=0.4),
                                  lambda: CurieWeissTarget(4, beta=1.5, h=0.3)],
                         ids=["dpp-projection", "xor", "markov-zeros", "curie-weiss"])
def test_speculative_samplers_on_prefix_answers_are_exact(make):
    """exact_law with the structured oracle (prefix answers) against the enumerated table."""
    from types import SimpleNamespace

    from verification import exact_law

    target = make()
    both = SimpleNamespace(n=target.n, q=target.q, probs=target.to_tabular().probs, oracle=target.oracle)
    for sampler in (TokenSpeculative(3), SequenceSpeculative(AdaptiveBlockSize(start=1))):
        assert exact_law(sampler, both).tv < 1e-10, sampler
