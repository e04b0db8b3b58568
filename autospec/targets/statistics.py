"""Exact laws of statistics of a sample, for tests where the joint is too large.

A target exposes ``exact_statistics()``: a list of ``ExactStatistic``, each a
function from samples [N, n] to category indices [N] in 0..K-1 together with
the exact law [K] of that index under the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

__all__ = ["ExactStatistic", "statistic_law", "count_equal"]


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


def statistic_law(target, function: Callable[[torch.Tensor], torch.Tensor], name: str | None = None) -> ExactStatistic:
    """Exact law of any function of the sample, by enumerating the target's table.

    target: anything with ``probs`` of shape (q,) * n (a TabularTarget); function:
    values [N, n] -> [N] numbers.  The categories are the distinct values of
    the function over ALL cells (zero-probability ones included, so every
    sample maps somewhere).
    """
    probs = getattr(target, "probs", None)
    if not isinstance(probs, torch.Tensor):
        raise ValueError(f"statistic_law needs an enumerable target with a probs table, got {type(target).__name__}")
    n, q = probs.dim(), probs.shape[0]
    flat = torch.arange(q**n)
    strides = q ** torch.arange(n - 1, -1, -1)
    cells = (flat.unsqueeze(1) // strides) % q
    stat = torch.as_tensor(function(cells)).reshape(-1)
    if stat.numel() != cells.shape[0]:
        raise ValueError(f"statistic function must map [N, n] samples to [N] values, got {stat.numel()} for N = {cells.shape[0]}")
    support, index = torch.unique(stat, sorted=True, return_inverse=True)
    law = torch.zeros(support.numel(), dtype=torch.float64).index_add_(0, index, probs.reshape(-1).to(torch.float64).cpu())

    def categorise(values: torch.Tensor, support=support) -> torch.Tensor:
        v = torch.as_tensor(function(values.cpu())).reshape(-1).to(support.dtype)
        position = torch.searchsorted(support, v).clamp(max=support.numel() - 1)
        if bool((support[position] != v).any()):
            raise ValueError(f"statistic {name!r} took a value outside its enumerated support")
        return position

    labels = [f"{float(s):g}" for s in support]
    return ExactStatistic(name or getattr(function, "__name__", "statistic"), law, categorise, labels)


def count_equal(value: int = 1) -> Callable[[torch.Tensor], torch.Tensor]:
    """values [N, n] -> [N]: how many coordinates equal ``value`` (the number of ones by default)."""

    def count(values: torch.Tensor) -> torch.Tensor:
        return (values == value).sum(-1)

    count.__name__ = f"number of {value}s"
    return count
