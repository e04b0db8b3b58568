"""Oracle sessions: incremental oracle state for rows that only gain pins (Sequential's rounds).

Every structured session must answer exactly what the stateless oracle answers at the same pins (laws
to 1e-12, feasibility equal), along whole runs that include impossible pins; the counting wrapper must
validate pins and charge one round per ``marginals`` call; a wrapper overriding a structured oracle's
answers must never be bypassed by its parent's state; and Sequential through sessions stays exact.
"""

from types import SimpleNamespace

import pytest
import torch

from autospec import Randomness
from autospec.oracles import CountingOracle, OracleSession
from autospec.samplers import Sequential
from autospec.targets import CurieWeissTarget, DPPTarget, MarkovChainTarget, TabularTarget, XorTarget
from verification import exact_law

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

TARGETS = {
    "curie-weiss": lambda: CurieWeissTarget(23, beta=1.2, h=0.1),
    "markov-zeros": lambda: MarkovChainTarget.random(21, q=3, seed=1, zero_fraction=0.4),
    "dpp-projection": lambda: DPPTarget.random(19, 4, "projection", seed=2),
    "dpp-fourier": lambda: DPPTarget.fourier_projection(40, 7),
    "dpp-L": lambda: DPPTarget.random(18, 5, "L", seed=3),
    "xor": lambda: XorTarget.random(24, density=0.5, seed=1),
    "tabular": lambda: TabularTarget.random(6, 3, seed=4, zero_fraction=0.3),  # the default session
}


def _walk(target, seed, impossible=False):
    """Pin every coordinate in a random order per row, drawing from the session's laws; with ``impossible``
    every other row gets, once, a value its law gives zero mass (where one is offered).
    Yields (session, stateless answer at every coordinate, session answer at every coordinate)."""
    oracle = target.oracle()
    B, n = 12, target.n
    rng = Randomness(seed=seed)
    counted = CountingOracle(oracle, B)
    session = counted.open_session(torch.full((B, n), -1, dtype=torch.long))
    order = rng.permutation(B, n)
    every = torch.arange(n).expand(B, n)
    spoil = torch.arange(B) % 2 == 0
    for t in range(n):
        fresh = oracle.answer_at(session.x.clone(), every)
        yield session, fresh, session.state.answer_at(every)
        position = order[:, t]
        law = session.marginals(position.unsqueeze(1))[:, 0]
        value = rng.categorical(law)
        if impossible and t >= 2:  # rows 0, 2, 4, ...: the first value of zero mass they are offered, once
            zero = (law <= 1e-12) & spoil.unsqueeze(1)  # zero up to rounding (a projection DPP past its rank)
            rows = torch.nonzero(zero.any(1))[:, 0]  # (the last round too: the final answers are compared)
            value[rows] = zero[rows].to(torch.long).argmax(1)
            spoil[rows] = False
        session.pin(None, position, value)
    yield session, oracle.answer_at(session.x.clone(), every), session.state.answer_at(every)
    assert counted.rounds.tolist() == [n] * B and counted.queries.tolist() == [n] * B


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_session_answers_equal_the_stateless_oracle_along_a_run(name):
    target = TARGETS[name]()
    infeasible_seen = False
    for _, fresh, ours in _walk(target, seed=7, impossible=True):
        ok = fresh.feasible
        assert torch.equal(ours.feasible, fresh.feasible)
        assert (ours.marginals[ok] - fresh.marginals[ok]).abs().max() <= 1e-12
        assert torch.isfinite(ours.marginals).all()
        infeasible_seen |= bool((~ok).any())
    if name in ("markov-zeros", "dpp-projection", "xor", "tabular"):
        assert infeasible_seen, "the run was meant to reach impossible pinnings"


def test_session_answers_at_n_1024_spot_check():
    """The incremental state stays exact over a thousand pins (rank-one DPP updates accumulate rounding)."""
    for target in (DPPTarget.fourier_projection(1024, 9), MarkovChainTarget.sticky(1024, q=2, stay=0.9),
                   XorTarget.random(1024, density=0.3, seed=0), CurieWeissTarget(1024, beta=1.0)):
        oracle = target.oracle()
        session = CountingOracle(oracle, 4).open_session(torch.full((4, 1024), -1, dtype=torch.long))
        rng = Randomness(seed=1)
        order = rng.permutation(4, 1024)
        for t in range(1024):
            law = session.marginals(order[:, t].unsqueeze(1))[:, 0]
            session.pin(None, order[:, t], rng.categorical(law))
            if t in (100, 700, 1000):
                free = torch.nonzero(session.x[0] < 0)[:, 0][:8].expand(4, -1)
                free = torch.where(session.x.gather(1, free) < 0, free, order[:, t + 1:t + 2].expand_as(free))
                ours = session.state.answer_at(free).marginals
                fresh = oracle.answer_at(session.x.clone(), free).marginals
                assert (ours - fresh).abs().max() <= 1e-9, (target.name, t)


def test_feasibility_is_read_against_the_pins_it_answered():
    target = MarkovChainTarget.random(6, q=3, seed=1, zero_fraction=0.4)
    session = CountingOracle(target.oracle(), 2).open_session(torch.full((2, 6), -1, dtype=torch.long))
    answer = session.answer_at(torch.zeros((2, 1), dtype=torch.long))
    session.pin(None, torch.tensor([0, 0]), torch.tensor([0, 1]))
    with pytest.raises(RuntimeError, match="before the session's next pin"):
        _ = answer.feasible


def test_pins_are_validated():
    target = CurieWeissTarget(5)
    session = CountingOracle(target.oracle(), 2).open_session(torch.full((2, 5), -1, dtype=torch.long))
    session.pin(None, torch.tensor([1, 2]), torch.tensor([0, 1]))
    cases = [
        ((None, torch.tensor([1, 3]), torch.tensor([1, 1])), ValueError, "expected a free coordinate"),  # row 0 coordinate 1 pinned
        ((None, torch.tensor([5, 3]), torch.tensor([1, 1])), ValueError, r"in \[0, 4\]"),
        ((None, torch.tensor([3, 3]), torch.tensor([2, 1])), ValueError, r"value in \[0, 1\]"),
        ((None, torch.tensor([3]), torch.tensor([1])), ValueError, "1-D of one length"),
        ((None, torch.tensor([3.0, 3.0]), torch.tensor([1, 1])), TypeError, "positions must be an integer tensor"),
        ((torch.tensor([0, 0]), torch.tensor([3, 3]), torch.tensor([1, 1])), ValueError, "pinned twice"),
        ((torch.tensor([2]), torch.tensor([3]), torch.tensor([1])), ValueError, r"a row in \[0, 1\]"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            session.pin(*args)
    assert session.x.tolist() == [[-1, 0, -1, -1, -1], [-1, -1, 1, -1, -1]]  # no rejected pin landed
    session.pin(torch.tensor([0, 0, 1]), torch.tensor([3, 4, 0]), torch.tensor([1, 1, 0]))  # several pins in a row
    fresh = target.oracle().answer_at(session.x.clone(), torch.tensor([[0], [1]]))
    assert torch.equal(session.answer_at(torch.tensor([[0], [1]])).marginals, fresh.marginals)


def test_a_subclass_overriding_the_answers_is_not_bypassed_by_the_parent_session():
    from autospec.targets.curie_weiss import CurieWeissOracle

    class Flattened(CurieWeissOracle):
        def answer_at(self, partial, positions):
            answer = super().answer_at(partial, positions)
            answer.marginals = torch.where(partial.gather(1, positions).unsqueeze(-1) < 0, 0.5, answer.marginals)
            return answer

    target = CurieWeissTarget(6, beta=2.0, h=0.8)
    session = CountingOracle(Flattened(target), 3).open_session(torch.full((3, 6), -1, dtype=torch.long))
    assert type(session.state).__name__ == "_QueriedSession"  # the override answers, not the parent's counts
    assert torch.equal(session.marginals(torch.zeros((3, 1), dtype=torch.long)), torch.full((3, 1, 2), 0.5, dtype=torch.float64))
    plain = CountingOracle(target.oracle(), 3).open_session(torch.full((3, 6), -1, dtype=torch.long))
    assert type(plain.state).__name__ == "CurieWeissSession"


def test_a_nested_counting_oracle_counts_session_rounds_too():
    target = CurieWeissTarget(4)
    inner = CountingOracle(target.oracle(), 2)
    outer = CountingOracle(inner, 2)
    session = outer.open_session(torch.full((2, 4), -1, dtype=torch.long))
    for position in range(4):
        session.marginals(torch.full((2, 1), position, dtype=torch.long))
        session.pin(None, torch.full((2,), position, dtype=torch.long), torch.tensor([0, 1]))
    assert outer.rounds.tolist() == inner.rounds.tolist() == [4, 4]


def test_a_dense_only_oracle_gets_the_default_session():
    target = TabularTarget.random(4, 2, seed=0, zero_fraction=0.2)

    class DenseOnly:
        n, q = target.n, target.q

        def marginals(self, partial, sample_ids=None):
            return target.oracle().query(partial).marginals

    out = Sequential().sample(DenseOnly(), 5, Randomness(seed=0))
    assert out.rounds.tolist() == [4] * 5 and bool((out.values >= 0).all())


@pytest.mark.parametrize("make", [lambda: MarkovChainTarget.random(4, q=3, seed=1, zero_fraction=0.4),
                                  lambda: CurieWeissTarget(4, beta=1.5, h=0.3),
                                  lambda: DPPTarget.random(5, 3, "projection", seed=2),
                                  lambda: DPPTarget.random(5, 3, "L", seed=1),
                                  lambda: XorTarget.random(6, density=0.5, seed=1)],
                         ids=["markov-zeros", "curie-weiss", "dpp-projection", "dpp-L", "xor"])
def test_sequential_through_sessions_is_exact(make):
    target = make()
    both = SimpleNamespace(n=target.n, q=target.q, probs=target.to_tabular().probs, oracle=target.oracle)
    for order in ("random", "fixed"):
        assert exact_law(Sequential(order=order), both).tv < 1e-10


def test_the_default_session_is_the_base_class():
    assert type(TabularTarget.random(2, 2, seed=0).oracle().open_session(torch.full((1, 2), -1))) is OracleSession


# ---------------------------------------------------------------- sessions of the speculative samplers
def _hmm():
    from autospec.targets import HMMTarget

    return HMMTarget.random(40, s=3, q=3, seed=5, zero_fraction=0.3)


def _rebuilding(oracle):
    """The same HMM oracle, but its prefix answers rebuild the trees from base every round."""
    kind = type("RebuildingHMMOracle", (type(oracle),), {"prefixes_from_session": False})
    out = object.__new__(kind)
    out.__dict__.update(oracle.__dict__)
    return out


def test_prefix_rows_from_a_session_answer_as_rows_from_scratch():
    """Along prefix rounds with pins (and a plain round) in between, the HMM's answers from its session's
    trees equal its answers from trees rebuilt from base (1e-12), rereads included; drafts and pins take
    uniform values, so some are impossible."""
    from tests._prefix_support import drafted_prefix_rows

    target = _hmm()
    oracle = target.oracle()
    B, n, q, K = 8, target.n, target.q, 4
    counted = CountingOracle(oracle, B)
    session = counted.open_session(torch.full((B, n), -1), for_prefixes=True)
    assert session.inner_state is not None  # the HMM keeps its trees for prefix rows
    g = torch.Generator().manual_seed(11)
    for _ in range(6):
        active = torch.arange(0, B, 2) if _ % 2 else torch.arange(B)
        draft = drafted_prefix_rows(session.x[active], K, q, g)
        rows = session.prefix_rows(active, draft.columns, draft.values, draft.drafted, draft.owner, draft.length)
        positions = torch.randint(0, n, (rows.num_rows, 3), generator=g)
        mine = counted.query_prefixes(rows, positions=positions)
        scratch = _rebuilding(oracle).answer_prefixes(draft, positions).marginals
        assert (mine - scratch).abs().max() <= 1e-12
        again = counted.reread(torch.arange(0, rows.num_rows, 2), positions[::2])  # same round, no pin yet
        assert (again - scratch[::2]).abs().max() <= 1e-12
        session.marginals(session.x.lt(0).long().argmax(1, keepdim=True))  # a plain round in between
        free = torch.stack([torch.nonzero(session.x[b] < 0).squeeze(-1)[:3] for b in range(B)])  # [B, 3]
        session.pin(torch.arange(B).repeat_interleave(3), free.reshape(-1), torch.randint(0, q, (3 * B,), generator=g))
    assert int(counted.rounds.max()) == 12


def test_prefix_rows_are_refused_after_a_pin_or_from_another_oracle():
    target = _hmm()
    B, n = 4, target.n
    counted, other = CountingOracle(target.oracle(), B), CountingOracle(target.oracle(), B)
    session = counted.open_session(torch.full((B, n), -1), for_prefixes=True)
    empty = torch.zeros((B, 0), dtype=torch.long)
    rows = session.prefix_rows(torch.arange(B), empty, empty, empty.bool(), torch.arange(B), torch.zeros(B, dtype=torch.long))
    positions = torch.zeros((B, 1), dtype=torch.long)
    with pytest.raises(ValueError, match="must come from this oracle"):
        other.query_prefixes(rows, positions=positions)
    counted.query_prefixes(rows, positions=positions)
    session.pin(torch.tensor([0]), torch.tensor([5]), torch.tensor([0]))
    with pytest.raises(ValueError, match="pinned .* after prefix_rows"):
        counted.reread(torch.tensor([1]), positions[:1])
    with pytest.raises(ValueError, match="pinned .* after prefix_rows"):
        counted.query_prefixes(rows, positions=positions)
    rows = session.prefix_rows(torch.arange(B), empty, empty, empty.bool(), torch.arange(B), torch.zeros(B, dtype=torch.long))
    rows.base[1, 3] = 0  # a sampler writing the base behind the session's back
    with pytest.raises(ValueError, match="base written"):
        counted.query_prefixes(rows, positions=positions)


def test_speculative_samplers_draw_the_same_with_and_without_the_session_state():
    """Seeded draws of the speculative samplers on an HMM are identical whether the oracle answers prefix
    rows from its session's trees or rebuilds them each round (a session only changes where work is done)."""
    from autospec.samplers import SequenceSpeculative, TokenSpeculative

    target = _hmm()
    for sampler in (TokenSpeculative(3), SequenceSpeculative(4)):
        with_session = sampler.sample(target.oracle(), 30, Randomness(seed=4))
        without = sampler.sample(_rebuilding(target.oracle()), 30, Randomness(seed=4))
        assert torch.equal(with_session.values, without.values)
        assert torch.equal(with_session.rounds, without.rounds)


def test_a_prefix_session_keeps_the_oracles_state_only_where_its_prefix_answers_read_it():
    markov = MarkovChainTarget.random(10, q=3, seed=1)
    session = CountingOracle(markov.oracle(), 2).open_session(torch.full((2, 10), -1), for_prefixes=True)
    assert session.inner_state is None  # Markov answers prefix rows from base: no state to keep up
    session = CountingOracle(markov.oracle(), 2).open_session(torch.full((2, 10), -1))
    assert session.inner_state is not None  # Sequential's session does keep it
