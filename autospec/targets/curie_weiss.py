"""Curie-Weiss model on {0, 1}^n (spins s = 2x - 1), exact conditionals from counts.

    mu(x) ∝ exp(beta / (2n) * m^2 + h * m),   m = sum_i s_i = 2M - n,  M = #ones.

The law depends on x only through M, so given c pinned ones among the pinned
coordinates and f free coordinates, the number j of free ones has weight
C(f, j) w(c + j), and every free coordinate has the same conditional

    P(x_i = 1 | pins) = sum_j (j / f) C(f, j) w(c + j) / sum_j C(f, j) w(c + j),

summed exactly in log space over j = 0..f (vectorised over the batch).  Every
pinning has positive probability.
"""

from __future__ import annotations

import math

import torch

from autospec.oracles import ConditionalOracle, OracleAnswer, placeholder_marginals
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
        self.lgamma = torch.lgamma(torch.arange(self.n + 2, dtype=torch.float64, device=self.device))  # lgamma(k), k = 0..n+1

    def answer(self, partial: torch.Tensor) -> OracleAnswer:
        partial = partial.to(self.device)
        B, n = partial.shape
        free = partial < 0
        f = free.sum(1)  # [B]
        c = (partial == 1).sum(1)  # [B]
        j = torch.arange(n + 1, device=self.device).expand(B, n + 1)
        valid = j <= f.unsqueeze(1)
        # log C(f, j) + log w(c + j)
        fj = (f.unsqueeze(1) - j).clamp(min=0)
        log_binom = self.lgamma[f + 1].unsqueeze(1) - self.lgamma[j + 1] - self.lgamma[fj + 1]
        terms = log_binom + self.log_w[(c.unsqueeze(1) + j).clamp(max=n)]
        terms = torch.where(valid, terms, torch.full_like(terms, -math.inf))
        log_z = torch.logsumexp(terms, 1)
        log_j = torch.log(j.to(torch.float64))  # -inf at j = 0
        log_ones = torch.logsumexp(terms + log_j, 1) - torch.log(f.clamp(min=1).to(torch.float64))
        p1 = torch.exp(log_ones - log_z).clamp(0.0, 1.0)  # [B]
        law = torch.stack([1 - p1, p1], -1).unsqueeze(1).expand(B, n, 2)
        answer = placeholder_marginals(partial, 2)
        feasible = torch.ones(B, dtype=torch.bool, device=self.device)
        return OracleAnswer(torch.where(free.unsqueeze(-1), law, answer), feasible)


def _log_binomial(n: int, k: torch.Tensor) -> torch.Tensor:
    return math.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
