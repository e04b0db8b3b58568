"""Time grids, their validation, and the VP (DDPM) map both ways. No statistical tests here."""

import math

import pytest
import torch

from autospec.diffusion import (
    alpha_bar_from_time,
    check_times,
    denoiser_from_epsilon,
    epsilon_from_denoiser,
    localization_from_vp,
    time_from_alpha_bar,
    time_grid,
    vp_from_localization,
)
from autospec.samplers import ASD, DiffusionSequential
from autospec.targets import GaussianTarget


@pytest.mark.parametrize("kind", ["uniform", "quadratic", "geometric", "log_snr", "cosine"])
def test_time_grid_kinds(kind):
    times = time_grid(32, t_max=50.0, kind=kind)
    assert times.dtype == torch.float64 and times.shape == (33,)
    assert times[0] == 0.0 and times[-1] == 50.0
    assert bool((times[1:] > times[:-1]).all())


def test_log_snr_is_uniform_in_log_vp_snr():
    times = time_grid(10, t_max=100.0, kind="log_snr", t_min=0.01)
    ab = alpha_bar_from_time(times[1:])
    log_snr = torch.log(ab / (1 - ab))
    steps = log_snr[1:] - log_snr[:-1]
    assert torch.allclose(steps, steps[0].expand_as(steps), atol=1e-12)


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.tensor([0.0, 1.0, 1.0, 2.0]), "strictly increasing"),
        (torch.tensor([0.0, 2.0, 1.0]), "strictly increasing"),
        (torch.tensor([0.5, 1.0]), "start at t_0 = 0"),
        (torch.tensor([0.0, float("nan")]), "NaN"),
        (torch.tensor([0.0]), "at least 2"),
    ],
)
def test_bad_time_grid_is_named(bad, message):
    with pytest.raises(ValueError, match="times") as info:
        check_times(bad)
    assert message in str(info.value)
    with pytest.raises(ValueError, match=message):
        ASD(times=bad, lookahead=4)
    with pytest.raises(ValueError, match=message):
        DiffusionSequential(times=bad)


def test_time_grid_argument_errors():
    with pytest.raises(ValueError, match="steps"):
        time_grid(0, t_max=1.0)
    with pytest.raises(ValueError, match="t_max"):
        time_grid(4, t_max=-1.0)
    with pytest.raises(ValueError, match="kind"):
        time_grid(4, t_max=1.0, kind="bogus")


def test_alpha_bar_map_both_ways():
    t = torch.tensor([0.0, 1e-6, 0.5, 1.0, 10.0, 1e4], dtype=torch.float64)
    ab = alpha_bar_from_time(t)
    assert torch.allclose(ab, t / (1 + t))
    assert torch.allclose(time_from_alpha_bar(ab), t, rtol=1e-10)
    # SNR of the VP state equals the localization time
    assert torch.allclose(ab[1:] / (1 - ab[1:]), t[1:], rtol=1e-10)
    y = torch.randn(6, 3, dtype=torch.float64)
    x = vp_from_localization(y, t.clamp(min=1e-3))
    assert torch.allclose(localization_from_vp(x, alpha_bar_from_time(t.clamp(min=1e-3))), y, rtol=1e-10)


def test_vp_state_law_matches_localization():
    # Y_t = t X + W_t  ->  x_vp = sqrt(ab) X + sqrt(1 - ab) eps, checked on its exact variance for X = const
    t = torch.tensor([2.0], dtype=torch.float64)
    ab = alpha_bar_from_time(t)
    # Var(Y_t | X) = t  ->  Var(x_vp | X) = t / (t (1 + t)) = 1 - ab
    assert math.isclose(float(t / (t * (1 + t))), float(1 - ab), rel_tol=1e-12)
    # E[x_vp | X = 1] = t / sqrt(t (1 + t)) = sqrt(ab)
    assert math.isclose(float(t / torch.sqrt(t * (1 + t))), float(torch.sqrt(ab)), rel_tol=1e-12)


def _exact_vp_epsilon(target):
    """Closed-form E[eps | x_vp] for a Gaussian target, written in VP terms only (independent of m)."""
    mean, cov = target.mean, target.cov
    eye = torch.eye(target.dim, dtype=torch.float64)

    def eps(x, alpha_bar):
        out = []
        for xi, a in zip(x, alpha_bar):
            marg = a * cov + (1 - a) * eye
            out.append(torch.sqrt(1 - a) * torch.linalg.solve(marg, xi - torch.sqrt(a) * mean))
        return torch.stack(out)

    return eps


def test_epsilon_from_denoiser_matches_closed_form_vp():
    target = GaussianTarget.random(3, seed=2)
    eps_exact = _exact_vp_epsilon(target)
    eps = epsilon_from_denoiser(target.denoiser())
    x = torch.randn(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ab = torch.linspace(0.05, 0.95, 8, dtype=torch.float64)
    assert torch.allclose(eps(x, ab), eps_exact(x, ab), atol=1e-10)


def test_denoiser_from_epsilon_matches_target_denoiser():
    target = GaussianTarget.random(3, seed=3)
    m = denoiser_from_epsilon(_exact_vp_epsilon(target), dim=3)
    y = 3 * torch.randn(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([1e-3, 0.1, 0.5, 1.0, 2.0, 5.0, 20.0, 100.0], dtype=torch.float64)
    assert torch.allclose(m(y, t), target.denoiser()(y, t), atol=1e-9)
    # t = 0 (pure noise in VP terms) is evaluated at t_floor: error O(t_floor)
    zero = torch.zeros(2, 3, dtype=torch.float64)
    assert torch.allclose(m(zero, torch.zeros(2, dtype=torch.float64)), target.mean.expand(2, 3), atol=1e-8)
    # round trip denoiser -> epsilon -> denoiser
    back = denoiser_from_epsilon(epsilon_from_denoiser(target.denoiser()), dim=3)
    assert torch.allclose(back(y, t), target.denoiser()(y, t), atol=1e-9)
