"""The chain mutant catalogue: every wrong variant caught by its family's check, every correct sibling passes."""

import pytest

from verification.mutants import catalogue
from verification.mutants.chains import CHECKS, check_chain_mutant

FAST = ["glauber-unconditional-redraw", "dpp-unconditioned-acceptance", "langevin-overdamped-noise-scale",
        "langevin-underdamped-noise-scale"]
# the Langevin siblings pass a statistical check (false-fail rate 1e-6 each); the others are exact
FAST_PARAMS = [pytest.param(name, marks=pytest.mark.statistical(alpha=1e-6)) if name.startswith("langevin") else name
               for name in FAST]


def test_at_least_two_mutants_per_family_are_registered():
    names = [m.name for m in catalogue("chain")]
    for family in ("dpp-", "glauber-", "sparsification-", "langevin-"):
        assert sum(name.startswith(family) or name.startswith("parallel-" + family) for name in names) >= 2, family
    assert set(names) == set(CHECKS)
    assert not any(m.setting == "chain" for m in catalogue("discrete"))  # the discrete audit never sees them


@pytest.mark.parametrize("name", FAST_PARAMS)
def test_fast_mutants_caught_and_siblings_pass(name, one_thread):
    verdict = check_chain_mutant(name)
    assert verdict.caught, verdict
    assert verdict.sibling_passes, verdict


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(CHECKS) - set(FAST)))
def test_every_other_mutant_caught(name, one_thread):
    verdict = check_chain_mutant(name)
    assert verdict.caught and verdict.sibling_passes, verdict
