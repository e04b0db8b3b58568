"""Picard iteration: pathwise agreement with the sequential chain under shared noise, rounds vs tol.
No statistical tests (pathwise and deterministic comparisons only)."""

import pytest
import torch

from autospec import Randomness
from autospec.diffusion import time_grid
from autospec.samplers import DiffusionSequential, Picard
from autospec.targets import GaussianMixtureTarget, ProductMixtureTarget

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def setting():
    target = GaussianMixtureTarget([0.4, 0.6], [[-3.0, -2.0], [3.0, 2.0]], [[[0.5, 0.2], [0.2, 0.5]], [[0.3, 0.0], [0.0, 0.6]]])
    times = time_grid(64, t_max=20.0)
    noise = Randomness(0).normal((500, 64, 2))
    reference = DiffusionSequential(times).sample_with_noise(target.denoiser(), noise)
    return target, times, noise, reference


@pytest.mark.parametrize("tol", [0.0, 1e-12])
def test_picard_reproduces_sequential_path_as_tol_goes_to_zero(setting, tol):
    target, times, noise, reference = setting
    out = Picard(times, window=16, tol=tol).sample_with_noise(target.denoiser(), noise)
    assert float((out.values - reference.values).abs().max()) < 1e-8


def test_picard_rounds_fall_and_error_grows_with_tol(setting):
    target, times, noise, reference = setting
    rounds, errors = [], []
    for tol in [1e-10, 1e-4, 1e-1]:
        out = Picard(times, window=16, tol=tol).sample_with_noise(target.denoiser(), noise)
        rounds.append(float(out.rounds.double().mean()))
        errors.append(float((out.values - reference.values).abs().max()))
    assert rounds[0] > rounds[1] > rounds[2]
    assert errors[0] < 1e-7 and errors[0] <= errors[1] <= errors[2]
    assert rounds[1] < 65  # fewer rounds than the sequential K + 1 at a moderate tolerance


def test_picard_declares_itself_inexact_and_validates():
    assert Picard.exact is False
    with pytest.raises(ValueError, match="window"):
        Picard(time_grid(8, 1.0), window=0)
    with pytest.raises(ValueError, match="tol"):
        Picard(time_grid(8, 1.0), tol=-1.0)


def test_picard_sample_draws_its_noise_from_rng():
    target = ProductMixtureTarget.bimodal(2)
    times = time_grid(16, t_max=5.0)
    a = Picard(times, window=4, tol=1e-6).sample(target.denoiser(), 20, Randomness(1))
    b = Picard(times, window=4, tol=1e-6).sample(target.denoiser(), 20, Randomness(1))
    assert torch.equal(a.values, b.values) and a.values.shape == (20, 2)
