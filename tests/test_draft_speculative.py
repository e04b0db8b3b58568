"""DraftSpeculative is exact (exact_law TV < 1e-10) for every rule, and multi-draft accepts more.

Each exact_law call is a proof on its instance; instances are tiny (n <= 3, q <= 3).
"""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autospec import Randomness
from autospec.samplers.draft_speculative import DraftSpeculative, multi_draft_level_law
from autospec.targets import TabularTarget
from autospec.targets.perturbed import MixtureOracle, TemperedOracle
from verification import check_exact, exact_law

EXACT = 1e-10


def _assert_exact(sampler, target):
    law = exact_law(sampler, target)
    assert law.unexplored_mass < EXACT, law.summary()
    assert law.tv < EXACT, f"{sampler.name} on {target.name}:\n{law.summary()}"
    return law


def _zero_pair():
    """Target with zeros where the draft has mass, and a draft with zeros where the target has mass."""
    target = TabularTarget(np.array([[[0.3, 0.0], [0.2, 0.1]], [[0.0, 0.15], [0.25, 0.0]]]), name="zeros-target")
    # argmax draft: zero wherever the target is not maximal; a sparse other table: mass where the target has none.
    other = TabularTarget(np.array([[[0.0, 0.5], [0.0, 0.0]], [[0.5, 0.0], [0.0, 0.0]]]), name="sparse-draft")
    return target, [TemperedOracle(target, 0.0), other.oracle(), MixtureOracle(target, other, 0.9)]


@pytest.mark.parametrize("rule,m", [("token", 1), ("block", 1), ("multi", 2)])
def test_zeros_both_ways_exact(rule, m):
    target, drafts = _zero_pair()
    for draft in drafts:
        _assert_exact(DraftSpeculative(draft, block_size=2, rule=rule, num_drafts=m, order="fixed"), target)


@pytest.mark.parametrize("rule,m", [("token", 1), ("block", 1), ("multi", 2)])
def test_random_order_exact(rule, m):
    target = TabularTarget.random(n=2, q=3, seed=11, concentration=0.5, zero_fraction=0.25)
    _assert_exact(DraftSpeculative(TemperedOracle(target, 2.0), block_size=2, rule=rule, num_drafts=m), target)


@pytest.mark.slow
@pytest.mark.parametrize("rule,m", [("token", 1), ("block", 1), ("multi", 2), ("multi", 3)])
def test_random_order_exact_n3(rule, m):
    target = TabularTarget.random(n=3, q=2, seed=11, concentration=0.5, zero_fraction=0.25)
    _assert_exact(DraftSpeculative(TemperedOracle(target, 2.0), block_size=2, rule=rule, num_drafts=m), target)


@pytest.mark.parametrize("block_size", [1, 3])
def test_block_sizes_and_q3(block_size):
    target = TabularTarget.random(n=2, q=3, seed=5, concentration=0.4)
    draft = TabularTarget.random(n=2, q=3, seed=6, zero_fraction=0.3)
    for rule, m in [("token", 1), ("block", 1), ("multi", 2)]:
        _assert_exact(DraftSpeculative(draft, block_size=block_size, rule=rule, num_drafts=m, order="fixed"), target)


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    target_seed=st.integers(0, 10_000),
    draft_seed=st.integers(0, 10_000),
    zeros=st.sampled_from([0.0, 0.3]),
    rule=st.sampled_from(["token", "block", "multi"]),
    q=st.sampled_from([2, 3]),
)
def test_random_pairs_exact(target_seed, draft_seed, zeros, rule, q):
    target = TabularTarget.random(n=2, q=q, seed=target_seed, concentration=0.5, zero_fraction=zeros)
    draft = TabularTarget.random(n=2, q=q, seed=draft_seed, zero_fraction=zeros)
    _assert_exact(DraftSpeculative(draft, block_size=2, rule=rule, order="fixed"), target)


def test_level_law_is_target_on_average():
    """Recursive rejection over candidates i.i.d. from D outputs P exactly (averaged over candidates)."""
    P = torch.tensor([[0.5, 0.0, 0.5]], dtype=torch.float64)
    D = torch.tensor([[0.2, 0.8, 0.0]], dtype=torch.float64)
    total = torch.zeros(3, dtype=torch.float64)
    for a in range(3):
        for b in range(3):
            weight = D[0, a] * D[0, b]
            if weight > 0:
                law = multi_draft_level_law(P, D, torch.tensor([[a, b]]), torch.ones(1, 2, dtype=torch.bool))
                total += weight * law[0]
    assert torch.allclose(total, P[0], atol=1e-15)


# Regression pairs: (target seed, draft) with measured expected target rounds.
PAIRS = [
    (1, lambda mu: TemperedOracle(mu, 0.5)),
    (2, lambda mu: MixtureOracle(mu, TabularTarget.random(n=3, q=2, seed=7), 0.7)),
    (3, lambda mu: TabularTarget.random(n=3, q=2, seed=8).oracle()),
]


def test_multi_draft_accepts_more_than_single(capsys):
    """Exact expected target rounds: multi-draft (m = 2) < single-draft token rule on the same pairs."""
    lines = []
    for seed, make_draft in PAIRS:
        target = TabularTarget.random(n=3, q=2, seed=seed, concentration=0.5)
        draft = make_draft(target)
        single = _assert_exact(DraftSpeculative(draft, block_size=2, rule="token", order="fixed"), target)
        multi = _assert_exact(DraftSpeculative(draft, block_size=2, rule="multi", num_drafts=2, order="fixed"), target)
        lines.append(f"{target.name} draft={draft.name}: E[rounds] single={single.expected_rounds:.4f} "
                     f"multi(m=2)={multi.expected_rounds:.4f}")
        assert multi.expected_rounds < single.expected_rounds - 1e-6, lines[-1]
    with capsys.disabled():
        print("\n" + "\n".join(lines))


def test_draft_rounds_counted_separately():
    target = TabularTarget.random(n=3, q=2, seed=1)
    sampler = DraftSpeculative(TemperedOracle(target, 0.5), block_size=2, rule="multi", num_drafts=3)
    out = sampler.sample(target.oracle(), 200, Randomness(seed=0))
    assert out.values.shape == (200, 3)
    assert set(out.info) == {"draft_rounds", "draft_queries"}
    # Each target round drafts up to block_size tokens autoregressively: draft rounds <= 2 * target rounds.
    assert bool((out.info["draft_rounds"] <= 2 * out.rounds).all())
    assert bool((out.info["draft_rounds"] >= out.rounds).all())
    assert bool((out.rounds <= 3).all()) and bool((out.rounds >= 1).all())


@pytest.mark.statistical(alpha=1e-6)
def test_check_exact_passes_multi_random_order():
    """Statistical check at a larger size than enumeration allows (alpha = 1e-6, fixed seed)."""
    target = TabularTarget.random(n=4, q=3, seed=21, concentration=0.7)
    sampler = DraftSpeculative(TemperedOracle(target, 1.5), block_size=3, rule="multi", num_drafts=3)
    result = check_exact(sampler, target, num_samples=10_000, alpha=1e-6, seed=0, test="pearson")
    assert result.passed, result.summary()


def test_bad_arguments():
    target = TabularTarget.random(n=2, q=2, seed=0)
    with pytest.raises(ValueError, match="rule"):
        DraftSpeculative(target, rule="nope")
    with pytest.raises(ValueError, match="num_drafts"):
        DraftSpeculative(target, rule="token", num_drafts=2)
    with pytest.raises(ValueError, match="draft oracle has n=2"):
        DraftSpeculative(target).sample(TabularTarget.random(n=3, q=2).oracle(), 1, Randomness(0))


def test_naive_multi_draft_is_caught(monkeypatch):
    """Control: verifying every candidate against P itself (no residual update between candidates) is not exact."""
    import autospec.samplers.draft_speculative as module
    from autospec.samplers.speculation import residual_law

    def naive(target, draft, candidates, alive):
        A, q = target.shape
        law = torch.zeros_like(target)
        survive = torch.ones(A, dtype=target.dtype)
        for i in range(candidates.shape[1]):
            y = candidates[:, i : i + 1]
            accept = (target.gather(1, y) / draft.gather(1, y)).clamp(max=1.0).squeeze(1) * alive[:, i]
            law.scatter_add_(1, y, (survive * accept).unsqueeze(1))
            survive = survive * (1 - accept)
        rest = residual_law(target, draft)
        return law + survive.unsqueeze(1) * rest / rest.sum(-1, keepdim=True)

    monkeypatch.setattr(module, "multi_draft_level_law", naive)
    target = TabularTarget.random(n=2, q=3, seed=5, concentration=0.4)
    draft = TabularTarget.random(n=2, q=3, seed=6)
    law = exact_law(DraftSpeculative(draft, block_size=2, rule="multi", num_drafts=2, order="fixed"), target)
    assert law.tv > 1e-3, law.summary()
