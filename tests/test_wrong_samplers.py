"""Deliberately wrong samplers are flagged by exact_law and by check_exact at its default size."""

import pytest

from autospec.targets import TabularTarget
from verification import check_exact, exact_law
from verification.mutants import catalogue

CORE_MUTANTS = ["token-residual-from-target", "token-inverted-ratio", "no-verification"]
ALPHA = 1e-4


@pytest.fixture(scope="module")
def mutants():
    return {m.name: m for m in catalogue("discrete")}


@pytest.mark.parametrize("name", CORE_MUTANTS)
def test_flagged_by_exact_law_and_check_exact(name, mutants):
    mutant = mutants[name]
    tiny = TabularTarget.random(3, 2, seed=0)
    assert exact_law(mutant.make(), tiny).tv > 1e-3
    assert exact_law(mutant.sibling(), tiny).tv < 1e-10
    result = check_exact(mutant.make(), TabularTarget.random(4, 3, seed=0), alpha=ALPHA, seed=1)
    assert not result.passed, result.summary()
    assert result.worst_cells and result.tv_upper >= result.tv_estimate


@pytest.mark.statistical(alpha=ALPHA / 3)
@pytest.mark.parametrize("sampler_name", ["Sequential", "TokenSpeculative", "SequenceSpeculative"])
def test_correct_samplers_pass_check_exact(sampler_name):
    from autospec import samplers

    sampler = getattr(samplers, sampler_name)() if sampler_name == "Sequential" else getattr(samplers, sampler_name)(3)
    result = check_exact(sampler, TabularTarget.random(4, 3, seed=2), alpha=ALPHA / 3, seed=3)
    assert result.passed, result.summary()
