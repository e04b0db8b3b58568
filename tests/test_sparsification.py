"""Domain sparsification: exactly mu-stationary on small DPPs, TV(T) decaying, wrong variants caught."""

import numpy as np
import pytest
import torch

from autospec import Randomness
from autospec.samplers.sparsification import DomainSparsification, chain_rule_probability
from autospec.targets import DPPTarget, TabularTarget
from verification.markov import kernel_matrix, stationarity, tv_curve


class _UniformUp(DomainSparsification):
    def up_law(self, p_tilde):  # proposes uniformly but the down step still divides by p~
        return torch.full_like(p_tilde, 1.0 / p_tilde.numel())


def _kernel(target, **kwargs):
    cls = kwargs.pop("cls", DomainSparsification)
    return kernel_matrix(lambda x: cls(1, x, **kwargs), target)


@pytest.mark.parametrize("slack", [1.4, pytest.param(1.0, marks=pytest.mark.slow)])
def test_mu_stationary_to_1e_12(slack, one_thread):
    target = DPPTarget.random(4, 2, "projection", seed=3)
    result = stationarity(_kernel(target, sparse_size=4, slack=slack), target)
    assert result.stationary and result.tv < 1e-12 and result.row_sums_error < 1e-12


def test_tv_decays(one_thread):
    target = DPPTarget.random(5, 2, "projection", seed=3)
    kernel = _kernel(target, sparse_size=3)
    curve = tv_curve(kernel, target, kernel.cells[kernel.rows[0]], [0, 2, 8, 32, 128])
    tvs = [tv for _, tv in curve]
    assert all(b < a for a, b in zip(tvs, tvs[1:])) and tvs[-1] < 1e-8


@pytest.mark.parametrize("mutant", ["no-multiplicities", pytest.param("uniform-up", marks=pytest.mark.slow)])
def test_wrong_variants_are_not_stationary(mutant, one_thread):
    target = DPPTarget.random(4, 2, "projection", seed=3)
    if mutant == "no-multiplicities":
        kernel = _kernel(target, sparse_size=4, multiplicities=False)
    else:
        kernel = _kernel(target, sparse_size=4, cls=_UniformUp)
    assert stationarity(kernel, target).tv > 1e-3


def test_chain_rule_probability_matches_the_table():
    target = TabularTarget.random(3, 2, seed=1)
    from autospec.oracles import CountingOracle

    cells = torch.tensor([[0, 1, 1], [1, 0, 1], [1, 1, 1]])
    mu = chain_rule_probability(CountingOracle(target.oracle(), 1), cells, 0)
    assert np.allclose(mu.numpy(), target.probs[cells[:, 0], cells[:, 1], cells[:, 2]].numpy(), atol=1e-14)


def test_bad_inputs_are_named():
    target = DPPTarget.random(4, 2, "projection", seed=3)
    with pytest.raises(ValueError, match="sparse_size"):
        DomainSparsification(1, [1, 1, 0, 0], sparse_size=0)
    with pytest.raises(ValueError, match="slack"):
        DomainSparsification(1, [1, 1, 0, 0], sparse_size=3, slack=0.5)
    with pytest.raises(ValueError, match="at least k"):
        DomainSparsification(1, [1, 1, 1, 0], sparse_size=2).sample(target.oracle(), 1, Randomness(0))
    with pytest.raises(ValueError, match="q = 2"):
        DomainSparsification(1, [1, 0, 0], sparse_size=2).sample(TabularTarget.random(3, 3).oracle(), 1, Randomness(0))
