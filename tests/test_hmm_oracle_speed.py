"""The HMM oracle's cheap paths (segment trees): ``answer_at``, the session Sequential rounds use, and
``answer_prefixes`` (speculative rounds) must give the dense forward-backward ``answer`` at the asked
positions to 1e-12, with the same feasibility and the same placeholder on infeasible rows, along whole
Sequential-like runs; and the samplers' exact laws through those paths must be the target's table."""

import pytest
import torch
from _prefix_support import drafted_prefix_rows

from autospec.oracles import CountingOracle, PrefixRows
from autospec.samplers import SequenceSpeculative, Sequential, TokenSpeculative
from autospec.targets import HMMTarget
from autospec.targets.hmm import HMMSession
from verification import exact_law

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

TOL = 1e-12
# seeds whose forbidden transitions / emissions (zero_fraction 0.5) make some observation sequences impossible
CASES = [(n, s, q, seed) for s, q, seed in [(2, 2, 6), (3, 3, 5), (2, 3, 1), (3, 2, 2)] for n in (1, 2, 3, 7, 16, 17, 40)]


def _dense_at(oracle, x, positions):
    dense = oracle.answer(x)
    return dense.marginals.gather(1, positions.unsqueeze(-1).expand(*positions.shape, oracle.q)), dense.feasible


@pytest.mark.parametrize("n,s,q,seed", CASES)
def test_session_and_answer_at_follow_the_dense_answer_along_a_run(n, s, q, seed):
    """Random order, each row pins a value drawn from its law, except row 0 which pins values uniformly (often
    impossible: zero_fraction forbids transitions and emissions): every round, the session's law at the
    asked coordinate and answer_at at several coordinates equal the dense answer, feasibility included."""
    target = HMMTarget.random(n, s=s, q=q, seed=seed, zero_fraction=0.5)
    oracle = target.oracle()
    g = torch.Generator().manual_seed(seed)
    B = 5
    session = oracle.open_session(torch.full((B, n), -1, dtype=torch.long))
    assert isinstance(session, HMMSession)
    order = torch.argsort(torch.rand(B, n, generator=g), dim=1)
    infeasible = 0
    for t in range(n):
        position = order[:, t]
        asked = torch.cat([position.unsqueeze(1), torch.randint(0, n, (B, 3), generator=g)], dim=1)  # pinned ones too
        reference, feasible = _dense_at(oracle, session.x, asked)
        got = session.answer_at(asked[:, :1])
        assert (got.marginals - reference[:, :1]).abs().max() <= TOL
        assert torch.equal(got.feasible, feasible)
        at = oracle.answer_at(session.x.clone(), asked)
        assert (at.marginals - reference).abs().max() <= TOL
        assert torch.equal(at.feasible, feasible)
        infeasible += int((~feasible).sum())
        value = torch.multinomial(reference[:, 0], 1, generator=g).squeeze(1)
        value[0] = int(torch.randint(0, q, (1,), generator=g))
        session.pin(None, position, value)
    final, feasible = _dense_at(oracle, session.x, torch.arange(n).expand(B, n))
    got = session.answer_at(torch.arange(n).expand(B, n))
    assert (got.marginals - final).abs().max() <= TOL and torch.equal(got.feasible, feasible)
    if n >= 7:  # the deliberate pins must have produced infeasible rows (else the placeholder path is untested)
        assert infeasible > 0


def test_session_pins_several_coordinates_of_a_row_at_once():
    target = HMMTarget.random(23, s=3, q=2, seed=4, zero_fraction=0.3)
    oracle = target.oracle()
    g = torch.Generator().manual_seed(1)
    x = torch.full((4, 23), -1, dtype=torch.long)
    session = oracle.open_session(x)
    for _ in range(3):
        free = torch.nonzero(session.x < 0)
        pick = free[torch.randperm(free.shape[0], generator=g)[:7]]
        session.pin(pick[:, 0], pick[:, 1], torch.randint(0, 2, (pick.shape[0],), generator=g))
        everything = torch.arange(23).expand(4, 23)
        reference, feasible = _dense_at(oracle, session.x, everything)
        got = session.answer_at(everything)
        assert (got.marginals - reference).abs().max() <= TOL and torch.equal(got.feasible, feasible)


def test_large_n_spot_check():
    """n = 1024 (2^10 leaves) and 1000 (padded): half the coordinates pinned (every pinning is possible:
    the emissions are positive), then rounds, each pinning 50 more coordinates per row."""
    for n in (1024, 1000):
        target = HMMTarget.sticky(n, stay=0.97, noise=0.05)
        oracle = target.oracle()
        g = torch.Generator().manual_seed(n)
        x = torch.randint(0, 2, (3, n), generator=g)
        partial = torch.where(torch.rand(x.shape, generator=g) < 0.5, x, torch.full_like(x, -1))
        session = oracle.open_session(partial)
        free = torch.nonzero(partial < 0)
        for _ in range(3):
            asked = torch.randint(0, n, (3, 6), generator=g)
            reference, feasible = _dense_at(oracle, session.x, asked)
            got = session.answer_at(asked)
            assert (got.marginals - reference).abs().max() <= TOL and bool(feasible.all())
            at = oracle.answer_at(session.x.clone(), asked)
            assert (at.marginals - reference).abs().max() <= TOL
            pick = free[torch.randperm(free.shape[0], generator=g)[:50]]
            free = free[~torch.isin(free[:, 0] * n + free[:, 1], pick[:, 0] * n + pick[:, 1])]
            session.pin(pick[:, 0], pick[:, 1], x[pick[:, 0], pick[:, 1]])


def _prefix_rows(target, A, K, seed):
    g = torch.Generator().manual_seed(seed)
    n, q = target.n, target.q
    base = torch.where(torch.rand(A, n, generator=g) < 0.3, torch.randint(0, q, (A, n), generator=g), torch.full((A, n), -1))
    return drafted_prefix_rows(base, K, q, g)


@pytest.mark.parametrize("n,s,q,seed", [(1, 2, 3, 1), (5, 2, 2, 6), (12, 3, 3, 5), (33, 2, 3, 3), (40, 3, 2, 3)])
def test_prefix_answers_are_the_materialised_rows_answers(n, s, q, seed):
    """Every chunking of the lengths (chunk 1, 2, 3, default), asked positions that are drafted columns (the
    speculative rows' own) and arbitrary ones, and the few-rows path (a reread's subset)."""
    target = HMMTarget.random(n, s=s, q=q, seed=seed, zero_fraction=0.5)
    oracle = target.oracle()
    g = torch.Generator().manual_seed(seed)
    A, K = 6, min(n, 7)
    rows = _prefix_rows(target, A, K, seed)
    R = rows.num_rows
    own = rows.columns[rows.owner, rows.length.clamp(max=K - 1)].unsqueeze(1) if K else torch.zeros((R, 1), dtype=torch.long)
    positions = torch.cat([own, torch.randint(0, n, (R, 3), generator=g)], dim=1)
    reference, feasible = _dense_at(oracle, rows.materialise(), positions)
    assert int((~feasible).sum()) > 0 or n < 5
    for chunk in (1, 2, 3, None):
        got = oracle.answer_prefixes(rows, positions, chunk=chunk)
        assert (got.marginals - reference).abs().max() <= TOL, chunk
        assert torch.equal(got.feasible, feasible), chunk
    subset = rows.subset(torch.randperm(R, generator=g)[:A])  # R <= A: one tree per row
    ref_sub, feas_sub = _dense_at(oracle, subset.materialise(), positions[:A])
    got = oracle.answer_prefixes(subset, positions[:A])
    assert (got.marginals - ref_sub).abs().max() <= TOL and torch.equal(got.feasible, feas_sub)


def test_counting_oracle_uses_the_hmm_session():
    target = HMMTarget.random(9, s=2, q=3, seed=3, zero_fraction=0.3)
    counting = CountingOracle(target.oracle(), 4)
    session = counting.open_session(torch.full((4, 9), -1, dtype=torch.long))
    assert isinstance(session.state, HMMSession)


@pytest.mark.parametrize("sampler", [Sequential(), TokenSpeculative(2), SequenceSpeculative(3)], ids=lambda s: s.name)
def test_exact_law_through_the_session_and_prefix_paths(sampler):
    """Sequential asks through HMMSession, the speculative samplers through answer_prefixes and reread."""
    from types import SimpleNamespace

    hmm = HMMTarget.random(4, s=2, q=3, seed=1, zero_fraction=0.5)
    target = SimpleNamespace(n=hmm.n, q=hmm.q, probs=hmm.to_tabular().probs, oracle=hmm.oracle)
    assert bool((target.probs == 0).any())  # impossible cells: drafts hit infeasible prefixes
    law = exact_law(sampler, target)
    assert law.unexplored_mass < 1e-12
    assert law.tv < 1e-12, law.summary()


def test_prefix_rows_without_drafts_repeat_their_base_rows_answers():
    """K = 0 (a first round) with owners repeated (more rows than base rows: the chunked path)."""
    target = HMMTarget.random(9, s=3, q=2, seed=2, zero_fraction=0.5)
    oracle = target.oracle()
    g = torch.Generator().manual_seed(0)
    base = torch.where(torch.rand(3, 9, generator=g) < 0.2, torch.randint(0, 2, (3, 9), generator=g), torch.full((3, 9), -1))
    empty = torch.zeros((3, 0), dtype=torch.long)
    rows = PrefixRows(base, empty, empty, empty.bool(), torch.tensor([0, 0, 1, 2, 2, 1, 0]), torch.zeros(7, dtype=torch.long))
    positions = torch.randint(0, 9, (7, 4), generator=g)
    reference, feasible = _dense_at(oracle, rows.materialise(), positions)
    got = oracle.answer_prefixes(rows, positions)
    assert (got.marginals - reference).abs().max() <= TOL and torch.equal(got.feasible, feasible)
    assert bool(feasible.any()) and not bool(feasible.all())
