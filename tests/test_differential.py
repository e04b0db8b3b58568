"""Differential checks: a batch-dependent sampler, rows that share randomness and a mixed-dtype sampler are caught;
the built-in samplers pass; a missing device is skipped, never passed."""

import pytest
import torch

from autospec.samplers import DraftSpeculative, SequenceSpeculative, Sequential, TokenSpeculative
from autospec.samplers.base import Sampler
from autospec.targets import TabularTarget
from verification import exact_law
from verification.differential import (
    BatchDependentControl,
    BatchRow,
    check_batch_independence,
    check_batch_invariance,
    check_device_invariance,
    check_dtype_invariance,
)
from verification.wild.bugs import Bf16DraftSampling
from verification.wild.generation import GenerationTarget, SpeculativeGeneration, random_model

MU = TabularTarget.random(n=2, q=2, seed=3, zero_fraction=0.25, name="mu")
DRAFT = TabularTarget.random(n=2, q=2, seed=4, name="draft")


class LeftToRight(Sampler):
    """Exact left-to-right sampling, except for the deliberate batch effects of the subclasses below."""

    def laws(self, law, num_samples):  # law [B, q] -> the law each row draws from
        return law

    def run(self, oracle, num_samples, rng):
        x = torch.full((num_samples, oracle.n), -1, dtype=torch.long)
        for i in range(oracle.n):
            law = oracle.marginals(x)[:, i]
            x[:, i] = rng.categorical(self.laws(law, num_samples))
        return x


SkewedWhenBatched = BatchDependentControl


class SharedDraws(Sampler):
    """Every row of a batch gets the first row's draws: each row has the right law, the rows are not independent."""

    name = "shared-draws"

    def run(self, oracle, num_samples, rng):
        one = LeftToRight().run(oracle, 1, rng)
        return one.expand(num_samples, -1).clone()


def test_a_batch_dependent_sampler_is_caught_exactly():
    result = check_batch_invariance(SkewedWhenBatched, MU, batch_sizes=(2,))
    assert result.status == "fail" and result.passed is False
    assert result.max_tv > 0.01
    assert exact_law(SkewedWhenBatched(), MU).tv < 1e-12  # one sample per run: nothing to see


def test_rows_sharing_randomness_pass_invariance_and_fail_independence():
    assert check_batch_invariance(SharedDraws, MU, batch_sizes=(2,)).status == "pass"
    result = check_batch_independence(SharedDraws, MU, batch_size=2)
    assert result.status == "fail" and result.max_tv > 0.1


BUILT_IN = {
    "Sequential": Sequential,
    "TokenSpeculative": lambda: TokenSpeculative(2),
    "SequenceSpeculative": lambda: SequenceSpeculative(2),
    "DraftSpeculative-token": lambda: DraftSpeculative(DRAFT, 1, "token"),
    "DraftSpeculative-block": lambda: DraftSpeculative(DRAFT, 2, "block"),
    "DraftSpeculative-multi": lambda: DraftSpeculative(DRAFT, 1, "multi"),
}


@pytest.mark.parametrize("name", ["Sequential", "TokenSpeculative", "SequenceSpeculative", "DraftSpeculative-token"])
def test_built_in_samplers_pass_the_exact_batch_checks(name):
    make = BUILT_IN[name]
    assert check_batch_invariance(make, MU, batch_sizes=(2,)).status == "pass"
    assert check_batch_independence(make, MU, batch_size=2).status == "pass"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_built_in_samplers_pass_at_batch_three(name):
    assert check_batch_invariance(BUILT_IN[name], MU, batch_sizes=(3,), rows=(2,)).status == "pass"
    assert check_batch_independence(BUILT_IN[name], MU, batch_size=2).status == "pass"


def test_a_mixed_dtype_sampler_is_caught_and_a_consistent_one_passes():
    model, draft = random_model(2, 3, seed=1), random_model(2, 3, seed=2)

    def reference(dtype):
        return GenerationTarget(model, 0.5, dtype=dtype, logit_offset=30.0)

    good = check_dtype_invariance(lambda d: SpeculativeGeneration(draft, 2, 0.5, logit_offset=30.0, dtype=d), reference)
    assert good.status == "pass"
    bf16 = next(r for r in good.rows if r["dtype"] == "bfloat16")
    assert bf16["tv_to_float64"] > 1e-3  # a consistent bf16 pipeline samples its own rounded law, and says how far
    mixed = check_dtype_invariance(lambda d: Bf16DraftSampling(draft, 2, 0.5, logit_offset=30.0, dtype=d), reference,
                                   dtypes=(torch.float64, torch.float32))
    assert mixed.status == "fail" and mixed.max_tv > 1e-3


def test_a_missing_device_is_skipped_not_passed():
    result = check_device_invariance(lambda device: Sequential(device=device), MU)
    if torch.cuda.is_available():
        assert result.status == "pass"
    else:
        assert result.status == "skipped" and result.passed is None and "cuda" in result.reason


def test_two_sample_path_catches_the_batch_dependent_sampler():
    big = TabularTarget.random(n=2, q=2, seed=3)
    result = check_batch_invariance(SkewedWhenBatched, big, batch_sizes=(2,), method="two-sample", num_batches=700)
    assert result.status == "fail" and result.p_value < 1e-6


@pytest.mark.statistical(alpha=1e-6)
def test_two_sample_path_passes_a_correct_sampler():
    big = TabularTarget.random(n=2, q=2, seed=3)
    result = check_batch_invariance(Sequential, big, batch_sizes=(2,), method="two-sample", num_batches=400, alpha=1e-6)
    assert result.status == "pass"


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="batch_size"):
        BatchRow(Sequential(), 0)
    with pytest.raises(ValueError, match="row"):
        BatchRow(Sequential(), 2, row=2)
    with pytest.raises(ValueError, match="method"):
        check_batch_invariance(Sequential, MU, method="magic")
