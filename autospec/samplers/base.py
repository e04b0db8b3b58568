"""What every sampler returns, and the base class that does the counting.

A sampler is any object with ``sample(oracle, num_samples, rng)``.  The
built-in ones subclass ``Sampler`` and implement ``run``: ``sample`` wraps the
oracle in a ``CountingOracle`` so that rounds and queries are measured by the
harness, never reported by the sampler itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from autospec.oracles import CountingOracle, MarginalOracle
from autospec.randomness import RandomSource

__all__ = ["SampleResult", "Sampler", "check_num_samples", "check_rng"]


@dataclass
class SampleResult:
    """values [N, n] (LongTensor, or float [N, d] for diffusion); rounds, queries [N]."""

    values: torch.Tensor
    rounds: torch.Tensor
    queries: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return int(self.values.shape[0])


def check_num_samples(num_samples: object) -> int:
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 0:
        raise ValueError(f"num_samples must be a non-negative int, got {num_samples!r}")
    return num_samples


def check_rng(rng: object) -> RandomSource:
    if not isinstance(rng, RandomSource):
        raise TypeError(
            f"rng must be an autospec.Randomness (or another RandomSource), got {type(rng).__name__}; "
            "samplers draw all their randomness from it"
        )
    return rng


class Sampler:
    """Base class of the discrete samplers.

    ``exact``: whether the sampler claims to sample the target law exactly (the
    audit fails on a claimed-exact sampler that is not).
    """

    name: str = "sampler"
    exact: bool = True

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)

    def sample(self, oracle: MarginalOracle, num_samples: int, rng: RandomSource) -> SampleResult:
        num_samples = check_num_samples(num_samples)
        rng = check_rng(rng)
        counted = CountingOracle(oracle, num_samples, device=self.device)
        values = self.run(counted, num_samples, rng)
        return SampleResult(values, counted.rounds.clone(), counted.queries.clone())

    def run(self, oracle: CountingOracle, num_samples: int, rng: RandomSource) -> torch.Tensor:
        """Draw ``num_samples`` samples: LongTensor [num_samples, n]."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name
