"""Users' diffusion samplers in check_exact_diffusion (issue 13, item 4): any object with
sample(denoiser, num_samples, rng) and a ``times`` grid, returning the values tensor [N, d] or a result with
.values; the harness gives it a counting denoiser, so its rounds are reported.  (The old code took a bare
tensor's ``values`` method for its values and rejected it as "values of shape []".)"""

from types import SimpleNamespace

import pytest
import torch

from autospec.diffusion import time_grid
from autospec.targets import GaussianTarget
from verification import check_exact_diffusion

TIMES = time_grid(16, t_max=8.0)
TARGET = GaussianTarget(torch.tensor([1.0, -0.5], dtype=torch.float64),
                        torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=torch.float64))


class UserEuler:
    """The K-step chain written the way a user would: one denoiser call per step for the whole batch."""

    def __init__(self, times, wrap=None, noise_scale=1.0):
        self.times, self.wrap, self.noise_scale = times, wrap, noise_scale

    def sample(self, denoiser, num_samples, rng):
        y = torch.zeros(num_samples, denoiser.dim, dtype=torch.float64)
        for k in range(len(self.times) - 1):
            h = self.times[k + 1] - self.times[k]
            y = y + h * denoiser(y, self.times[k].expand(num_samples)) + self.noise_scale * h.sqrt() * rng.normal(y.shape)
        values = denoiser(y, self.times[-1].expand(num_samples))
        return values if self.wrap is None else self.wrap(values)


@pytest.mark.statistical(alpha=1e-6)
@pytest.mark.parametrize("wrap", [None, lambda v: SimpleNamespace(values=v)], ids=["bare-tensor", "result-object"])
def test_user_sampler_passes_and_its_rounds_are_counted(wrap):
    result = check_exact_diffusion(UserEuler(TIMES, wrap), TARGET, num_samples=4000, alpha=1e-6, seed=0)
    assert result.passed, result.summary()
    assert result.mean_rounds == 17.0 and result.mean_queries == 17.0  # K + 1 lock-step calls, one row each


def test_wrong_user_sampler_fails():
    result = check_exact_diffusion(UserEuler(TIMES, noise_scale=0.7), TARGET, num_samples=4000, alpha=1e-6, seed=0)
    assert not result.passed, result.summary()


def test_wrong_output_is_a_clear_error():
    with pytest.raises(ValueError, match=r"returned values \[10, 1\], expected a tensor \[10, 2\]"):
        check_exact_diffusion(UserEuler(TIMES, lambda v: v[:, :1]), TARGET, num_samples=10, seed=0)
    with pytest.raises(ValueError, match="returned values list"):
        check_exact_diffusion(UserEuler(TIMES, lambda v: v.tolist()), TARGET, num_samples=10, seed=0)
    with pytest.raises(TypeError, match="pass an instance"):
        check_exact_diffusion(UserEuler, TARGET, num_samples=10, seed=0)
