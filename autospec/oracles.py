"""Oracle protocols and the counting wrapper that measures parallel depth.

Any-order autoregressive setting: a target on [q]^n is reached only through
``marginals(partial)``: ``partial`` is a LongTensor [B, n] with -1 for free
coordinates, the answer a float64 tensor [B, n, q] holding the law of every
coordinate given the pinned ones (a pinned coordinate answers its one-hot).
A pinning of probability zero is a normal event (a draft can be impossible):
the oracle answers a finite placeholder and marks the row infeasible.

Depth accounting: one call of the oracle is one parallel round.  The counting
wrapper charges each sample one round for every call it takes part in and one
query for every row it owns; sampler code reports nothing but which sample a
row belongs to (``sample_ids``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

__all__ = [
    "OracleAnswer",
    "MarginalOracle",
    "ConditionalOracle",
    "OracleError",
    "RoundCounter",
    "CountingOracle",
    "check_partial",
    "placeholder_marginals",
]


class OracleError(RuntimeError):
    """An oracle returned an answer that breaks the protocol."""


@dataclass
class OracleAnswer:
    """marginals [B, n, q] float64; feasible [B] bool (False: the pinning has probability 0)."""

    marginals: torch.Tensor
    feasible: torch.Tensor


@runtime_checkable
class MarginalOracle(Protocol):
    """What a sampler may use: ``n``, ``q`` and ``marginals``."""

    n: int
    q: int

    def marginals(self, partial: torch.Tensor, sample_ids: torch.Tensor | None = None) -> torch.Tensor:
        ...


def check_partial(partial: object, n: int, q: int, name: str = "partial") -> torch.Tensor:
    """Validate a batch of partial assignments: LongTensor [B, n] with values in -1..q-1."""
    if not isinstance(partial, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [B, {n}], got {type(partial).__name__}")
    if partial.dtype.is_floating_point or partial.dtype == torch.bool or partial.is_complex():
        raise TypeError(f"{name} must be an integer tensor (-1 for free coordinates), got dtype {partial.dtype}")
    if partial.dim() != 2 or partial.shape[1] != n:
        raise ValueError(f"{name} must have shape [B, {n}], got {list(partial.shape)}")
    if partial.numel() and bool(((partial < -1) | (partial >= q)).any()):
        raise ValueError(
            f"{name} values must be -1 (free) or in [0, {q - 1}], got values in "
            f"[{int(partial.min())}, {int(partial.max())}]"
        )
    return partial.to(torch.long)


def placeholder_marginals(partial: torch.Tensor, q: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Uniform law on free coordinates, one-hot on pinned ones: [B, n, q].

    The finite answer oracles give at infeasible pinnings; samplers multiply it
    by zero (it must never be NaN).
    """
    out = torch.full((*partial.shape, q), 1.0 / q, dtype=dtype, device=partial.device)
    pinned = partial >= 0
    if bool(pinned.any()):
        one_hot = torch.nn.functional.one_hot(partial.clamp(min=0), q).to(dtype)
        out = torch.where(pinned.unsqueeze(-1), one_hot, out)
    return out


class ConditionalOracle:
    """Base class for exact oracles: implement ``answer(partial) -> OracleAnswer``."""

    n: int
    q: int
    name: str = "oracle"

    def answer(self, partial: torch.Tensor) -> OracleAnswer:
        raise NotImplementedError

    def query(self, partial: torch.Tensor, sample_ids: torch.Tensor | None = None) -> OracleAnswer:
        return self.answer(check_partial(partial, self.n, self.q))

    def marginals(self, partial: torch.Tensor, sample_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.query(partial, sample_ids).marginals

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n={self.n}, q={self.q})"


class RoundCounter:
    """Per-sample rounds and queries for ``num_samples`` samples.

    ``charge(batch_size, sample_ids)`` records one oracle call: every sample
    owning a row gets one round and one query per row.  Without ``sample_ids``
    the call is charged to every sample (a lock-step batch) and its rows are
    spread as evenly as integers allow, so totals stay exact.
    """

    def __init__(self, num_samples: int, device: torch.device | str = "cpu"):
        self.num_samples = num_samples
        self.rounds = torch.zeros(num_samples, dtype=torch.long, device=device)
        self.queries = torch.zeros(num_samples, dtype=torch.long, device=device)
        self.calls = 0
        self.total_queries = 0

    def charge(self, batch_size: int, sample_ids: torch.Tensor | None) -> None:
        self.calls += 1
        self.total_queries += batch_size
        if self.num_samples == 0:
            return
        if sample_ids is None:
            self.rounds += 1
            share, rest = divmod(batch_size, self.num_samples)
            self.queries += share
            self.queries[:rest] += 1
            return
        ids = sample_ids.to(device=self.rounds.device, dtype=torch.long)
        if ids.shape != (batch_size,):
            raise ValueError(f"sample_ids must have shape [{batch_size}] (one per query row), got {list(ids.shape)}")
        if batch_size and bool(((ids < 0) | (ids >= self.num_samples)).any()):
            raise ValueError(f"sample_ids must lie in [0, {self.num_samples - 1}]")
        counts = torch.bincount(ids, minlength=self.num_samples)
        self.queries += counts
        self.rounds += (counts > 0).to(torch.long)


class CountingOracle(ConditionalOracle):
    """Wraps any oracle: validates every query and answer, counts rounds and queries.

    One query is one row of the answer, the conditionals of all n coordinates
    ([n, q]): n * q counting queries in the counting-oracle model, which is
    the unit to use when comparing ``queries`` with theory.

    ``tolerance`` bounds how far an answer's rows may be from summing to 1 (and
    how negative an entry may be).  An invalid answer raises ``OracleError``
    naming the oracle, the row and what was expected.
    """

    def __init__(self, oracle: MarginalOracle, num_samples: int, tolerance: float = 1e-9, device=None):
        for attribute in ("n", "q", "marginals"):
            if not hasattr(oracle, attribute):
                raise TypeError(f"oracle {oracle!r} has no attribute {attribute!r}; expected n, q and marginals()")
        self.inner = oracle
        self.n = int(oracle.n)
        self.q = int(oracle.q)
        self.name = getattr(oracle, "name", type(oracle).__name__)
        self.tolerance = tolerance
        self.counter = RoundCounter(num_samples, device=device or "cpu")

    @property
    def rounds(self) -> torch.Tensor:
        return self.counter.rounds

    @property
    def queries(self) -> torch.Tensor:
        return self.counter.queries

    def query(self, partial: torch.Tensor, sample_ids: torch.Tensor | None = None) -> OracleAnswer:
        partial = check_partial(partial, self.n, self.q)
        self.counter.charge(partial.shape[0], sample_ids)
        if isinstance(self.inner, ConditionalOracle):
            answer = self.inner.query(partial)
        else:
            marginals = self.inner.marginals(partial)
            answer = OracleAnswer(marginals, torch.ones(partial.shape[0], dtype=torch.bool, device=partial.device))
        answer.marginals = self._validated(answer.marginals, partial)
        return answer

    def _validated(self, marginals: object, partial: torch.Tensor) -> torch.Tensor:
        who = f"oracle {self.name!r}"
        expected = (partial.shape[0], self.n, self.q)
        if not isinstance(marginals, torch.Tensor):
            raise OracleError(f"{who} returned {type(marginals).__name__}, expected a tensor of shape {list(expected)}")
        if tuple(marginals.shape) != expected:
            raise OracleError(f"{who} returned shape {list(marginals.shape)}, expected {list(expected)} ([B, n, q])")
        if not marginals.is_floating_point():
            raise OracleError(f"{who} returned dtype {marginals.dtype}, expected floating probabilities")
        marginals = marginals.to(torch.float64)
        if marginals.numel() == 0:
            return marginals
        finite = torch.isfinite(marginals).all(-1)
        if not bool(finite.all()):
            row, coord = torch.nonzero(~finite)[0].tolist()
            raise OracleError(
                f"{who} returned a non-finite law for coordinate {coord} of query row {row} "
                f"(pinning {partial[row].tolist()}); infeasible pinnings must get a finite placeholder"
            )
        if bool((marginals < -self.tolerance).any()):
            row, coord, value = torch.nonzero(marginals < -self.tolerance)[0].tolist()
            raise OracleError(
                f"{who} returned a negative probability {marginals[row, coord, value].item():.3g} "
                f"at row {row}, coordinate {coord}, value {value}"
            )
        sums = marginals.sum(-1)
        off = (sums - 1).abs() > self.tolerance
        if bool(off.any()):
            row, coord = torch.nonzero(off)[0].tolist()
            raise OracleError(
                f"{who} returned a law summing to {sums[row, coord].item():.12g} (expected 1 within "
                f"{self.tolerance:g}) for coordinate {coord} of query row {row}"
            )
        pinned = partial >= 0
        if bool(pinned.any()):
            mass_on_pin = marginals.gather(-1, partial.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            wrong = pinned & (mass_on_pin < 1 - self.tolerance)
            if bool(wrong.any()):
                row, coord = torch.nonzero(wrong)[0].tolist()
                raise OracleError(
                    f"{who} gave pinned coordinate {coord} (value {int(partial[row, coord])}) of query row "
                    f"{row} mass {mass_on_pin[row, coord].item():.6g} on its pinned value, expected 1"
                )
        return marginals.clamp(min=0.0)
