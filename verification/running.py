"""Run any contract-following sampler and get values, rounds and queries back."""

from __future__ import annotations

import torch

from autospec import Randomness
from autospec.oracles import CountingOracle
from autospec.samplers.base import Sampler, SampleResult

__all__ = ["run_sampler", "sampler_name", "output_values"]

# Oracle answers are [rows, n, q] per round; keep one chunk's answers near this many floats.
_CHUNK_FLOATS = 2**23


def output_values(output):
    """The values a sampler returned: a bare tensor, or a result's ``.values``.

    (A tensor has a ``values`` method of its own, so it must be tested first.)
    """
    return output if isinstance(output, torch.Tensor) else getattr(output, "values", output)


def sampler_name(sampler) -> str:
    return str(getattr(sampler, "name", None) or type(sampler).__name__)


def run_sampler(sampler, oracle, num_samples: int, rng: Randomness, chunk_size: int | None = None) -> SampleResult:
    """Samples in chunks (bounded memory); a user's sampler gets a counting oracle too."""
    n, q = oracle.n, oracle.q
    if chunk_size is None:
        chunk_size = max(1, min(num_samples, _CHUNK_FLOATS // (8 * n * q)))
    parts = []
    for start in range(0, num_samples, chunk_size):
        size = min(chunk_size, num_samples - start)
        if isinstance(sampler, Sampler):
            parts.append(sampler.sample(oracle, size, rng))
            continue
        counted = CountingOracle(oracle, size)
        output = sampler.sample(counted, size, rng)
        values = output_values(output)
        if not isinstance(values, torch.Tensor) or tuple(values.shape) != (size, n):
            shape = list(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
            raise ValueError(f"sampler {sampler_name(sampler)} returned values {shape}, expected [{size}, {n}]")
        parts.append(SampleResult(values.to(torch.long), counted.rounds.clone(), counted.queries.clone()))
    if not parts:
        empty = torch.zeros(0, dtype=torch.long)
        return SampleResult(torch.zeros((0, n), dtype=torch.long), empty, empty)
    values = torch.cat([p.values.cpu() for p in parts])
    if bool(((values < 0) | (values >= q)).any()):
        raise ValueError(f"sampler {sampler_name(sampler)} returned values outside [0, {q - 1}]")
    return SampleResult(values, torch.cat([p.rounds.cpu() for p in parts]), torch.cat([p.queries.cpu() for p in parts]))
