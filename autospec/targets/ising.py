"""Small Ising and Sherrington-Kirkpatrick models (n <= 20), exact by enumeration.

    mu(x) ∝ exp(beta * (sum_{i<j} J_ij s_i s_j + sum_i h_i s_i)),  s = 2x - 1.

The table has 2^n cells, so this is a ``TabularTarget`` (its oracle answers by
pattern lookup up to n = 13 and by masked sums beyond), plus the exact law of
the magnetisation.
"""

from __future__ import annotations

import numpy as np
import torch

from autospec.targets.statistics import ExactStatistic
from autospec.targets.structured import all_cells, pooled_statistic
from autospec.targets.tabular import TabularTarget

__all__ = ["IsingTarget"]

MAX_ISING_N = 20


class IsingTarget(TabularTarget):
    def __init__(self, couplings, field=None, beta: float = 1.0, name: str | None = None):
        J = torch.as_tensor(np.asarray(couplings, dtype=np.float64))
        if J.dim() != 2 or J.shape[0] != J.shape[1]:
            raise ValueError(f"couplings must be a square [n, n] matrix, got shape {list(J.shape)}")
        n = J.shape[0]
        if not 1 <= n <= MAX_ISING_N:
            raise ValueError(f"IsingTarget enumerates 2^n states: n must be in 1..{MAX_ISING_N}, got {n}")
        J = torch.triu(J + J.T, diagonal=1) / 1.0 if not torch.allclose(J, torch.triu(J, 1)) else J
        h = torch.zeros(n, dtype=torch.float64) if field is None else torch.as_tensor(np.asarray(field, dtype=np.float64))
        s = 2.0 * all_cells(n, 2).to(torch.float64) - 1  # [2^n, n]
        energy = ((s @ J) * s).sum(-1) + s @ h
        self.couplings, self.field, self.beta = J, h, float(beta)
        super().__init__(torch.softmax(self.beta * energy, 0).reshape((2,) * n).numpy(), name=name or f"ising(n={n}, beta={beta:g})")

    @classmethod
    def sk(cls, n: int, beta: float = 1.0, seed: int = 0):
        """Sherrington-Kirkpatrick: J_ij ~ N(0, 1 / n) for i < j, no field."""
        g = torch.Generator().manual_seed(seed)
        J = torch.triu(torch.randn((n, n), generator=g, dtype=torch.float64), 1) / np.sqrt(n)
        return cls(J, None, beta, name=f"sk(n={n}, beta={beta:g}, seed={seed})")

    @classmethod
    def grid(cls, rows: int, cols: int, beta: float = 0.4, h: float = 0.0):
        """Ferromagnetic nearest-neighbour Ising model on a rows x cols grid."""
        n = rows * cols
        J = torch.zeros((n, n), dtype=torch.float64)
        for r in range(rows):
            for c in range(cols):
                i = r * cols + c
                if c + 1 < cols:
                    J[i, i + 1] = 1.0
                if r + 1 < rows:
                    J[i, i + cols] = 1.0
        return cls(J, torch.full((n,), h, dtype=torch.float64), beta, name=f"ising-grid({rows}x{cols}, beta={beta:g})")

    def magnetisation_law(self) -> torch.Tensor:
        ones = all_cells(self.n, 2).sum(-1)
        return torch.zeros(self.n + 1, dtype=torch.float64).index_add_(0, ones, self.probs.reshape(-1))

    def exact_statistics(self) -> list[ExactStatistic]:
        return [pooled_statistic("number of ones", self.magnetisation_law(), lambda v: v.sum(-1))] + super().exact_statistics()
