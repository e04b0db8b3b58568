"""Glauber dynamics: exact stationarity on small targets, and the parallel simulation's exact T-step law."""

import pytest
import torch

from autospec import Randomness
from autospec.samplers.glauber import Glauber, ParallelGlauber
from autospec.targets import CurieWeissTarget, IsingTarget, MarkovChainTarget, TabularTarget
from verification import exact_law
from verification.markov import as_table_target, kernel_matrix, stationarity

STATIONARITY_TARGETS = {
    "tabular-q3": lambda: TabularTarget.random(3, 3, seed=1),
    "tabular-zeros": lambda: TabularTarget.random(4, 2, seed=2, zero_fraction=0.3),
    "ising-sk": lambda: IsingTarget.sk(4, beta=0.9, seed=0),
    "ising-grid": lambda: IsingTarget.grid(2, 2, beta=0.6, h=0.2),
    "curie-weiss": lambda: CurieWeissTarget(5, beta=1.2, h=0.1),
    "markov-chain": lambda: MarkovChainTarget.random(4, q=2, seed=4),
}


@pytest.mark.parametrize("name", sorted(STATIONARITY_TARGETS))
def test_glauber_is_exactly_stationary(name, one_thread):
    target = STATIONARITY_TARGETS[name]()
    result = stationarity(kernel_matrix(lambda x: Glauber(1, x), target), target)
    assert result.stationary, result
    assert result.tv < 1e-12 and result.row_sums_error < 1e-12


@pytest.mark.parametrize("lookahead", [2, pytest.param(1, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)])
def test_parallel_glauber_has_the_sequential_t_step_law(lookahead, one_thread):
    target = as_table_target(TabularTarget.random(3, 2, seed=2))
    start = torch.tensor([0, 1, 0])
    sequential = exact_law(Glauber(3, start), target)
    parallel = exact_law(ParallelGlauber(3, start, lookahead=lookahead), target)
    assert parallel.unexplored_mass < 1e-12
    assert 0.5 * float((sequential.probs - parallel.probs).abs().sum()) < 1e-10
    assert parallel.expected_rounds <= sequential.expected_rounds + 1e-9  # 3 sequential rounds
    if lookahead > 1:
        assert parallel.expected_rounds < sequential.expected_rounds


@pytest.mark.slow
@pytest.mark.parametrize("steps", [4])
def test_parallel_glauber_t_step_law_longer_chains(steps, one_thread):
    target = as_table_target(IsingTarget.sk(3, beta=1.0, seed=5))
    start = torch.tensor([1, 1, 0])
    sequential = exact_law(Glauber(steps, start), target)
    parallel = exact_law(ParallelGlauber(steps, start, lookahead=2), target)
    assert 0.5 * float((sequential.probs - parallel.probs).abs().sum()) < 1e-10


def test_systematic_scan_is_stationary_but_not_the_random_scan_chain(one_thread):
    # a scan order is not a detail: the fixed scan keeps mu but its T-step law differs from the random scan's
    target = as_table_target(TabularTarget.random(3, 2, seed=7))
    start = torch.tensor([0, 0, 0])
    random_scan = exact_law(Glauber(3, start), target)
    fixed_scan = exact_law(Glauber(3, start, scan="systematic"), target)
    assert 0.5 * float((random_scan.probs - fixed_scan.probs).abs().sum()) > 1e-3


def test_parallel_glauber_needs_fewer_rounds_on_a_large_weakly_coupled_target(one_thread):
    target = CurieWeissTarget(64, beta=0.5)
    start = torch.zeros(64, dtype=torch.long)
    out = ParallelGlauber(200, start, lookahead=8).sample(target.oracle(), 2, Randomness(0))
    assert out.values.shape == (2, 64)
    assert int(out.rounds.max()) < 60  # the sequential chain takes 200
    assert int(Glauber(200, start).sample(target.oracle(), 2, Randomness(0)).rounds.min()) == 200


def test_bad_arguments_are_named():
    target = TabularTarget.random(3, 2)
    with pytest.raises(ValueError, match="steps"):
        Glauber(-1, [0, 0, 0])
    with pytest.raises(ValueError, match="lookahead"):
        ParallelGlauber(3, [0, 0, 0], lookahead=0)
    with pytest.raises(ValueError, match="start"):
        Glauber(2, [0, 0]).sample(target.oracle(), 1, Randomness(0))
    with pytest.raises(ValueError, match="start values"):
        Glauber(2, [0, 5, 0]).sample(target.oracle(), 1, Randomness(0))
    with pytest.raises(TypeError, match="start"):
        Glauber(2, torch.tensor([0.0, 1.0, 0.0])).sample(target.oracle(), 1, Randomness(0))
