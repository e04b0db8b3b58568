"""Structured targets: exact conditionals at any pinning (vs TabularTarget), infeasible
pinnings, exact statistic laws (vs enumeration), and large-n sanity."""

import pytest
import torch

from autospec.samplers import AdaptiveBlockSize, SequenceSpeculative, TokenSpeculative
from autospec.targets import CurieWeissTarget, DPPTarget, IsingTarget, MarkovChainTarget, XorTarget
from autospec.targets.structured import all_cells

SMALL = [
    MarkovChainTarget.random(7, q=2, seed=0),
    MarkovChainTarget.random(6, q=3, seed=1, zero_fraction=0.4),  # forbidden transitions: infeasible pinnings
    MarkovChainTarget.sticky(8, q=2, stay=0.9),
    CurieWeissTarget(8, beta=1.3, h=0.2),
    CurieWeissTarget(9, beta=0.5, h=-0.7),
    DPPTarget.random(8, 3, "L", seed=1),
    DPPTarget.random(8, 3, "projection", seed=2),  # cardinality fixed: infeasible pinnings
    DPPTarget.fourier_projection(9, 5),
    DPPTarget.fourier_l_ensemble(10, 5),
    XorTarget.random(8, density=0.5, seed=1),  # parity constraints: infeasible pinnings
    XorTarget.random(10, density=0.4, seed=2),
    XorTarget.random(9, density=0.6, arity=2, seed=3),
]
MUST_HAVE_INFEASIBLE = {1, 6, 7, 9, 10, 11}

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def _pinnings(n, q, seed=0, rows=600):
    g = torch.Generator().manual_seed(seed)
    partial = torch.randint(-1, q, (rows, n), generator=g)
    sparse = torch.rand(rows // 2, n, generator=g) < 0.7  # half the rows mostly free
    partial[: rows // 2] = torch.where(sparse, -1, partial[: rows // 2])
    partial[0] = -1  # nothing pinned
    return partial


@pytest.mark.parametrize("index", range(len(SMALL)), ids=[t.name for t in SMALL])
def test_conditionals_match_tabular(index):
    target = SMALL[index]
    table = target.to_tabular()
    partial = _pinnings(target.n, target.q, seed=index)
    mine, reference = target.oracle().answer(partial), table.oracle().answer(partial)
    assert torch.equal(mine.feasible, reference.feasible)
    assert (mine.marginals - reference.marginals).abs().max() <= 1e-12
    assert torch.isfinite(mine.marginals).all()
    if index in MUST_HAVE_INFEASIBLE:
        assert (~reference.feasible).sum() > 10, "the pinning set should exercise infeasible rows"


@pytest.mark.parametrize("index", range(len(SMALL)), ids=[t.name for t in SMALL])
def test_exact_statistics_match_enumeration(index):
    target = SMALL[index]
    cells = all_cells(target.n, target.q)
    probs = target.to_tabular().probs.reshape(-1)
    for stat in target.exact_statistics():
        law = torch.zeros(stat.probs.numel(), dtype=torch.float64).index_add_(0, stat(cells), probs)
        assert (law - stat.probs).abs().max() <= 1e-12, stat.name


@pytest.mark.parametrize("make", [lambda: DPPTarget.random(12, 4, "L", seed=3), lambda: DPPTarget.random(12, 5, "projection", seed=4)],
                         ids=["L", "projection"])
def test_dpp_window_count_law_matches_enumeration(make):
    """The Poisson-binomial window law (eigenvalues of K restricted to the window) on wide windows, which the
    small targets' quarter windows (two items) do not reach."""
    target = make()
    cells = all_cells(target.n, target.q)
    probs = target.to_tabular().probs.reshape(-1)
    for lo, hi in [(0, 12), (1, 9), (5, 8)]:
        law = torch.zeros(hi - lo + 1, dtype=torch.float64).index_add_(0, cells[:, lo:hi].sum(-1), probs)
        assert (law - target.window_count_law(lo, hi)).abs().max() <= 1e-12, (lo, hi)


def test_ising_and_sk_by_enumeration():
    sk = IsingTarget.sk(10, beta=1.0, seed=0)
    grid = IsingTarget.grid(3, 4, beta=0.4, h=0.1)
    for target in (sk, grid):
        assert abs(float(target.probs.sum()) - 1) < 1e-12
        law = target.magnetisation_law()
        assert abs(float(law.sum()) - 1) < 1e-12
        stats = target.exact_statistics()
        assert stats[0].name == "number of ones"
    # SK with zero field is symmetric under the global flip
    flipped = sk.probs.flip(dims=tuple(range(10)))
    assert (flipped - sk.probs).abs().max() < 1e-15
    with pytest.raises(ValueError, match="n must be in"):
        IsingTarget(torch.zeros(21, 21))


@pytest.mark.parametrize("make", [
    lambda: MarkovChainTarget.sticky(4096, q=3, stay=0.8),
    lambda: CurieWeissTarget(4096, beta=1.0),
    lambda: DPPTarget.fourier_projection(4096, 9),
    lambda: XorTarget.random(4096, density=0.3),
], ids=["markov", "curie-weiss", "dpp", "xor"])
def test_large_n_answers_are_laws(make):
    target = make()
    partial = _pinnings(target.n, target.q, seed=5, rows=6)
    partial[1] = torch.where(torch.rand(target.n) < 0.99, -1, partial[1])
    answer = target.oracle().answer(partial)
    assert answer.marginals.shape == (6, target.n, target.q)
    assert torch.isfinite(answer.marginals).all()
    assert ((answer.marginals.sum(-1) - 1).abs() < 1e-9).all()
    assert answer.feasible[0]  # nothing pinned
    for stat in target.exact_statistics():
        assert abs(float(stat.probs.sum()) - 1) < 1e-9


def test_infeasible_rows_get_placeholders():
    dpp = DPPTarget.fourier_projection(64, 5)
    partial = torch.full((2, 64), -1)
    partial[0, :6] = 1  # six items in a rank-5 projection DPP: impossible
    partial[1, 10:] = 0  # only ten items left free: fine
    answer = dpp.oracle().answer(partial)
    assert answer.feasible.tolist() == [False, True]
    assert torch.allclose(answer.marginals[0, 6:], torch.full((58, 2), 0.5, dtype=torch.float64))
    assert abs(float(answer.marginals[1, :10, 1].sum()) - 5) < 1e-9  # the 5 items are among the ten free


# One statistical check per family at moderate n, plus the HMM one below (alpha 2e-5 each; 1e-4 in all for this module).
ALPHA = 2e-5


@pytest.mark.parametrize("make", [
    lambda: MarkovChainTarget.sticky(96, q=2, stay=0.9),
    lambda: CurieWeissTarget(96, beta=1.0),
    lambda: DPPTarget.fourier_projection(96, 7),
    lambda: XorTarget.random(96, density=0.3, seed=4),
], ids=["markov", "curie-weiss", "dpp", "xor"])
@pytest.mark.statistical(alpha=ALPHA)
def test_speculative_passes_exact_statistics_moderate_n(make):
    from verification import check_exact

    target = make()
    sampler = SequenceSpeculative(AdaptiveBlockSize(maximum=16)) if "xor" not in target.name else TokenSpeculative(8)
    result = check_exact(sampler, target, num_samples=600, alpha=ALPHA, seed=3)
    assert result.test == "chi2-statistics-holm"
    assert result.passed, result.summary()


# ---- HMM variant of the chain: observations of a hidden chain (forward-backward with evidence) ----
def _hmm_targets():
    from autospec.targets import HMMTarget

    return [
        HMMTarget.random(7, s=2, q=2, seed=0),
        HMMTarget.random(6, s=3, q=3, seed=1, zero_fraction=0.5),
        HMMTarget.sticky(8, stay=0.9, noise=0.2),
        HMMTarget.random(8, s=4, q=2, seed=3),
        HMMTarget.random(1, s=2, q=3, seed=2),
        # state 0 only emits 0 and starts the chain; 0 -> 2 is forbidden: many impossible pinnings
        HMMTarget(7, [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5]], [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], [1.0, 0.0, 0.0]),
    ]


@pytest.mark.parametrize("index", range(6))
def test_hmm_conditionals_and_statistics_match_tabular(index):
    target = _hmm_targets()[index]
    table = target.to_tabular()
    partial = _pinnings(target.n, target.q, seed=index)
    mine, reference = target.oracle().answer(partial), table.oracle().answer(partial)
    assert torch.equal(mine.feasible, reference.feasible)
    assert (mine.marginals - reference.marginals).abs().max() <= 1e-12
    if index == 5:
        assert (~reference.feasible).sum() > 10, "the pinning set should exercise infeasible rows"
    cells = all_cells(target.n, target.q)
    probs = table.probs.reshape(-1)
    for stat in target.exact_statistics():
        law = torch.zeros(stat.probs.numel(), dtype=torch.float64).index_add_(0, stat(cells), probs)
        assert (law - stat.probs).abs().max() <= 1e-12, stat.name


@pytest.mark.statistical(alpha=ALPHA)
def test_hmm_large_n_and_speculative_exact_statistics():
    # alpha 2e-5 (counted in this module's budget: 1e-4 in all)
    from autospec.targets import HMMTarget
    from verification import check_exact

    big = HMMTarget.sticky(4096)
    partial = _pinnings(4096, 2, seed=7, rows=4)
    answer = big.oracle().answer(partial)
    assert torch.isfinite(answer.marginals).all() and ((answer.marginals.sum(-1) - 1).abs() < 1e-9).all()
    assert abs(float(big.ones_law().sum()) - 1) < 1e-9
    result = check_exact(SequenceSpeculative(AdaptiveBlockSize(maximum=8)), HMMTarget.sticky(64), num_samples=400, alpha=ALPHA, seed=3)
    assert result.test == "chi2-statistics-holm" and result.passed, result.summary()


# ---------------------------------------------------------------- positional queries
@pytest.mark.parametrize("index", range(len(SMALL)), ids=[t.name for t in SMALL])
def test_positional_answers_are_the_dense_laws_at_those_positions(index):
    from autospec.oracles import CountingOracle

    target = SMALL[index]
    partial = _pinnings(target.n, target.q, seed=100 + index)
    g = torch.Generator().manual_seed(index)
    positions = torch.randint(0, target.n, (partial.shape[0], 3), generator=g)
    reference = target.to_tabular().oracle().answer(partial)
    asked = CountingOracle(target.oracle(), partial.shape[0]).query(partial, positions=positions)
    ok = reference.feasible
    dense_there = reference.marginals.gather(1, positions.unsqueeze(-1).expand(-1, -1, target.q))
    assert asked.marginals.shape == (partial.shape[0], 3, target.q)
    assert (asked.marginals[ok] - dense_there[ok]).abs().max() <= 1e-12
    assert torch.equal(asked.feasible, reference.feasible)  # infeasible rows: any finite law, still marked


@pytest.mark.parametrize("make", [lambda: MarkovChainTarget.random(4, q=3, seed=1, zero_fraction=0.4),
                                  lambda: CurieWeissTarget(4, beta=1.5, h=0.3)], ids=["markov-zeros", "curie-weiss"])
def test_samplers_asking_positions_are_exact_on_structured_oracles(make):
    """exact_law with the structured oracle (positional answers) against the enumerated table."""
    from types import SimpleNamespace

    from autospec.samplers import Sequential
    from verification import exact_law

    target = make()
    both = SimpleNamespace(n=target.n, q=target.q, probs=target.to_tabular().probs, oracle=target.oracle)
    for sampler in (Sequential(), TokenSpeculative(2), SequenceSpeculative(AdaptiveBlockSize(start=1))):
        assert exact_law(sampler, both).tv < 1e-10, sampler


class _UniformSubsets:
    """A wrong DPP sampler built to pass the old statistics: uniform r-subsets.  On the Fourier projection
    DPP every item has P(in) = r / n and there are always r items, so single items and the count are exact;
    pairs are off by < 0.01 in TV; only the window counts (DPP rigidity) are far off (TV ~0.23)."""

    name, exact = "uniform r-subsets", False

    def __init__(self, r: int):
        self.r = r

    def sample(self, oracle, num_samples, rng):
        chosen = rng.permutation(num_samples, oracle.n)[:, : self.r]
        return torch.zeros((num_samples, oracle.n), dtype=torch.long).scatter_(1, chosen, 1)


@pytest.mark.statistical(alpha=1e-6)
def test_dpp_window_counts_catch_a_sampler_with_the_right_items_and_count():
    from verification import check_exact

    dpp = DPPTarget.fourier_projection(64, 5)
    result = check_exact(_UniformSubsets(5), dpp, num_samples=400, alpha=1e-6, seed=5)
    assert result.verdict == "fail", result.summary()
    rows = {row["statistic"]: row["p_value"] for row in result.details["statistics"]}
    assert all(p < 1e-6 for name, p in rows.items() if name.startswith("items in [0,") or name.startswith("items in [16,"))
    assert all(p > 1e-6 for name, p in rows.items() if not name.startswith("items in")), rows  # the old statistics miss it
