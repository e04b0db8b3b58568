"""exact_law proves the three any-order samplers exact on small tables."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autospec import Randomness
from autospec.samplers import AdaptiveBlockSize, SequenceSpeculative, Sequential, TokenSpeculative
from autospec.targets import TabularTarget
from verification import SamplerContractError, exact_law

EXACT_TV = 1e-10


def samplers_for(n):
    yield Sequential()
    for k in range(1, n + 1):
        yield TokenSpeculative(k)
        yield SequenceSpeculative(k)


# Fixed regressions: every block size 1..n, with and without zero cells.
@pytest.mark.parametrize("n, q, zero_fraction, seed", [(1, 3, 0.0, 0), (2, 3, 0.4, 1), (3, 2, 0.0, 2), (3, 2, 0.5, 3), (3, 3, 0.3, 4)])
def test_exact_on_small_tables(n, q, zero_fraction, seed):
    target = TabularTarget.random(n, q, seed=seed, zero_fraction=zero_fraction)
    for sampler in samplers_for(n):
        law = exact_law(sampler, target)
        assert law.unexplored_mass < 1e-12, sampler
        assert law.tv < EXACT_TV, f"{sampler}: {law.summary()}"


@pytest.mark.parametrize("sampler", [TokenSpeculative(2), SequenceSpeculative(2), SequenceSpeculative(4), TokenSpeculative(4)], ids=str)
def test_exact_at_n4_with_zero_cells(sampler):
    target = TabularTarget.random(4, 2, seed=11, zero_fraction=0.4)
    law = exact_law(sampler, target)
    assert law.tv < EXACT_TV, law.summary()


@pytest.mark.slow
@pytest.mark.parametrize("n, q", [(4, 2), (4, 3)])
def test_exact_full_grid_n4(n, q):
    target = TabularTarget.random(n, q, seed=5, zero_fraction=0.3)
    for sampler in samplers_for(n):
        assert exact_law(sampler, target).tv < EXACT_TV, sampler


@pytest.mark.slow
@pytest.mark.parametrize("n, q, order", [(5, 3, "random"), (8, 2, "fixed")])
def test_exact_proofs_beyond_n4(n, q, order):
    """Batched enumeration reaches n = 5, q = 3 (every order) and n = 8, q = 2 (left to right: 8! orders
    times 2^8 values is 10^7 leaves for Sequential alone)."""
    target = TabularTarget.random(n, q, seed=7, zero_fraction=0.3)
    k = 2 if n == 5 else 4  # n = 5: block 3 has over 2e6 leaves
    for sampler in (Sequential(order=order), TokenSpeculative(k, order=order), SequenceSpeculative(k, order=order)):
        law = exact_law(sampler, target, max_leaves=10_000_000)
        assert law.unexplored_mass < 1e-12 and law.tv < EXACT_TV, f"{sampler}: {law.summary()}"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 3),
    q=st.integers(2, 3),
    seed=st.integers(0, 2**16),
    zero_fraction=st.sampled_from([0.0, 0.3, 0.7]),
    concentration=st.sampled_from([0.1, 1.0, 10.0]),
    data=st.data(),
)
def test_exact_on_generated_tables(n, q, seed, zero_fraction, concentration, data):
    if n == 3 and q == 3:
        n = 2  # keep each example to a few seconds; (3, 3) is covered by the fixed regressions
    target = TabularTarget.random(n, q, seed=seed, concentration=concentration, zero_fraction=zero_fraction)
    k = data.draw(st.integers(1, n), label="block_size")
    rule = data.draw(st.sampled_from([TokenSpeculative, SequenceSpeculative]), label="rule")
    law = exact_law(rule(k), target)
    assert law.tv < EXACT_TV, law.summary()


def test_adaptive_block_size_is_exact():
    target = TabularTarget.random(3, 2, seed=6, zero_fraction=0.2)
    for rule in (TokenSpeculative, SequenceSpeculative):
        assert exact_law(rule(AdaptiveBlockSize(start=1, growth=2.0)), target).tv < EXACT_TV


def test_point_mass_and_deterministic_targets():
    table = torch.zeros(3, 3, 3, dtype=torch.float64)
    table[2, 0, 1] = 1.0
    target = TabularTarget(table)
    for sampler in samplers_for(3):
        assert exact_law(sampler, target).tv < EXACT_TV


def test_expected_rounds_from_the_exact_law():
    target = TabularTarget.random(3, 2, seed=0)
    assert exact_law(Sequential(), target).expected_rounds == pytest.approx(3.0, abs=1e-12)
    assert exact_law(SequenceSpeculative(3), target).expected_rounds < 3.0


class GlobalRandomness(TokenSpeculative):
    """Draws its order from torch's global generator instead of rng."""

    def run(self, oracle, num_samples, rng):
        values = super().run(oracle, num_samples, rng)
        flip = torch.rand(()) < 0.5  # hidden randomness
        return torch.where(flip, 1 - values, values)


def test_randomness_outside_rng_is_caught():
    with pytest.raises((SamplerContractError, RuntimeError), match="outside the rng"):
        exact_law(GlobalRandomness(2), TabularTarget.random(2, 2, seed=0), recheck_every=1)


# ---------------------------------------------------------------- randomness outside rng, on every run
class MultinomialSequential:
    """Sequential, but each coordinate drawn with torch.multinomial (the global generator), not rng."""

    name = "uses-torch-multinomial"

    def sample(self, oracle, num_samples, rng):
        x = torch.full((num_samples, oracle.n), -1, dtype=torch.long)
        for i in range(oracle.n):
            x[:, i] = torch.multinomial(oracle.marginals(x)[:, i], 1).squeeze(1)
        return x


class OneGlobalDraw(Sequential):
    """Correct Sequential draws through rng, plus one hidden draw from a global generator."""

    def __init__(self, source: str):
        super().__init__()
        self.source = source
        self.name = f"one-{source}-draw"

    def run(self, oracle, num_samples, rng):
        import random

        import numpy as np

        values = super().run(oracle, num_samples, rng)
        hidden = {"torch": lambda: float(torch.rand(())), "numpy": lambda: float(np.random.rand()),
                  "Python": random.random}[self.source]()
        return values if hidden < 2.0 else 1 - values  # the draw changes nothing, but it was made


@pytest.mark.parametrize("source", ["torch", "numpy", "Python"])
@pytest.mark.parametrize("batched", [True, False])
def test_a_global_draw_is_named_by_exact_law_on_the_first_run(source, batched):
    target = TabularTarget.random(2, 2, seed=0)
    with pytest.raises(SamplerContractError, match=rf"outside the rng.*global {source}.*must draw all its randomness from rng"):
        exact_law(OneGlobalDraw(source), target, batched=batched)


def test_torch_multinomial_is_named_by_exact_law_check_exact_and_assert():
    from verification import assert_sampler_exact, check_exact

    target = TabularTarget.random(2, 2, seed=0)
    for call in (lambda: exact_law(MultinomialSequential(), target),
                 lambda: check_exact(MultinomialSequential(), target, num_samples=200, alpha=1e-3, seed=0),
                 lambda: assert_sampler_exact(MultinomialSequential(), target, num_samples=200, alpha=1e-3)):
        with pytest.raises(SamplerContractError, match="uses-torch-multinomial drew randomness outside the rng.*torch"):
            call()
    # The caller's global generators are left as they were by a correct sampler.
    before = torch.get_rng_state()
    exact_law(Sequential(), target)
    assert torch.equal(before, torch.get_rng_state())


def test_a_global_draw_is_named_by_the_audit(tmp_path):
    from verification.audit import AuditConfig, run_audit

    outcome = run_audit(AuditConfig(only=["exact/uses-torch-multinomial/tab-n3q2-zeros/"]), out_dir=tmp_path,
                        extra_samplers=[MultinomialSequential()], progress=False)
    (cell,) = outcome.cells
    assert cell["verdict"] == "error" and outcome.exit_code != 0
    assert "SamplerContractError" in cell["evidence"]["error"] and "outside the rng" in cell["evidence"]["error"]


# ---------------------------------------------------------------- batched enumeration = one path per run
def _same_law(sampler, target):
    one = exact_law(sampler, target, batched=False)
    many = exact_law(sampler, target)
    assert many.batched, sampler
    assert many.leaves == one.leaves, sampler
    assert float((many.probs - one.probs).abs().max()) < 1e-12, sampler
    assert many.unexplored_mass == pytest.approx(one.unexplored_mass, abs=1e-12)
    if one.expected_rounds is not None:
        assert many.expected_rounds == pytest.approx(one.expected_rounds, abs=1e-12), sampler
        assert many.expected_queries == pytest.approx(one.expected_queries, abs=1e-12), sampler
    return many


def test_batched_enumeration_equals_one_path_per_run():
    from autospec.samplers import ConfidenceUnmasking, DraftSpeculative
    from verification.mutants.discrete import BlockResidualWithoutScale

    target = TabularTarget.random(2, 3, seed=3, zero_fraction=0.3)
    for sampler in (Sequential(), TokenSpeculative(2), BlockResidualWithoutScale(2), ConfidenceUnmasking(0.6)):
        _same_law(sampler, target)
    small = TabularTarget.random(2, 2, seed=3, zero_fraction=0.2)
    _same_law(DraftSpeculative(TabularTarget.random(2, 2, seed=2), block_size=2, rule="multi", num_drafts=2), small)


@pytest.mark.slow
def test_batched_enumeration_equals_one_path_per_run_on_every_mutant():
    from autospec.samplers import ConfidenceUnmasking, DraftSpeculative
    from verification.mutants import catalogue

    target = TabularTarget.random(3, 3, seed=4, zero_fraction=0.3)
    for sampler in (SequenceSpeculative(AdaptiveBlockSize(start=1)), ConfidenceUnmasking(0.6)):
        _same_law(sampler, target)
    for mutant in catalogue("discrete"):
        _same_law(mutant.make(), target)
        _same_law(mutant.sibling(), target)
    small = TabularTarget.random(3, 2, seed=1, zero_fraction=0.2)
    draft = TabularTarget.random(3, 2, seed=2)
    for rule, drafts in (("token", 1), ("block", 1), ("multi", 2), ("multi", 3)):
        _same_law(DraftSpeculative(draft, block_size=3 if drafts < 3 else 2, rule=rule, num_drafts=drafts), small)


class SharedDraw:
    """Draws one order for the whole batch: its calls are not one entry per sample."""

    name = "shared-order"

    def sample(self, oracle, num_samples, rng):
        order = rng.permutation(1, oracle.n)[0]
        x = torch.full((num_samples, oracle.n), -1, dtype=torch.long)
        for i in order.tolist():
            x[:, i] = rng.categorical(oracle.marginals(x)[:, i])
        return x


def test_a_sampler_whose_calls_are_not_per_sample_is_enumerated_one_path_per_run():
    target = TabularTarget.random(3, 2, seed=0)
    law = exact_law(SharedDraw(), target)
    assert not law.batched and law.tv < EXACT_TV
    assert law.leaves == exact_law(SharedDraw(), target, batched=False).leaves


def test_sequential_uses_exactly_n_rounds_and_speculation_fewer():
    target = TabularTarget.random(12, 2, seed=0, concentration=0.5)
    oracle = target.oracle()
    out = Sequential().sample(oracle, 500, Randomness(seed=0))
    assert torch.all(out.rounds == 12) and torch.all(out.queries == 12)
    for sampler in (TokenSpeculative(4), SequenceSpeculative(4), SequenceSpeculative(AdaptiveBlockSize())):
        out = sampler.sample(oracle, 500, Randomness(seed=0))
        assert out.values.shape == (500, 12)
        assert float(out.rounds.double().mean()) < 12, sampler
        assert bool((out.rounds <= 12).all())


def test_samplers_reject_bad_arguments():
    target = TabularTarget.random(2, 2, seed=0)
    with pytest.raises(ValueError, match="block_size must be a positive int"):
        TokenSpeculative(0)
    with pytest.raises(ValueError, match="order must be one of"):
        Sequential(order="backwards")
    with pytest.raises(ValueError, match="num_samples"):
        Sequential().sample(target.oracle(), -1, Randomness(0))
    with pytest.raises(TypeError, match="rng must be"):
        Sequential().sample(target.oracle(), 1, rng=0)


class BareTensorSampler:
    """A user's sampler following the contract's minimal form: it returns only values."""

    name = "bare-tensor"

    def sample(self, oracle, num_samples, rng):
        return Sequential().sample(oracle, num_samples, rng).values


def test_users_sampler_returning_a_bare_tensor():
    from verification import check_exact

    target = TabularTarget.random(2, 2, seed=0)
    assert exact_law(BareTensorSampler(), target).tv < EXACT_TV
    result = check_exact(BareTensorSampler(), target, num_samples=2000, alpha=1e-4, seed=0)
    assert result.num_samples == 2000 and result.mean_rounds == 2.0
