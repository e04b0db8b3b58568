"""DPP prefix answers by a walk along each draft (``DPPOracle.answer_prefixes``): one base kernel per
sample, then one rank-one step of its square-root factor per drafted slot.  The answers must be the
materialised rows' ``answer_at`` (laws, placeholders and feasible flags, including drafts that are
impossible), the cached walk must be reused by the same round's reread and recomputed when the rows
change, and the speculative samplers on these answers must keep their exact law (exact_law vs the table).
"""

from types import SimpleNamespace

import pytest
import torch

from autospec import Randomness
from autospec.oracles import CountingOracle, PrefixRows
from autospec.samplers import SequenceSpeculative, Sequential, SmoothedBlockSize, TokenSpeculative
from autospec.targets import DPPTarget

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

TARGETS = [
    DPPTarget.fourier_projection(4, 3),
    DPPTarget.fourier_projection(9, 5),
    DPPTarget.fourier_projection(40, 9),
    DPPTarget.random(6, 2, "projection", seed=1),
    DPPTarget.random(17, 4, "projection", seed=2),
    DPPTarget.random(33, 7, "projection", seed=3),
    DPPTarget.random(4, 3, "L", seed=4),
    DPPTarget.random(12, 5, "L", seed=5),
    DPPTarget.random(38, 6, "L", seed=6),
    DPPTarget.fourier_l_ensemble(24, 7),
]


def _rows(target, A=24, seed=0) -> PrefixRows:
    """Prefix rows over real samples: base = 30% of a sample's pins (a few flipped: infeasible bases),
    every free column drafted in random order (10% undrafted slots, anywhere), with values: the sample's
    own (half the samples: feasible drafts), mostly ones (more ones than the rank: impossible), mostly
    zeros (a projection DPP left too few free items to reach its r ones: impossible); every length 0..K."""
    g = torch.Generator().manual_seed(seed)
    x = Sequential().sample(target.oracle(), A, Randomness(seed)).values
    base = torch.where(torch.rand(x.shape, generator=g) < 0.3, x, torch.full_like(x, -1))
    flip = (torch.rand(x.shape, generator=g) < 0.03) & (base >= 0)
    base = torch.where(flip, 1 - base, base)
    K = int((base < 0).sum(1).max())
    columns = torch.zeros((A, K), dtype=torch.long)
    drafted = torch.zeros((A, K), dtype=torch.bool)
    ones = torch.tensor([0.75, 0.05]).repeat(A // 2 + 1)[:A]
    values = (torch.rand((A, K), generator=g) < ones.unsqueeze(1)).to(torch.long)
    for a in range(A):
        free = torch.nonzero(base[a] < 0).squeeze(-1)
        chosen = free[torch.randperm(free.numel(), generator=g)][:K]
        columns[a, : chosen.numel()] = chosen
        drafted[a, : chosen.numel()] = torch.rand(chosen.numel(), generator=g) < 0.9
        if a < A // 2:
            values[a, : chosen.numel()] = x[a, chosen]
    owner = torch.arange(A).repeat_interleave(K + 1)
    return PrefixRows(base, columns, values, drafted, owner, torch.arange(K + 1).repeat(A))


def _positions(rows, seed) -> torch.Tensor:
    """Each row's own next drafted column (what the samplers ask) beside random columns (pinned ones too)."""
    g = torch.Generator().manual_seed(seed)
    K = rows.columns.shape[1]
    own = rows.columns[rows.owner, rows.length.clamp(max=K - 1)].unsqueeze(1)
    return torch.cat([own, torch.randint(0, rows.n, (rows.num_rows, 5), generator=g)], 1)


def _p1_to_50_digits(target, row: torch.Tensor, j: int) -> float:
    """P(j in Y | the row's pins) by the Schur complement of the marginal kernel K = F (F^T F + I)^-1 F^T
    (F F^T for a projection DPP) in 50-digit arithmetic (mpmath): K_jj - k^T (K_S - I_E)^-1 k, S the pins,
    E the excluded ones (P(pins) = |det(K_S - I_E)|)."""
    import mpmath

    with mpmath.workdps(50):
        F = mpmath.matrix(target.features.tolist())
        if target.kind == "projection":
            K = F * F.T
        else:
            K = F * mpmath.inverse(F.T * F + mpmath.eye(target.r)) * F.T
        pinned = torch.nonzero(row >= 0).squeeze(-1).tolist()
        M = mpmath.matrix(len(pinned), len(pinned))
        for a, u in enumerate(pinned):
            for b, w in enumerate(pinned):
                M[a, b] = K[u, w] - (1 if a == b and int(row[u]) == 0 else 0)
        k = mpmath.matrix([K[j, u] for u in pinned])
        return float(K[j, j] - (k.T * mpmath.lu_solve(M, k))[0] if pinned else K[j, j])


@pytest.mark.parametrize("index", range(len(TARGETS)), ids=[t.name for t in TARGETS])
def test_prefix_answers_equal_the_materialised_rows(index):
    target = TARGETS[index]
    counts = {"feasible": 0, "infeasible": 0}
    for seed in range(2):
        rows = _rows(target, seed=seed)
        positions = _positions(rows, seed)
        full = rows.materialise()
        reference = target.oracle().answer_at(full, positions)
        got = target.oracle().answer_prefixes(rows, positions)
        assert torch.equal(got.feasible, reference.feasible)
        # laws where feasible, the placeholder (uniform on free, one-hot on pinned) where not
        gap = (got.marginals - reference.marginals).abs().amax(-1)  # [R, k]
        assert gap.max() <= 1e-10
        # where the two float64 paths differ most (rows with a pin of chance ~1e-5: nearly dependent included
        # features, or an excluded item that was nearly forced; both paths lose digits there), the walk is
        # within 1e-10 of the 50-digit truth, not merely of the other path
        worst = gap.flatten().argsort(descending=True)[:3]
        for i, j in zip((worst // gap.shape[1]).tolist(), (worst % gap.shape[1]).tolist()):
            if gap[i, j] > 1e-12:
                truth = _p1_to_50_digits(target, full[i], int(positions[i, j]))
                assert abs(float(got.marginals[i, j, 1]) - truth) <= 1e-10, (target.name, i, j)
        counts["feasible"] += int(reference.feasible.sum())
        counts["infeasible"] += int((~reference.feasible).sum())
    assert counts["feasible"] >= 50 and counts["infeasible"] >= 5, counts


def test_prefix_answers_match_the_table_on_small_targets():
    """Against the enumerated table (not the oracle's own dense path) where n is small enough."""
    for target in (TARGETS[1], TARGETS[3], TARGETS[7]):
        rows = _rows(target, seed=3)
        positions = _positions(rows, 3)
        table = target.to_tabular().oracle().answer(rows.materialise())
        there = table.marginals.gather(1, positions.unsqueeze(-1).expand(-1, -1, 2))
        got = target.oracle().answer_prefixes(rows, positions)
        ok = table.feasible
        assert torch.equal(got.feasible, ok), target.name
        assert bool(ok.any()) and bool((~ok).any())
        assert (got.marginals[ok] - there[ok]).abs().max() <= 1e-10, target.name


def test_a_long_walk_stays_exact():
    """A sample's whole order drafted at once (n = 256, K = 255 slots, its own values): every prefix's
    law at the next slot equals answer_at on the written-out prefix, and the prefix probabilities
    multiply to the sample's probability under the DPP (det of the chosen features' Gram)."""
    target = DPPTarget.fourier_projection(256, 9)
    oracle = target.oracle()
    x = Sequential().sample(oracle, 2, Randomness(7)).values
    order = torch.stack([torch.randperm(256, generator=torch.Generator().manual_seed(s)) for s in range(2)])
    base = torch.full_like(x, -1)
    columns, values = order[:, :255], x.gather(1, order[:, :255])
    drafted = torch.ones_like(columns, dtype=torch.bool)
    owner, length = torch.arange(2).repeat_interleave(256), torch.arange(256).repeat(2)
    rows = PrefixRows(base, columns, values, drafted, owner, length)
    positions = order.gather(1, length.view(2, 256)).reshape(-1, 1)
    got = oracle.answer_prefixes(rows, positions)
    reference = oracle.answer_at(rows.materialise(), positions)
    assert bool(got.feasible.all()) and bool(reference.feasible.all())
    assert (got.marginals - reference.marginals).abs().max() <= 1e-10
    chosen = x.gather(1, order).reshape(-1)  # the value each prefix's next slot takes
    law = got.marginals[:, 0].gather(1, chosen.unsqueeze(1)).squeeze(1).view(2, 256)
    assert torch.allclose(law.prod(1), target.probability(x), rtol=1e-9, atol=0)
    # once the sample's r = 9 ones are pinned every later item is out for sure: P(1) exactly 0, not a
    # rounding residue (exact enumeration counts outcomes of positive weight; a pin the next query calls
    # impossible is never offered)
    ones_before = torch.cat([torch.zeros(2, 1, dtype=torch.long), chosen.view(2, 256).cumsum(1)[:, :-1]], 1)
    full = ones_before == 9
    assert int(full.sum()) > 10
    assert bool((got.marginals[:, 0, 1].view(2, 256)[full] == 0).all())


def test_reread_gathers_the_cached_walk_and_a_changed_row_is_walked_again():
    target = TARGETS[5]
    rows = _rows(target, seed=4)
    positions = _positions(rows, 4)
    oracle = target.oracle()
    counted = CountingOracle(oracle, rows.base.shape[0])
    counted.query_prefixes(rows, sample_ids=rows.owner, positions=positions)
    table = oracle._prefix_cache[2]
    some = torch.arange(0, rows.num_rows, 5)
    again = counted.reread(some, positions[some, 1:3])
    assert oracle._prefix_cache[2] is table  # the same round's reread walked nothing
    fresh = target.oracle().answer_at(rows.materialise(some), positions[some, 1:3])
    assert (again - fresh.marginals).abs().max() <= 1e-10
    # an in-place change of the draft (same tensor objects) must not read the stale walk
    rows.values[:, 0] = 1 - rows.values[:, 0]
    changed = oracle.answer_prefixes(rows, positions)
    assert oracle._prefix_cache[2] is not table
    reference = target.oracle().answer_at(rows.materialise(), positions)
    assert torch.equal(changed.feasible, reference.feasible)
    assert (changed.marginals - reference.marginals).abs().max() <= 1e-10


SMOOTHED = (TokenSpeculative(SmoothedBlockSize(start=2)), SequenceSpeculative(SmoothedBlockSize(start=2)))
FIXED = (TokenSpeculative(3), SequenceSpeculative(4))
def test_the_torch_walk_equals_the_numpy_walk(monkeypatch):
    """On CPU the slot loop runs on numpy arrays; other devices run the same loop on torch tensors."""
    import autospec.targets.dpp as dpp

    for target in (TARGETS[2], TARGETS[8]):
        rows = _rows(target, seed=5)
        positions = _positions(rows, 5)
        with_numpy = target.oracle().answer_prefixes(rows, positions)
        monkeypatch.setattr(dpp, "_TORCH_WALK", True)
        with_torch = target.oracle().answer_prefixes(rows, positions)
        monkeypatch.setattr(dpp, "_TORCH_WALK", False)
        assert torch.equal(with_torch.feasible, with_numpy.feasible)
        assert (with_torch.marginals - with_numpy.marginals).abs().max() <= 1e-12


EXACT_CASES = [  # (target, samplers): the default suite's cases (about 2.5 s in all)
    (DPPTarget.fourier_projection(5, 3), SMOOTHED),
    (DPPTarget.random(5, 3, "L", seed=9), SMOOTHED),
    (DPPTarget.random(4, 3, "L", seed=9), SMOOTHED + FIXED),
]
SLOW_CASES = [  # fixed blocks at n = 5 (about 7 s)
    (DPPTarget.fourier_projection(5, 3), FIXED),
    (DPPTarget.random(5, 2, "projection", seed=8), SMOOTHED + FIXED),
    (DPPTarget.random(5, 3, "L", seed=9), FIXED),
]


def _exact(target, samplers):
    from verification import exact_law

    both = SimpleNamespace(n=target.n, q=target.q, probs=target.to_tabular().probs, oracle=target.oracle)
    for sampler in samplers:
        law = exact_law(sampler, both)
        assert law.leaves > 1000 and law.unexplored_mass < 1e-12, sampler
        assert law.tv < 1e-10, sampler


@pytest.mark.parametrize("index", range(len(EXACT_CASES)), ids=[t.name for t, _ in EXACT_CASES])
def test_speculative_samplers_on_walked_prefixes_are_exact(index):
    """exact_law of the speculative samplers through the walked prefix answers equals the target's table."""
    _exact(*EXACT_CASES[index])


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(SLOW_CASES)), ids=[t.name for t, _ in SLOW_CASES])
def test_speculative_samplers_on_walked_prefixes_are_exact_fixed_blocks(index):
    _exact(*SLOW_CASES[index])
