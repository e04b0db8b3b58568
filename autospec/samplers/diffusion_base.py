"""Base class of the diffusion samplers: counting, validation, shared step helpers.

A diffusion sampler has ``times`` (0 = t_0 < ... < t_K) and
``sample(denoiser, num_samples, rng)``; ``sample`` wraps the denoiser in a
``CountingDenoiser`` so rounds and queries are measured by the harness, then
calls ``run``.  All samplers share the chain

    Y_0 = 0,  Y_{k+1} = Y_k + h_k m(Y_k, t_k) + sqrt(h_k) xi_k,  output m(Y_K, t_K).
"""

from __future__ import annotations

import torch

from autospec.diffusion.denoiser import CountingDenoiser
from autospec.diffusion.grid import check_times
from autospec.randomness import RandomSource
from autospec.samplers.base import SampleResult, check_num_samples, check_rng

__all__ = ["DiffusionSampler", "gaussian_log_ratio"]


def gaussian_log_ratio(y: torch.Tensor, a: torch.Tensor, b: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """log N(y; a, h I) - log N(y; b, h I) for [..., d] points and [...] variances h."""
    return (((y - b) ** 2).sum(-1) - ((y - a) ** 2).sum(-1)) / (2.0 * h)


class DiffusionSampler:
    """``exact``: whether the sampler claims to sample the K-step chain's law exactly."""

    name: str = "diffusion_sampler"
    exact: bool = True

    def __init__(self, times, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.times = check_times(times).to(self.device)

    @property
    def steps(self) -> int:
        return int(self.times.shape[0] - 1)

    @property
    def increments(self) -> torch.Tensor:
        return self.times[1:] - self.times[:-1]

    def sample(self, denoiser, num_samples: int, rng: RandomSource) -> SampleResult:
        num_samples = check_num_samples(num_samples)
        rng = check_rng(rng)
        counted = CountingDenoiser(denoiser, num_samples, device=self.device)
        values, info = self.run(counted, num_samples, rng)
        return SampleResult(values, counted.rounds.clone(), counted.queries.clone(), info)

    def run(self, denoiser: CountingDenoiser, num_samples: int, rng: RandomSource) -> tuple[torch.Tensor, dict]:
        """-> (values [num_samples, d] float64, info dict)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{self.name}(K={self.steps})"
