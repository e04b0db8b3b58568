"""Curie-Weiss model on {0, 1}^n (spins s = 2x - 1), exact conditionals from counts.

    mu(x) ∝ exp(beta / (2n) * m^2 + h * m),   m = sum_i s_i = 2M - n,  M = #ones.

The law depends on x only through M, so given c pinned ones among the pinned
coordinates and f free coordinates, the number j of free ones has weight
C(f, j) w(c + j), and every free coordinate has the same conditional

    P(x_i = 1 | pins) = sum_j (j / f) C(f, j) w(c + j) / sum_j C(f, j) w(c + j),

which depends on the pins only through (c, f).  With Z_f(c) = sum_j C(f, j)
w(c + j), Pascal's rule gives Z_f(c) = Z_{f-1}(c) + Z_{f-1}(c + 1) and
P(x_i = 1 | c, f) = Z_{f-1}(c + 1) / Z_f(c): the oracle tabulates it once for
every c + f <= n (n steps in log space, n^2 / 2 entries), after which a query
costs two counts per row and a lookup, whatever positions it asks for.  Every
pinning has positive probability.
"""

from __future__ import annotations

import math

import torch

from autospec.oracles import ConditionalOracle, OracleAnswer, OracleSession, placeholder_marginals
from autospec.targets.statistics import ExactStatistic
from autospec.targets.structured import StructuredTarget, check_n_q, count_statistics, pair_statistic, single_statistic

__all__ = ["CurieWeissTarget", "CurieWeissOracle"]


class CurieWeissTarget(StructuredTarget):
    def __init__(self, n: int, beta: float = 1.0, h: float = 0.0, name: str | None = None):
        check_n_q(n, 2, "CurieWeissTarget")
        if not math.isfinite(beta) or not math.isfinite(h):
            raise ValueError(f"beta and h must be finite, got beta={beta!r}, h={h!r}")
        self.n, self.q, self.beta, self.h = n, 2, float(beta), float(h)
        self.name = name or f"curie-weiss(n={n}, beta={beta:g}, h={h:g})"
        M = torch.arange(n + 1, dtype=torch.float64)
        m = 2 * M - n
        self.log_w = self.beta / (2 * n) * m**2 + self.h * m  # [n+1]: log weight of one configuration with M ones
        self.log_binom = _log_binomial(n, M)
        log_law = self.log_binom + self.log_w
        self.count_law = torch.softmax(log_law, 0)  # [n+1]: exact law of M

    def oracle(self, device="cpu") -> "CurieWeissOracle":
        return CurieWeissOracle(self, device)

    def probability(self, values: torch.Tensor) -> torch.Tensor:
        M = values.to(torch.long).sum(-1)
        return torch.exp(self.log_w[M] - torch.logsumexp(self.log_binom + self.log_w, 0))

    def exact_statistics(self) -> list[ExactStatistic]:
        n, law = self.n, self.count_law
        M = torch.arange(n + 1, dtype=torch.float64)
        stats = count_statistics("number of ones", law, lambda v: v.sum(-1))
        abs_m = torch.zeros(n // 2 + 1, dtype=torch.float64)  # |m| / 2 rounded down indexes |2M - n|
        abs_m.index_add_(0, ((2 * M - n).abs() / 2).floor().to(torch.long), law)
        stats += count_statistics("|magnetisation|", abs_m, lambda v: ((2 * v.sum(-1) - n).abs() // 2))
        p1 = float((law * M / n).sum())
        stats.append(single_statistic("x[0]", 0, torch.tensor([1 - p1, p1], dtype=torch.float64)))
        if n >= 2:
            d = n * (n - 1)
            p11 = float((law * M * (M - 1) / d).sum())
            p10 = float((law * M * (n - M) / d).sum())
            p00 = float((law * (n - M) * (n - M - 1) / d).sum())
            pair = torch.tensor([[p00, p10], [p10, p11]], dtype=torch.float64)
            stats.append(pair_statistic("(x[0], x[n-1])", 0, n - 1, pair))
        return stats


class CurieWeissOracle(ConditionalOracle):
    def __init__(self, target: CurieWeissTarget, device="cpu"):
        self.target = target
        self.n, self.q, self.name = target.n, 2, target.name
        self.device = torch.device(device)
        self.log_w = target.log_w.to(self.device)
        self._p_one: torch.Tensor | None = None  # P(x_i = 1 | c, f), flat over f = 1..n, c = 0..n-f
        self._start: torch.Tensor | None = None  # where row f starts in the flat table

    def _table(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._p_one is None:
            n = self.n
            log_z = self.log_w  # Z_0(c) = w(c), c = 0..n
            rows = []
            for _ in range(n):  # Z_f(c) = Z_{f-1}(c) + Z_{f-1}(c + 1), c = 0..n-f
                previous, log_z = log_z, torch.logaddexp(log_z[:-1], log_z[1:])
                rows.append(torch.exp(previous[1:] - log_z).clamp(0.0, 1.0))
            sizes = torch.arange(n, 0, -1, device=self.device)  # row f = 1..n has n - f + 1 entries
            self._start = torch.cat([sizes.new_zeros(2), sizes.cumsum(0)[:-1]])  # start[f], f = 0..n (f = 0 unused)
            self._p_one = torch.cat(rows)
        return self._p_one, self._start

    def probability_of_one(self, partial: torch.Tensor) -> torch.Tensor:
        """partial [B, n] -> P(a free coordinate is 1 | pins) [B] (rows with no free coordinate: 0)."""
        f = (partial < 0).sum(1)
        c = (partial == 1).sum(1)
        table, start = self._table()
        index = (start[f] + c).clamp(max=table.numel() - 1)
        return torch.where(f > 0, table[index], torch.zeros_like(table[index]))

    def answer(self, partial: torch.Tensor) -> OracleAnswer:
        B, n = partial.shape
        return self.answer_at(partial, torch.arange(n, device=self.device).expand(B, n))

    def answer_at(self, partial: torch.Tensor, positions: torch.Tensor) -> OracleAnswer:
        """Laws of coordinates positions [B, k]: [B, k, 2] (every free coordinate has the same law)."""
        partial, positions = partial.to(self.device), positions.to(self.device)
        B, k = positions.shape
        f = (partial < 0).sum(1)
        c = (partial == 1).sum(1)
        return self._laws(f, c, partial.gather(1, positions))

    def _laws(self, f: torch.Tensor, c: torch.Tensor, pins: torch.Tensor) -> OracleAnswer:
        """Free count f [B], count of ones c [B], the pins at the asked positions [B, k] -> [B, k, 2]."""
        B, k = pins.shape
        table, start = self._table()
        index = (start[f] + c).clamp(max=table.numel() - 1)
        p1 = torch.where(f > 0, table[index], torch.zeros_like(table[index]))
        law = torch.stack([1 - p1, p1], -1).unsqueeze(1).expand(B, k, 2)
        feasible = torch.ones(B, dtype=torch.bool, device=self.device)
        pinned = pins >= 0
        if not bool(pinned.any()):
            return OracleAnswer(law, feasible)
        return OracleAnswer(torch.where(pinned.unsqueeze(-1), placeholder_marginals(pins, 2), law), feasible)

    def open_session(self, partial: torch.Tensor) -> "CurieWeissSession":
        return CurieWeissSession(self, partial.to(self.device))

    def answer_prefixes(self, rows, positions: torch.Tensor) -> OracleAnswer:
        """Prefix rows (``PrefixRows``): the counts of x plus those of the drafted slots before each length."""
        positions = positions.to(self.device)
        f_base, c_base = rows.of_base("curie-weiss counts", lambda base: ((base.to(self.device) < 0).sum(1),
                                                                       (base.to(self.device) == 1).sum(1)))
        drafted = rows.drafted.to(self.device).to(torch.long)
        ones = drafted * (rows.values.to(self.device) == 1).to(torch.long)
        zero = drafted.new_zeros(drafted.shape[0], 1)
        pinned_before = torch.cat([zero, drafted.cumsum(1)], 1)  # [A, K+1]: drafted slots < j
        ones_before = torch.cat([zero, ones.cumsum(1)], 1)
        owner, length = rows.owner.to(self.device), rows.length.to(self.device)
        f = f_base[owner] - pinned_before[owner, length]
        c = c_base[owner] + ones_before[owner, length]
        return self._laws(f, c, rows.pins_at(positions))


class CurieWeissSession(OracleSession):
    """Incremental state: each row's free count and count of ones, updated by each pin (O(1) a pin)."""

    def __init__(self, oracle: CurieWeissOracle, partial: torch.Tensor):
        super().__init__(oracle, partial)
        self.free, self.ones = (partial < 0).sum(1), (partial == 1).sum(1)

    def pin(self, rows, positions, values) -> None:
        super().pin(rows, positions, values)
        ones = (values == 1).to(torch.long)
        if rows is None:
            self.free -= 1
            self.ones += ones
        else:
            self.free.index_add_(0, rows, torch.full_like(ones, -1))
            self.ones.index_add_(0, rows, ones)

    def answer_at(self, positions: torch.Tensor) -> OracleAnswer:
        return self.oracle._laws(self.free, self.ones, self.x.gather(1, positions))


def _log_binomial(n: int, k: torch.Tensor) -> torch.Tensor:
    return math.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
