"""Every diffusion mutant is rejected by check_exact_diffusion at its default budget.

Default suite: each mutant on seeds 0..2 (power checks: a mutant passing would be a false pass; they do
not add to the false-fail budget) and the two correct siblings on seed 0 at alpha = 1e-5 each (2e-5 in all).
Slow suite: the 100-seed kill table, each mutant caught in at least 99 of 100 seeds.
"""

import pytest
import torch

from verification import check_exact_diffusion
from verification.mutants import catalogue
from verification.mutants.diffusion import kill_setting, kill_table

ALPHA = 1e-5
EXPECTED = {
    "diffusion_fresh_draw_on_rejection",
    "diffusion_wrong_hyperplane",
    "diffusion_inverted_ratio",
    "diffusion_wrong_time_index",
    "diffusion_reused_noise",
    "diffusion_untruncated_residual",
}


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def test_catalogue_has_every_diffusion_mutant():
    names = {m.name for m in catalogue("diffusion")}
    assert EXPECTED <= names
    for mutant in catalogue("diffusion"):
        wrong, right = mutant.make(), mutant.sibling()
        # one clear change: the mutant is a subclass of its sibling's class, on the same grid
        assert isinstance(wrong, type(right)) and type(wrong) is not type(right)
        assert torch.equal(wrong.times, right.times)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_mutant_is_rejected(name):
    mutant = next(m for m in catalogue("diffusion") if m.name == name)
    _, target = kill_setting()
    for seed in range(3):
        result = check_exact_diffusion(mutant.make(), target, alpha=ALPHA, seed=seed)
        assert not result.passed, f"{name} survived seed {seed}: {result.summary()}"


@pytest.mark.statistical(alpha=ALPHA)
@pytest.mark.parametrize("name", ["diffusion_inverted_ratio", "diffusion_untruncated_residual"])
def test_correct_siblings_pass_on_the_kill_setting(name):
    """alpha = 1e-5 each (the ASD sibling and the sequence-level sibling)."""
    mutant = next(m for m in catalogue("diffusion") if m.name == name)
    _, target = kill_setting()
    result = check_exact_diffusion(mutant.sibling(), target, alpha=ALPHA, seed=0)
    assert result.passed, result.summary()


@pytest.mark.slow
def test_kill_table_99_of_100():
    table = kill_table(range(100), alpha=ALPHA)
    for name, row in table.items():
        assert row["caught"] >= 99, (name, row)
