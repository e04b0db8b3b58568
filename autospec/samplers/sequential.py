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
        # rows only gain pins: the oracle keeps incremental state between rounds (one row per sample, so
        # sample_ids None charges each sample one round and one query per call, as the sample ids would)
        session = oracle.open_session(x)
        for t in range(n):
            position = order[:, t]
            law = session.marginals(position.unsqueeze(1))[:, 0]  # [N, q]: one round
            session.pin(None, position, rng.categorical(law).to(self.device))
        return session.x.clone()
