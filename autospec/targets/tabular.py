"""A target given by its full probability table on [q]^n, with exact conditionals.

The oracle answers from the counting function Z(sigma_S) = P(X_S = sigma_S),
precomputed for every partial pattern ((q + 1)^n of them, value q meaning
"free") when that fits, so each query is a lookup; otherwise it sums the table
over the cells consistent with each pinning.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from autospec.oracles import ConditionalOracle, OracleAnswer, placeholder_marginals
from autospec.targets.statistics import ExactStatistic

__all__ = ["TabularTarget", "TabularOracle", "MAX_CELLS", "MAX_PATTERNS"]

MAX_CELLS = 2**20  # largest table accepted
MAX_PATTERNS = 2**22  # largest precomputed pattern table ((q+1)^n entries)
_SUM_TOLERANCE = 1e-9


class TabularTarget:
    """probs: array of shape (q,) * n, finite, non-negative, summing to 1 within 1e-9."""

    def __init__(self, probs, name: str | None = None):
        try:
            table = torch.as_tensor(np.asarray(probs, dtype=np.float64))
        except (TypeError, ValueError) as error:
            raise ValueError(f"probs must be an array of numbers of shape (q,)*n: {error}") from None
        shape = tuple(table.shape)
        if len(shape) < 1:
            raise ValueError("probs must have n >= 1 axes (shape (q,)*n), got a scalar")
        if len(set(shape)) != 1:
            raise ValueError(f"probs must have shape (q,)*n with equal axes, got {shape}")
        q = shape[0]
        if q < 2:
            raise ValueError(f"probs must have q >= 2 values per coordinate, got shape {shape}")
        if table.numel() > MAX_CELLS:
            raise ValueError(_too_large(len(shape), q))
        if not bool(torch.isfinite(table).all()):
            raise ValueError("probs contains NaN or infinite entries")
        if bool((table < 0).any()):
            raise ValueError(f"probs contains negative entries (min {table.min().item():.3g})")
        total = float(table.sum())
        if abs(total - 1.0) > _SUM_TOLERANCE:
            raise ValueError(f"probs must sum to 1 within {_SUM_TOLERANCE:g}, got {total:.12g}")
        self.probs = table / total
        self.n, self.q = len(shape), q
        self.name = name or f"tabular(n={self.n}, q={q})"

    def __repr__(self) -> str:
        return f"TabularTarget(name={self.name!r}, n={self.n}, q={self.q})"

    # ---- constructors -------------------------------------------------
    @classmethod
    def random(cls, n: int, q: int, seed: int = 0, concentration: float = 1.0, zero_fraction: float = 0.0, name: str | None = None):
        """Dirichlet(concentration) table; ``zero_fraction`` of the cells set to 0 (at least one kept)."""
        _check_size_args(n, q)
        if not concentration > 0:
            raise ValueError(f"concentration must be > 0, got {concentration!r}")
        if not 0 <= zero_fraction < 1:
            raise ValueError(f"zero_fraction must be in [0, 1), got {zero_fraction!r}")
        generator = np.random.default_rng(seed)
        cells = q**n
        weights = generator.dirichlet(np.full(cells, float(concentration)))
        zeros = generator.random(cells) < zero_fraction
        zeros[generator.integers(cells)] = False
        weights = np.where(zeros, 0.0, weights)
        if weights.sum() <= 0:  # Dirichlet underflow at tiny concentration
            weights[generator.integers(cells)] = 1.0
        return cls((weights / weights.sum()).reshape((q,) * n), name=name or f"random(n={n}, q={q}, seed={seed})")

    @classmethod
    def from_log_weights(cls, log_weights, name: str | None = None):
        """Table proportional to exp(log_weights); -inf entries are zero cells."""
        table = torch.as_tensor(np.asarray(log_weights, dtype=np.float64))
        if bool(torch.isnan(table).any()) or bool((table == float("inf")).any()):
            raise ValueError("log_weights contains NaN or +inf")
        if table.numel() and bool((table == float("-inf")).all()):
            raise ValueError("log_weights are all -inf: the table has no mass")
        return cls(torch.softmax(table.reshape(-1), 0).reshape(table.shape), name=name)

    # ---- access ---------------------------------------------------------
    def oracle(self, device: str | torch.device = "cpu") -> "TabularOracle":
        return TabularOracle(self, device)

    def cell_index(self, values: torch.Tensor) -> torch.Tensor:
        """values [N, n] in [0, q) -> flat cell index [N] (row-major, like probs.reshape(-1))."""
        strides = self.q ** torch.arange(self.n - 1, -1, -1, device=values.device)
        return (values.to(torch.long) * strides).sum(-1)

    def marginal(self, i: int) -> torch.Tensor:
        """Exact law [q] of coordinate i."""
        return _sum_out(self.probs, [a for a in range(self.n) if a != i])

    def pair_marginal(self, i: int, j: int) -> torch.Tensor:
        """Exact law [q, q] of (x_i, x_j), i != j."""
        if i == j:
            raise ValueError(f"pair_marginal needs two different coordinates, got i = j = {i}")
        law = _sum_out(self.probs, [a for a in range(self.n) if a not in (i, j)])
        return law if i < j else law.T

    def exact_statistics(self) -> list[ExactStatistic]:
        """Every single and pairwise marginal (as flattened laws)."""
        q = self.q
        stats = [
            ExactStatistic(f"x[{i}]", self.marginal(i), lambda v, i=i: v[:, i])
            for i in range(self.n)
        ]
        for i, j in itertools.combinations(range(self.n), 2):
            stats.append(
                ExactStatistic(f"(x[{i}], x[{j}])", self.pair_marginal(i, j).reshape(-1), lambda v, i=i, j=j: v[:, i] * q + v[:, j])
            )
        return stats


class TabularOracle(ConditionalOracle):
    """Exact conditional marginals of a ``TabularTarget``, batched."""

    def __init__(self, target: TabularTarget, device: str | torch.device = "cpu"):
        self.target = target
        self.n, self.q = target.n, target.q
        self.name = target.name
        self.device = torch.device(device)
        n, q = self.n, self.q
        self._strides = (q + 1) ** torch.arange(n - 1, -1, -1, device=self.device)
        if (q + 1) ** n <= MAX_PATTERNS:
            # Z over all patterns: append to every axis an entry q = "free" holding the sum over that axis.
            z = target.probs.to(self.device)
            for axis in range(n):
                z = torch.cat([z, z.sum(dim=axis, keepdim=True)], dim=axis)
            self._patterns = z.reshape(-1)
        else:
            self._patterns = None
            self._table = target.probs.to(self.device).reshape(-1)
            self._cells = _all_cells(n, q, self.device)

    def answer(self, partial: torch.Tensor) -> OracleAnswer:
        partial = partial.to(self.device)
        if self._patterns is not None:
            numerators, mass = self._lookup(partial)
        else:
            numerators, mass = self._masked_sums(partial)
        feasible = mass > 0
        free = partial < 0
        totals = numerators.sum(-1, keepdim=True)
        conditional = numerators / torch.where(totals > 0, totals, torch.ones_like(totals))
        answer = placeholder_marginals(partial, self.q)
        answer = torch.where((free & feasible.unsqueeze(1)).unsqueeze(-1), conditional, answer)
        return OracleAnswer(answer, feasible)

    def _lookup(self, partial):
        q = self.q
        pattern = torch.where(partial < 0, torch.full_like(partial, q), partial)  # [B, n]
        flat = (pattern * self._strides).sum(-1)  # [B]
        values = torch.arange(q, device=self.device)
        # pattern with coordinate i set to x: flat + (x - pattern_i) * stride_i
        shifted = flat.view(-1, 1, 1) + (values.view(1, 1, q) - pattern.unsqueeze(-1)) * self._strides.view(1, -1, 1)
        return self._patterns[shifted], self._patterns[flat]

    def _masked_sums(self, partial, chunk: int = 2**16):
        # Hand-written because no library does conditional sums over a pinned table.
        B, n, q = partial.shape[0], self.n, self.q
        numerators = torch.zeros((B, n, q), dtype=torch.float64, device=self.device)
        for start in range(0, self._cells.shape[0], chunk):
            cells = self._cells[start:start + chunk]  # [C, n]
            consistent = ((partial.unsqueeze(1) < 0) | (partial.unsqueeze(1) == cells.unsqueeze(0))).all(-1)  # [B, C]
            weights = consistent.to(torch.float64) * self._table[start:start + chunk]
            for x in range(q):
                numerators[:, :, x] += weights @ (cells == x).to(torch.float64)
        return numerators, numerators[:, 0, :].sum(-1)


def _sum_out(table: torch.Tensor, axes: list[int]) -> torch.Tensor:
    # torch reads sum(dim=()) as "sum over every axis": no axes to sum means the table itself.
    return table.sum(dim=tuple(axes)) if axes else table


def _all_cells(n: int, q: int, device) -> torch.Tensor:
    flat = torch.arange(q**n, device=device)
    strides = q ** torch.arange(n - 1, -1, -1, device=device)
    return (flat.unsqueeze(1) // strides) % q


def _check_size_args(n: int, q: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if not isinstance(q, int) or isinstance(q, bool) or q < 2:
        raise ValueError(f"q must be an int >= 2, got {q!r}")
    if q**n > MAX_CELLS:
        raise ValueError(_too_large(n, q))


def _too_large(n: int, q: int) -> str:
    cells = q**n
    return (
        f"a table with q^n = {q}^{n} = {cells} cells ({cells * 8 / 2**20:.1f} MiB in float64) exceeds the "
        f"limit of {MAX_CELLS} cells ({MAX_CELLS * 8 / 2**20:.0f} MiB); use a structured target for large n"
    )
