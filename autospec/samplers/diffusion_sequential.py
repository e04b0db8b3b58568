"""The sequential K-step chain: one denoiser round per step, K + 1 rounds in all."""

from __future__ import annotations

import torch

from autospec.samplers.diffusion_base import DiffusionSampler

__all__ = ["DiffusionSequential"]


class DiffusionSequential(DiffusionSampler):
    """Y_{k+1} = Y_k + h_k m(Y_k, t_k) + sqrt(h_k) xi_k from Y_0 = 0; output m(Y_K, t_K).

    ``noise`` (optional, [num_samples, K, d]) fixes xi, for pathwise comparisons
    under shared noise (Picard); otherwise xi_k is drawn from rng step by step.
    """

    name = "diffusion_sequential"

    def run(self, denoiser, num_samples, rng, noise: torch.Tensor | None = None):
        d, times, h = denoiser.dim, self.times, self.increments
        y = torch.zeros(num_samples, d, dtype=torch.float64, device=self.device)
        for k in range(self.steps):
            drift = denoiser(y, times[k].expand(num_samples))
            xi = noise[:, k] if noise is not None else rng.normal((num_samples, d)).to(self.device)
            y = y + h[k] * drift + torch.sqrt(h[k]) * xi
        return denoiser(y, times[-1].expand(num_samples)), {}

    def sample_with_noise(self, denoiser, noise: torch.Tensor):
        """Run the chain on given noise [N, K, d] (no rng needed): SampleResult."""
        from autospec.diffusion.denoiser import CountingDenoiser
        from autospec.samplers.base import SampleResult

        counted = CountingDenoiser(denoiser, noise.shape[0], device=self.device)
        values, info = self.run(counted, noise.shape[0], None, noise=noise.to(torch.float64))
        return SampleResult(values, counted.rounds.clone(), counted.queries.clone(), info)
