"""Counting and validation of denoiser calls. No statistical tests."""

import pytest
import torch

from autospec import Randomness
from autospec.diffusion import CountingDenoiser, DenoiserError, FunctionDenoiser, time_grid
from autospec.samplers import ASD, DiffusionSequential, Picard, SequenceSpeculativeDiffusion
from autospec.targets import GaussianTarget

TIMES = time_grid(8, t_max=4.0)


def _bad(answer, name):
    return FunctionDenoiser(lambda y, t: answer(y), dim=2, name=name)


@pytest.mark.parametrize("sampler", [DiffusionSequential(TIMES), ASD(TIMES, 3), SequenceSpeculativeDiffusion(TIMES, 3), Picard(TIMES, 4, 1e-6)])
def test_nan_answer_is_named(sampler):
    nan = _bad(lambda y: torch.full_like(y, float("nan")), "nan_model")
    with pytest.raises(DenoiserError, match="denoiser 'nan_model' returned a non-finite value"):
        sampler.sample(nan, 5, Randomness(0))


@pytest.mark.parametrize("sampler", [DiffusionSequential(TIMES), ASD(TIMES, 3), SequenceSpeculativeDiffusion(TIMES, 3)])
def test_wrong_shape_answer_is_named(sampler):
    wrong = _bad(lambda y: y[:, :1], "narrow_model")
    with pytest.raises(DenoiserError, match=r"denoiser 'narrow_model' returned shape \[\d+, 1\], expected \[\d+, 2\]"):
        sampler.sample(wrong, 5, Randomness(0))
    not_tensor = _bad(lambda y: y.tolist(), "list_model")
    with pytest.raises(DenoiserError, match="list_model' returned list"):
        sampler.sample(not_tensor, 5, Randomness(0))


def test_bad_queries_and_denoisers():
    counted = CountingDenoiser(GaussianTarget(torch.zeros(2), torch.eye(2)).denoiser(), 3)
    with pytest.raises(ValueError, match=r"shape \[B, 2\]"):
        counted(torch.zeros(3, 4, dtype=torch.float64), torch.zeros(3))
    with pytest.raises(ValueError, match=r"times t .* shape \[3\]"):
        counted(torch.zeros(3, 2, dtype=torch.float64), torch.zeros(2))
    with pytest.raises(TypeError, match="dim"):
        CountingDenoiser(lambda y, t: y, 3)
    with pytest.raises(ValueError, match="lookahead|block_size"):
        ASD(TIMES, 0)


def test_rounds_and_queries_are_counted_per_sample():
    target = GaussianTarget(torch.zeros(2), torch.eye(2))
    out = DiffusionSequential(TIMES).sample(target.denoiser(), 7, Randomness(0))
    assert out.values.shape == (7, 2) and out.values.dtype == torch.float64
    assert bool((out.rounds == 9).all()) and bool((out.queries == 9).all())
    out = ASD(TIMES, 4).sample(target.denoiser(), 7, Randomness(0))
    assert bool((out.rounds >= 2).all()) and bool((out.rounds <= 9).all())  # at least K / L = 2 rounds
    assert bool((out.queries >= out.rounds).all())
    # sample_ids charge only the samples that own rows
    counted = CountingDenoiser(target.denoiser(), 3)
    counted(torch.zeros(4, 2, dtype=torch.float64), torch.zeros(4), sample_ids=torch.tensor([0, 0, 2, 2]))
    assert counted.rounds.tolist() == [1, 0, 1] and counted.queries.tolist() == [2, 0, 2]


def test_same_seed_same_output():
    target = GaussianTarget.random(3, seed=1)
    a = SequenceSpeculativeDiffusion(TIMES, 4).sample(target.denoiser(), 50, Randomness(3))
    b = SequenceSpeculativeDiffusion(TIMES, 4).sample(target.denoiser(), 50, Randomness(3))
    assert torch.equal(a.values, b.values) and torch.equal(a.rounds, b.rounds)
