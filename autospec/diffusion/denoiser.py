"""The denoising oracle and the counting wrapper that measures its depth.

A denoiser is any callable ``denoiser(y [B, d], t [B]) -> [B, d]`` (float64)
with an attribute ``dim == d``: m(y, t) = E[X | t X + W_t = y].  One call with
a batch of queries is one parallel round; ``CountingDenoiser`` charges every
sample owning a row one round (and one query per row), exactly as
``CountingOracle`` does for the discrete oracles, and validates queries and
answers, raising ``DenoiserError`` naming the denoiser.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from autospec.oracles import RoundCounter

__all__ = ["Denoiser", "DenoiserError", "CountingDenoiser", "FunctionDenoiser"]


class DenoiserError(RuntimeError):
    """A denoiser returned an answer that breaks the protocol."""


@runtime_checkable
class Denoiser(Protocol):
    dim: int

    def __call__(self, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ...


class FunctionDenoiser:
    """A plain function f(y [B, d], t [B]) -> [B, d] with its dimension attached."""

    def __init__(self, function, dim: int, name: str | None = None):
        self.function = function
        self.dim = int(dim)
        self.name = name or getattr(function, "__name__", "function")

    def __call__(self, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.function(y, t)

    def __repr__(self) -> str:
        return f"FunctionDenoiser({self.name!r}, dim={self.dim})"


class CountingDenoiser:
    """Wraps a denoiser: validates every query and answer, counts rounds and queries per sample."""

    def __init__(self, denoiser, num_samples: int, device: str | torch.device = "cpu"):
        if not callable(denoiser) or not hasattr(denoiser, "dim"):
            raise TypeError(
                f"denoiser {denoiser!r} must be callable as denoiser(y [B, d], t [B]) and have an attribute 'dim'"
            )
        dim = denoiser.dim
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise ValueError(f"denoiser.dim must be a positive int, got {dim!r}")
        self.inner = denoiser
        self.dim = dim
        self.name = getattr(denoiser, "name", type(denoiser).__name__)
        self.device = torch.device(device)
        self.counter = RoundCounter(num_samples, device=self.device)

    @property
    def rounds(self) -> torch.Tensor:
        return self.counter.rounds

    @property
    def queries(self) -> torch.Tensor:
        return self.counter.queries

    def __call__(self, y: torch.Tensor, t: torch.Tensor, sample_ids: torch.Tensor | None = None) -> torch.Tensor:
        """y [B, d], t [B] (or a scalar, broadcast), sample_ids [B] -> m(y, t) [B, d] float64."""
        who = f"denoiser {self.name!r}"
        if not isinstance(y, torch.Tensor) or y.dim() != 2 or y.shape[1] != self.dim:
            shape = list(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"query y to {who} must have shape [B, {self.dim}], got {shape}")
        y = y.to(torch.float64)
        t = torch.as_tensor(t, dtype=torch.float64, device=y.device)
        if t.dim() == 0:
            t = t.expand(y.shape[0])
        if t.shape != (y.shape[0],):
            raise ValueError(f"query times t to {who} must have shape [{y.shape[0]}], got {list(t.shape)}")
        if not bool(torch.isfinite(y).all()) or not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
            raise ValueError(f"query to {who} contains non-finite points or negative times")
        self.counter.charge(y.shape[0], sample_ids)
        if y.shape[0] == 0:
            return y.new_zeros(0, self.dim)
        answer = self.inner(y, t)
        expected = [y.shape[0], self.dim]
        if not isinstance(answer, torch.Tensor):
            raise DenoiserError(f"{who} returned {type(answer).__name__}, expected a tensor of shape {expected}")
        if list(answer.shape) != expected:
            raise DenoiserError(f"{who} returned shape {list(answer.shape)}, expected {expected} ([B, d])")
        if not answer.is_floating_point():
            raise DenoiserError(f"{who} returned dtype {answer.dtype}, expected floating point")
        answer = answer.to(torch.float64)
        finite = torch.isfinite(answer).all(-1)
        if not bool(finite.all()):
            row = int(torch.nonzero(~finite)[0])
            raise DenoiserError(
                f"{who} returned a non-finite value (NaN or inf) for query row {row} at t = {float(t[row])!r}"
            )
        return answer

    def __repr__(self) -> str:
        return f"CountingDenoiser({self.name!r}, dim={self.dim})"
