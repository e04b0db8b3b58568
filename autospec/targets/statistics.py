"""Exact laws of statistics of a sample, for tests where the joint is too large.

A target exposes ``exact_statistics()``: a list of ``ExactStatistic``, each a
function from samples [N, n] to category indices [N] in 0..K-1 together with
the exact law [K] of that index under the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

__all__ = ["ExactStatistic"]


@dataclass
class ExactStatistic:
    name: str
    probs: torch.Tensor  # [K] float64, sums to 1
    function: Callable[[torch.Tensor], torch.Tensor]  # [N, n] -> [N] in 0..K-1
    labels: Sequence[str] | None = None

    def __post_init__(self) -> None:
        self.probs = torch.as_tensor(self.probs, dtype=torch.float64).cpu()
        if self.probs.dim() != 1 or self.probs.numel() == 0:
            raise ValueError(f"statistic {self.name!r}: probs must be a non-empty 1-d law, got shape {list(self.probs.shape)}")
        total = float(self.probs.sum())
        if not torch.isfinite(self.probs).all() or bool((self.probs < 0).any()) or abs(total - 1) > 1e-9:
            raise ValueError(f"statistic {self.name!r}: probs must be finite, non-negative and sum to 1 (sum {total:.12g})")
        if self.labels is None:
            self.labels = [str(k) for k in range(self.probs.numel())]

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        return self.function(values)

    def counts(self, values: torch.Tensor) -> torch.Tensor:
        """Observed counts [K] of the statistic over the samples."""
        index = self.function(values).to(torch.long).cpu()
        K = self.probs.numel()
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= K):
            raise ValueError(f"statistic {self.name!r} mapped a sample outside 0..{K - 1}")
        return torch.bincount(index, minlength=K)
