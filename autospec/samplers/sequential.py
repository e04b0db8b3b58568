"""The sequential baseline: one coordinate per round, depth exactly n."""

from __future__ import annotations

import torch

from autospec.oracles import CountingOracle
from autospec.randomness import RandomSource
from autospec.samplers.base import Sampler
from autospec.samplers.orders import check_order, draw_order


class Sequential(Sampler):
    """For t = 1..n: ask the conditionals given x_{order[<t]}, draw x_{order[t]}."""

    def __init__(self, order: str = "random", device: str | torch.device = "cpu"):
        super().__init__(device)
        self.order = check_order(order)
        self.name = "Sequential" if order == "random" else f"Sequential(order={order!r})"

    def run(self, oracle: CountingOracle, num_samples: int, rng: RandomSource) -> torch.Tensor:
        n = oracle.n
        order = draw_order(self.order, num_samples, n, rng, self.device)
        x = torch.full((num_samples, n), -1, dtype=torch.long, device=self.device)
        everyone = torch.arange(num_samples, device=self.device)
        for t in range(n):
            position = order[:, t]
            law = oracle.marginals(x, sample_ids=everyone, positions=position.unsqueeze(1))[:, 0]  # [N, q]
            x[everyone, position] = rng.categorical(law).to(self.device)
        return x
