"""What the structured targets share: enumeration to a table, and exact-statistic helpers.

A structured target knows its joint only up to enumeration (``probability``
on full assignments) but answers conditionals at any pinning in closed form.
``to_tabular()`` enumerates q^n cells (n small) so tests can compare the two.

Count statistics with long tails (number of ones, domain walls) are pooled
into contiguous bins of at least ``min_mass`` exact probability, so that a
chi-square test never divides by a tiny expected count.  Pooling an ordered
statistic into contiguous bins keeps it a function of the sample, so its
binned law is still exact.
"""

from __future__ import annotations

import torch

from autospec.targets.statistics import ExactStatistic
from autospec.targets.tabular import TabularTarget

__all__ = ["StructuredTarget", "all_cells", "pooled_statistic", "count_statistics", "pair_statistic", "single_statistic",
           "MIN_BIN_MASS", "COARSE_BIN_MASS"]

MIN_BIN_MASS = 0.005
COARSE_BIN_MASS = 0.1  # ~10 bins: every bin keeps expected count >= 5 from 50 samples on
MAX_TABULAR_N = 14


def all_cells(n: int, q: int, device="cpu") -> torch.Tensor:
    """[q^n, n]: every assignment, row-major (matches TabularTarget.probs.reshape(-1))."""
    flat = torch.arange(q**n, device=device)
    strides = q ** torch.arange(n - 1, -1, -1, device=device)
    return (flat.unsqueeze(1) // strides) % q


class StructuredTarget:
    """Base: subclasses set n, q, name and implement ``probability`` and ``oracle``."""

    n: int
    q: int
    name: str

    def probability(self, values: torch.Tensor) -> torch.Tensor:
        """values [N, n] -> exact probability [N] float64."""
        raise NotImplementedError

    def oracle(self, device="cpu"):
        raise NotImplementedError

    def exact_statistics(self) -> list[ExactStatistic]:
        raise NotImplementedError

    def to_tabular(self) -> TabularTarget:
        """The same law as a TabularTarget (enumerates q^n cells; n <= 14)."""
        if self.n > MAX_TABULAR_N or self.q**self.n > 2**20:
            raise ValueError(f"to_tabular enumerates q^n = {self.q}^{self.n} cells; allowed for q^n <= 2^20 and n <= {MAX_TABULAR_N}")
        cells = all_cells(self.n, self.q)
        probs = self.probability(cells).to(torch.float64)
        probs = probs / probs.sum()
        return TabularTarget(probs.reshape((self.q,) * self.n).numpy(), name=f"tabular[{self.name}]")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n={self.n}, q={self.q})"


def pooled_statistic(name: str, probs: torch.Tensor, function, min_mass: float = MIN_BIN_MASS, labels=None) -> ExactStatistic:
    """An ordered statistic with values 0..K-1 and exact law ``probs`` [K], pooled into
    contiguous bins each of exact mass >= min_mass (the last bin absorbs the rest)."""
    probs = torch.as_tensor(probs, dtype=torch.float64).cpu().clamp(min=0)
    probs = probs / probs.sum()
    K = probs.numel()
    bin_of = torch.zeros(K, dtype=torch.long)
    masses, edges, current, start = [], [], 0.0, 0
    b = 0
    for k in range(K):
        bin_of[k] = b
        current += float(probs[k])
        if current >= min_mass and float(probs[k + 1:].sum()) >= min_mass:
            masses.append(current)
            edges.append((start, k))
            b, current, start = b + 1, 0.0, k + 1
    if start < K:
        masses.append(current)
        edges.append((start, K - 1))
    binned = torch.zeros(len(masses), dtype=torch.float64).index_add_(0, bin_of, probs)
    bin_labels = [f"{lo}" if lo == hi else f"{lo}..{hi}" for lo, hi in edges]

    def statistic(values, function=function, bin_of=bin_of):
        index = function(values).to(torch.long).clamp(0, K - 1)
        return bin_of.to(index.device)[index]

    return ExactStatistic(name, binned, statistic, labels=bin_labels)


def count_statistics(name: str, probs: torch.Tensor, function) -> list[ExactStatistic]:
    """A count statistic twice: fine bins (mass >= MIN_BIN_MASS, for large samples) and coarse bins (mass >=
    COARSE_BIN_MASS).  The chi-square pools cells of expected count < 5 into one, so at a few hundred samples the
    fine version collapses to a single cell (no power); the coarse one keeps ~10 cells.  Both laws are exact."""
    return [pooled_statistic(name, probs, function),
            pooled_statistic(f"{name} (coarse bins)", probs, function, min_mass=COARSE_BIN_MASS)]


def single_statistic(name: str, i: int, law: torch.Tensor) -> ExactStatistic:
    return ExactStatistic(name, torch.as_tensor(law, dtype=torch.float64), lambda v, i=i: v[:, i])


def pair_statistic(name: str, i: int, j: int, law: torch.Tensor) -> ExactStatistic:
    """law [q, q] of (x_i, x_j) -> flattened statistic x_i * q + x_j."""
    law = torch.as_tensor(law, dtype=torch.float64)
    q = law.shape[0]
    return ExactStatistic(name, law.reshape(-1), lambda v, i=i, j=j, q=q: v[:, i] * q + v[:, j])


def chain_statistics(chain, pair_gap: int) -> list[ExactStatistic]:
    """The exact statistics of a chain-like target (Markov chain, HMM): number of ones,
    domain walls, three single coordinates and pairs at distance 1, ``pair_gap`` and n / 2.

    ``chain`` provides ``n``, ``marginals`` [n, q], ``ones_law(value)``,
    ``domain_wall_law()`` and ``pair_marginal(i, j)``.
    """
    n = chain.n
    stats = count_statistics("number of ones", chain.ones_law(1), lambda v: (v == 1).sum(-1))
    if n >= 2:
        stats += count_statistics("domain walls", chain.domain_wall_law(), lambda v: (v[:, 1:] != v[:, :-1]).sum(-1))
    for i in sorted({0, n // 2, n - 1}):
        stats.append(single_statistic(f"x[{i}]", i, chain.marginals[i]))
    pairs = {(0, 1), (n // 2, n // 2 + pair_gap), (n // 4, 3 * n // 4)}
    for i, j in sorted(p for p in pairs if p[0] < p[1] < n):
        stats.append(pair_statistic(f"(x[{i}], x[{j}])", i, j, chain.pair_marginal(i, j)))
    return stats


def check_n_q(n, q, name="target"):
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{name}: n must be an int >= 1, got {n!r}")
    if not isinstance(q, int) or isinstance(q, bool) or q < 2:
        raise ValueError(f"{name}: q must be an int >= 2, got {q!r}")

