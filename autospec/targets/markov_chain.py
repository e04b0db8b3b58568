"""Markov chains on [q]^n with exact conditionals at any pinning.

By the Markov property the law of a free coordinate i given the pinned ones
depends only on its nearest pinned neighbours L < i < R:

    P(x_i = x | pins) ∝ [pi_0 T^i](x)            (no pin on the left)
                        or T^(i-L)[x_L, x]      (pin at L)
                      * T^(R-i)[x, x_R]          (pin at R; 1 if none),

which is forward-backward with evidence collapsed onto the matrix powers
T^d (d = 0..n), precomputed once.  Every query is a handful of gathers: no
loop over n, so n = 4096 costs the same number of kernel launches as n = 16.
Asked for k positions, the laws cost [B, k, q]; the nearest pins and the
feasibility check are [B, n] integer scans.  A pinning is feasible iff every consecutive pair of pins
(a at L, b at R) has T^(R-L)[a, b] > 0 and the first pin has positive
marginal; infeasible rows get the placeholder.
"""

from __future__ import annotations

import numpy as np
import torch

from autospec.oracles import ConditionalOracle, OracleAnswer, OracleSession, placeholder_marginals
from autospec.targets.statistics import ExactStatistic
from autospec.targets.structured import StructuredTarget, chain_statistics, check_n_q

__all__ = ["MarkovChainTarget", "MarkovChainOracle"]


class MarkovChainTarget(StructuredTarget):
    """x_0 ~ initial [q], x_{i+1} | x_i ~ transition[x_i] ([q, q], rows sum to 1)."""

    def __init__(self, n: int, transition, initial=None, name: str | None = None):
        transition = torch.as_tensor(np.asarray(transition, dtype=np.float64))
        if transition.dim() != 2 or transition.shape[0] != transition.shape[1]:
            raise ValueError(f"transition must be a square [q, q] matrix, got shape {list(transition.shape)}")
        q = transition.shape[0]
        check_n_q(n, q, "MarkovChainTarget")
        if not bool(torch.isfinite(transition).all()) or bool((transition < 0).any()):
            raise ValueError("transition must be finite and non-negative")
        rows = transition.sum(-1)
        if bool(((rows - 1).abs() > 1e-9).any()):
            raise ValueError(f"transition rows must sum to 1 within 1e-9, got sums {rows.tolist()}")
        initial = torch.full((q,), 1.0 / q, dtype=torch.float64) if initial is None else torch.as_tensor(np.asarray(initial, dtype=np.float64))
        if initial.shape != (q,) or bool((initial < 0).any()) or abs(float(initial.sum()) - 1) > 1e-9:
            raise ValueError(f"initial must be a law of shape [{q}], got {initial.tolist()}")
        self.n, self.q = n, q
        self.transition = transition / rows.unsqueeze(-1)
        self.initial = initial / initial.sum()
        self.name = name or f"markov(n={n}, q={q})"
        powers = [torch.eye(q, dtype=torch.float64)]
        for _ in range(n):
            powers.append(powers[-1] @ self.transition)
        self.powers = torch.stack(powers)  # [n+1, q, q]: T^d
        self.marginals = self.initial @ self.powers[:n]  # [n, q]: law of x_i

    @classmethod
    def random(cls, n: int, q: int = 2, seed: int = 0, concentration: float = 1.0, zero_fraction: float = 0.0, name=None):
        """Dirichlet rows; ``zero_fraction`` of transitions forbidden (each row keeps one entry)."""
        g = np.random.default_rng(seed)
        T = g.dirichlet(np.full(q, concentration), size=q)
        zeros = g.random((q, q)) < zero_fraction
        zeros[np.arange(q), g.integers(q, size=q)] = False
        T = np.where(zeros, 0.0, T)
        T = T / T.sum(-1, keepdims=True)
        init = g.dirichlet(np.ones(q))
        return cls(n, T, init, name=name or f"markov-random(n={n}, q={q}, seed={seed})")

    @classmethod
    def sticky(cls, n: int, q: int = 2, stay: float = 0.9, name=None):
        """Stay with probability ``stay``, else move uniformly to another value; uniform start."""
        T = np.full((q, q), (1 - stay) / (q - 1))
        np.fill_diagonal(T, stay)
        return cls(n, T, None, name=name or f"markov-sticky(n={n}, q={q}, stay={stay:g})")

    def oracle(self, device="cpu") -> "MarkovChainOracle":
        return MarkovChainOracle(self, device)

    def probability(self, values: torch.Tensor) -> torch.Tensor:
        values = values.to(torch.long)
        p = self.initial[values[:, 0]]
        for i in range(self.n - 1):
            p = p * self.transition[values[:, i], values[:, i + 1]]
        return p

    # ---- exact laws of statistics ------------------------------------------------
    def ones_law(self, value: int = 1) -> torch.Tensor:
        """Exact law [n+1] of #{i : x_i = value} (DP over the chain)."""
        n, q = self.n, self.q
        f = torch.zeros((q, n + 1), dtype=torch.float64)
        f[:, 0] = self.initial
        f[value] = torch.roll(f[value], 1)
        for _ in range(n - 1):
            g = self.transition.T @ f
            g[value] = torch.cat([g.new_zeros(1), g[value, :-1]])
            f = g
        return f.sum(0)

    def domain_wall_law(self) -> torch.Tensor:
        """Exact law [n] of #{i : x_i != x_{i+1}}."""
        n, q = self.n, self.q
        f = torch.zeros((q, n), dtype=torch.float64)
        f[:, 0] = self.initial
        T = self.transition
        off = T - torch.diag(torch.diag(T))
        for _ in range(n - 1):
            same = torch.diag(T).unsqueeze(1) * f
            change = off.T @ f
            f = same + torch.cat([change.new_zeros(q, 1), change[:, :-1]], dim=1)
        return f.sum(0)

    def pair_marginal(self, i: int, j: int) -> torch.Tensor:
        """Exact law [q, q] of (x_i, x_j), i < j."""
        return self.marginals[i].unsqueeze(1) * self.powers[j - i]

    def exact_statistics(self) -> list[ExactStatistic]:
        return chain_statistics(self, pair_gap=7)


class MarkovChainOracle(ConditionalOracle):
    """Batched exact conditionals of a ``MarkovChainTarget`` (see the module docstring)."""

    def __init__(self, target: MarkovChainTarget, device="cpu"):
        self.target = target
        self.n, self.q, self.name = target.n, target.q, target.name
        self.device = torch.device(device)
        self.powers = target.powers.to(self.device)  # [n+1, q, q]
        self.powers_t = self.powers.transpose(1, 2).contiguous()
        self.marginals_ = target.marginals.to(self.device)  # [n, q]

    def answer(self, partial: torch.Tensor) -> OracleAnswer:
        B, n = partial.shape
        return self.answer_at(partial, torch.arange(n, device=self.device).expand(B, n), placeholder_if_infeasible=True)

    def answer_at(self, partial: torch.Tensor, positions: torch.Tensor, placeholder_if_infeasible: bool = False) -> OracleAnswer:
        """Laws of coordinates positions [B, k] given the pins: [B, k, q].

        The law at i only involves i's nearest pins, so an infeasible row (pins elsewhere incompatible) still
        gets a finite law there; feasibility, a check of every pair of consecutive pins, is computed when read.
        The dense ``answer`` gives infeasible rows the placeholder.
        """
        partial, positions = partial.to(self.device), positions.to(self.device)
        B, n = partial.shape
        pinned = partial >= 0
        index = torch.arange(n, device=self.device).expand(B, n)
        left_all, right_all = _nearest_pins(partial)  # scans over [B, n]; then only the asked positions
        left, right = left_all.gather(1, positions), right_all.gather(1, positions)
        value = partial.clamp(min=0)
        left_value = value.gather(1, left.clamp(min=0))
        right_value = value.gather(1, right.clamp(max=n - 1))
        numerators = self._numerators(positions, left, right, left_value, right_value)

        def feasible() -> torch.Tensor:  # each pin against the previous pin (strictly before it)
            previous = torch.cat([left_all.new_full((B, 1), -1), left_all[:, :-1]], dim=1)
            prev_value = value.gather(1, previous.clamp(min=0))
            link = torch.where(
                previous >= 0,
                self.powers[(index - previous).clamp(max=n), prev_value, value],
                self.marginals_[index, value],
            )
            return torch.where(pinned, link > 0, torch.ones_like(pinned)).all(1)

        return self._finish(numerators, partial.gather(1, positions), feasible, placeholder_if_infeasible)

    def open_session(self, partial: torch.Tensor) -> "MarkovChainSession":
        return MarkovChainSession(self, partial.to(self.device))

    def answer_prefixes(self, rows, positions: torch.Tensor) -> OracleAnswer:
        """Prefix rows (``PrefixRows``): the nearest pins of x (scans over [A, n], once per sample) and the
        nearest drafted pins before each length ([R, k, K] comparisons): never a [R, n] row."""
        positions = positions.to(self.device)
        n = self.n
        owner = rows.owner.to(self.device)
        left_all, right_all = rows.of_base("markov nearest pins", lambda base: _nearest_pins(base.to(self.device)))
        rows_of = owner.unsqueeze(1).expand_as(positions)
        left, right = left_all[rows_of, positions], right_all[rows_of, positions]
        K = rows.columns.shape[1]
        if K:
            active = rows.active().unsqueeze(1)  # [R, 1, K]
            columns = rows.columns.to(self.device)[owner].unsqueeze(1)  # [R, 1, K]
            at = positions.unsqueeze(-1)
            left = torch.maximum(left, torch.where(active & (columns <= at), columns, torch.full_like(columns, -1)).amax(-1))
            right = torch.minimum(right, torch.where(active & (columns >= at), columns, torch.full_like(columns, n)).amin(-1))
        left_value = rows.pins_at(left.clamp(min=0)).clamp(min=0)
        right_value = rows.pins_at(right.clamp(max=n - 1)).clamp(min=0)
        numerators = self._numerators(positions, left, right, left_value, right_value)
        return self._finish(numerators, rows.pins_at(positions), lambda: self.answer_at(rows.materialise(), positions[:, :0]).feasible, False)

    def _numerators(self, positions, left, right, left_value, right_value) -> torch.Tensor:
        n = self.n
        has_left, has_right = left >= 0, right < n
        from_left = torch.where(
            has_left.unsqueeze(-1),
            self.powers[(positions - left).clamp(min=0), left_value],  # T^(i-L)[x_L, :]
            self.marginals_[positions],
        )
        from_right = torch.where(
            has_right.unsqueeze(-1),
            self.powers_t[(right - positions).clamp(min=0), right_value],  # T^(R-i)[:, x_R]
            torch.ones_like(from_left),
        )
        return from_left * from_right

    def _finish(self, numerators, pins, feasible, placeholder_if_infeasible: bool) -> OracleAnswer:
        totals = numerators.sum(-1, keepdim=True)
        conditional = numerators / torch.where(totals > 0, totals, torch.ones_like(totals))
        good = (pins < 0) & (totals.squeeze(-1) > 0)
        if placeholder_if_infeasible:
            feasible = feasible()
            good = good & feasible.unsqueeze(1)
        return OracleAnswer(torch.where(good.unsqueeze(-1), conditional, placeholder_marginals(pins, self.q)), feasible)


class MarkovChainSession(OracleSession):
    """Incremental state: every coordinate's nearest pin at or before it and at or after it ([B, n] each).
    A pin at p (between pins L < p < R) makes p the nearest-left pin of p..R-1 and the nearest-right pin of
    L+1..p: only that gap is written (width up to the widest gap of the batch), so a Sequential run writes
    O(n log n) entries per row, not O(n^2)."""

    def __init__(self, oracle: MarkovChainOracle, partial: torch.Tensor):
        super().__init__(oracle, partial)
        self.rows = torch.arange(partial.shape[0], device=partial.device)
        self._rescan(slice(None))

    def _rescan(self, rows) -> None:
        x = self.x[rows]
        n = x.shape[1]
        left, right = _nearest_pins(x)
        scratch = left.new_zeros((left.shape[0], 1))  # column n: where masked writes of a gap go
        if isinstance(rows, slice):
            self.left, self.right = torch.cat([left, scratch], 1), torch.cat([right, scratch], 1)
        else:
            self.left[rows, :n], self.right[rows, :n] = left, right

    def pin(self, rows, positions, values) -> None:
        super().pin(rows, positions, values)
        if rows is not None:  # several pins per row possible: rescan the rows touched
            self._rescan(torch.unique(rows))
            return
        n = self.oracle.n
        at = positions.unsqueeze(1)
        before, after = self.left[self.rows, positions].unsqueeze(1), self.right[self.rows, positions].unsqueeze(1)
        width = int(torch.maximum(after - at, at - before).max())
        offsets = torch.arange(width, device=at.device)
        ahead, behind = at + offsets, at - offsets  # p..R-1 and L+1..p, masked to each row's gap
        self.left.scatter_(1, torch.where(ahead < after, ahead, n), at.expand(-1, width))
        self.right.scatter_(1, torch.where(behind > before, behind, n), at.expand(-1, width))

    def answer_at(self, positions: torch.Tensor) -> OracleAnswer:
        oracle, x = self.oracle, self.x
        n = oracle.n
        left, right = self.left.gather(1, positions), self.right.gather(1, positions)
        # values at the nearest pins (rows without one read a placeholder 0, unused by _numerators)
        numerators = oracle._numerators(positions, left, right, x.gather(1, left.clamp(min=0)).clamp(min=0),
                                        x.gather(1, right.clamp(max=n - 1)).clamp(min=0))
        return oracle._finish(numerators, x.gather(1, positions),
                              self.feasible_now(lambda: oracle.answer_at(x, positions[:, :0]).feasible), False)


def _nearest_pins(partial: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """partial [B, n] -> each coordinate's nearest pin at or before it (-1: none) and at or after it (n: none)."""
    B, n = partial.shape
    pinned = partial >= 0
    index = torch.arange(n, device=partial.device).expand(B, n)
    left = torch.where(pinned, index, torch.full_like(index, -1)).cummax(1).values
    right = torch.where(pinned, index, torch.full_like(index, n)).flip(1).cummin(1).values.flip(1)
    return left, right
