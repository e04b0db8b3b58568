"""The discrete mutant catalogue: >= 12 one-change bugs, each caught (exact_law proof, check_exact at the default budget)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autospec import Randomness
from autospec.samplers.sequence_speculative import block_acceptance
from verification import check_exact, exact_law
from verification.calibration import single_thread
from verification.mutants import catalogue
from verification.mutants.discrete import block_acceptance_variant, instance_for
from verification.mutation import run_mutation

DISCRETE = catalogue("discrete")
# Below any sampling budget: caught by the exact law (a proof), reported as statistically invisible.
# float32 rounding moves the law by TV ~1e-9 (inherent: ~1e18 samples to see it).  block-residual-unscaled
# is no longer here: its instance (residual_adversarial_table) has exact TV 0.022, rejected in 100/100 seeds.
EXACT_LAW_ONLY = {"block-float32": 3.5e-9}


def test_catalogue_has_twelve_one_line_mutants_with_runnable_siblings():
    assert len(DISCRETE) >= 12
    for mutant in DISCRETE:
        assert mutant.description and "\n" not in mutant.description
        target = instance_for(mutant.name)
        assert target.n <= 4
        for build in (mutant.make, mutant.sibling):
            out = build().sample(target.oracle(), 50, Randomness(0))
            values = getattr(out, "values", out)
            assert values.shape == (50, target.n)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(2, 4), st.integers(0, 10**6))
def test_block_variant_without_bug_is_the_reference(K, q, seed):
    g = torch.Generator().manual_seed(seed)
    A = 6
    target = torch.distributions.Dirichlet(torch.ones(q, dtype=torch.float64)).sample((A, K + 1))
    draft = torch.distributions.Dirichlet(torch.ones(q, dtype=torch.float64)).sample((A, K))
    tokens = torch.multinomial(draft.reshape(-1, q), 1, generator=g).reshape(A, K)
    lengths = torch.randint(1, K + 1, (A,), generator=g)
    p_ref, h_ref = block_acceptance(target, draft, tokens, lengths)
    p, h = block_acceptance_variant(target, draft, tokens, lengths, None)
    assert torch.equal(p, p_ref) and torch.equal(h, h_ref)


QUICK_EXACT = ["token-inverted-ratio", "token-last-draft-unverified", "block-previous-p", "block-size-peeks-at-draft"]


@pytest.mark.parametrize("name", QUICK_EXACT)
def test_exact_law_flags_mutant_quick(name):
    mutant = next(m for m in DISCRETE if m.name == name)
    target = instance_for(name)
    with single_thread():
        assert exact_law(mutant.make(), target).tv > 1e-3
        assert exact_law(mutant.sibling(), target).tv < 1e-12


@pytest.mark.parametrize("mutant", [m for m in DISCRETE if m.name not in EXACT_LAW_ONLY], ids=lambda m: m.name)
def test_default_budget_rejects_mutant_quick(mutant):
    """A few seeds in the default suite (the 100-seed audit is the slow test below)."""
    target = instance_for(mutant.name)
    with single_thread():
        for seed in range(2):
            assert not check_exact(mutant.make(), target, seed=seed).passed


@pytest.mark.slow
def test_mutation_audit_full():
    """Every mutant flagged by exact_law (n <= 4); every statistically visible one rejected in >= 99 of 100 seeds,
    each check within 60 s."""
    result = run_mutation(num_seeds=100)
    for row in result["rows"]:
        assert row["flagged_by_exact_law"], row
        assert row["max_seconds_per_check"] < 60, row
        if row["mutant"] in EXACT_LAW_ONLY:
            continue
        assert row["rejections"] >= 99, row
