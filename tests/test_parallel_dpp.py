"""ParallelDPP: exact law by enumeration on projection DPPs and L-ensembles, rounds against k, the fast oracle."""

import pytest
import torch

from autospec import Randomness
from autospec.samplers.parallel_dpp import ParallelDPP
from autospec.targets import DPPTarget, TabularTarget
from autospec.targets.projection_dpp import ProjectionDPPOracle, SpectralDPPTarget
from verification import exact_law
from verification.markov import as_table_target


def _projection_tv(n, k, trials, seed):
    law = exact_law(ParallelDPP(trials=trials), as_table_target(DPPTarget.random(n, k, "projection", seed=seed)))
    return law


def _ensemble_tv(n, r, seed):
    target = SpectralDPPTarget.random(n, r, seed=seed)
    law = exact_law(ParallelDPP(trials=1, components=r), as_table_target(target))
    items = law.probs.sum(dim=tuple(range(r)))  # the labels are the mixture's; the items are the L-ensemble
    return law, 0.5 * float((items - target.item_law()).abs().sum())


def test_exact_on_a_random_projection_dpp(one_thread):
    law = _projection_tv(5, 2, trials=1, seed=7)
    assert law.unexplored_mass < 1e-12 and law.tv < 1e-10, law.summary()


def test_exact_on_a_random_l_ensemble_through_its_eigenvector_mixture(one_thread):
    law, item_tv = _ensemble_tv(5, 2, seed=0)
    assert law.unexplored_mass < 1e-12 and law.tv < 1e-10 and item_tv < 1e-10


@pytest.mark.slow
@pytest.mark.parametrize("n, k, trials", [(8, 2, 1), (6, 3, 1), (5, 2, 2)])
def test_exact_on_projection_dpps_up_to_n_8(n, k, trials, one_thread):
    law = _projection_tv(n, k, trials, seed=n + k)
    assert law.unexplored_mass < 1e-12 and law.tv < 1e-10, law.summary()


@pytest.mark.slow
@pytest.mark.parametrize("n, r", [(8, 2), (6, 3)])
def test_exact_on_l_ensembles_up_to_n_8(n, r, one_thread):
    law, item_tv = _ensemble_tv(n, r, seed=1)
    assert law.tv < 1e-10 and item_tv < 1e-10


def test_acceptance_without_the_marginal_factor_is_caught(one_thread):
    class NoInverse(ParallelDPP):
        @staticmethod
        def acceptance(p, tokens, conditionals):  # prod P(t_j | S + t_<j), forgetting the 1 / p_(t_j)
            later = conditionals[:, :-1].gather(2, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
            repeated = (tokens.unsqueeze(2) == tokens.unsqueeze(1)).tril(-1).any(2)[:, 1:]
            return torch.where(repeated, torch.zeros_like(later), later).prod(1)

    law = exact_law(NoInverse(trials=1), as_table_target(DPPTarget.random(5, 2, "projection", seed=7)))
    assert law.tv > 1e-4


def test_fast_projection_oracle_equals_the_general_one():
    target = DPPTarget.random(30, 11, "projection", seed=3)
    fast, general = ProjectionDPPOracle(target), target.oracle()
    g = torch.Generator().manual_seed(1)
    partial = torch.randint(-1, 2, (200, 30), generator=g)
    partial[:120][partial[:120] == 0] = -1  # inclusions only (the fast path), the rest with exclusions
    shared = torch.full((30,), -1)
    shared[torch.randperm(30, generator=g)[:9]] = 1
    prefixes = shared.repeat(40, 1)
    prefixes[torch.arange(40), torch.randint(0, 30, (40,), generator=g)] = 1  # the shared-set path
    for rows in (partial, prefixes):
        a, b = fast.answer(rows), general.answer(rows)
        assert bool((a.feasible == b.feasible).all())
        assert float((a.marginals - b.marginals).abs().max()) < 1e-10
    assert not bool(fast.answer(torch.ones(1, 30, dtype=torch.long)).feasible[0])  # 30 items > rank 11


def test_rounds_grow_like_sqrt_k_on_fourier_projection_dpps(one_thread):
    rounds = {}
    for k in (9, 65):
        target = DPPTarget.fourier_projection(2 * k + 2, k)
        out = ParallelDPP(trials=2).sample(ProjectionDPPOracle(target), 4, Randomness(k))
        assert bool((out.values.sum(1) == k).all())  # a projection DPP of rank k has exactly k items
        rounds[k] = float(out.rounds.to(torch.float64).mean())
    assert rounds[65] < 65 / 2  # the sequential chain rule takes k rounds
    assert rounds[65] / rounds[9] < (65 / 9) ** 0.75


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="trials"):
        ParallelDPP(trials=0)
    with pytest.raises(ValueError, match="batch"):
        ParallelDPP(batch=0)
    with pytest.raises(ValueError, match="q = 2"):
        ParallelDPP().sample(TabularTarget.random(3, 3).oracle(), 1, Randomness(0))
    with pytest.raises(ValueError, match="k-homogeneous"):
        ParallelDPP().sample(DPPTarget.random(6, 2, "L", seed=0).oracle(), 1, Randomness(0))
    with pytest.raises(ValueError, match="projection"):
        ProjectionDPPOracle(DPPTarget.random(6, 2, "L", seed=0))


@pytest.mark.slow
def test_rounds_exponent_in_k_is_at_most_0_6(one_thread):
    from verification.chain_depth import dpp_rounds_vs_k

    result = dpp_rounds_vs_k((9, 17, 33, 65, 129), samples=4, trials=4)
    assert result["fit"]["slope_ci"][1] < 0.6, result["fit"]
    assert all(row["rounds_mean"] < row["sequential_rounds"] / 2 for row in result["rows"][2:])
