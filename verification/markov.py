"""Exact verification of samplers that are Markov chains (exact only in the limit).

A kernel is itself a sampler with a start state: ``make_kernel(start)`` returns
a sampler whose output is one step (or T steps) of the chain from ``start``.
The existing enumerator (``verification.exact_law``) then gives its exact
output law, so on a space small enough to enumerate:

* ``kernel_matrix``: K[x, y] = P(one step from x lands on y), every row a proof;
* ``stationarity``: mu K = mu to float64 precision (TV(mu K, mu) ~ 1e-15);
* ``t_step_law`` / ``tv_curve``: mu_0 K^T by matrix powers, so the chain's
  error after T steps is a number, not an estimate;
* ``geweke_check``: for kernels beyond enumeration, draw x ~ mu exactly, run the
  kernel, and test that the result is still distributed as mu (one-sample
  chi-square on the full table or on the target's exact statistics).

Targets: anything with ``n``, ``q``, ``oracle()`` and either ``probs`` (a table)
or ``to_tabular()`` (structured targets; their own oracle is kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from autospec.targets.structured import all_cells
from verification.exact import exact_law

__all__ = [
    "TableTarget",
    "as_table_target",
    "KernelMatrix",
    "kernel_matrix",
    "stationarity",
    "StationarityResult",
    "t_step_law",
    "tv_curve",
    "geweke_check",
    "GewekeResult",
]


@dataclass
class TableTarget:
    """A target's own oracle together with its exact table (what ``exact_law`` needs)."""

    n: int
    q: int
    probs: torch.Tensor
    source: object
    name: str

    def oracle(self, device="cpu"):
        return self.source.oracle(device)


def as_table_target(target) -> TableTarget:
    """``target`` with ``probs`` [q]*n available, keeping its own oracle (structured targets are tabulated)."""
    if hasattr(target, "probs"):
        probs = target.probs
    elif hasattr(target, "to_tabular"):
        probs = target.to_tabular().probs
    else:
        raise TypeError(f"target {target!r} has neither probs nor to_tabular(): its law cannot be tabulated")
    return TableTarget(int(target.n), int(target.q), torch.as_tensor(probs, dtype=torch.float64), target,
                       getattr(target, "name", type(target).__name__))


@dataclass
class KernelMatrix:
    """K [S, S] over the states of ``cells`` [S, n] (row-major order of the target's table)."""

    matrix: np.ndarray
    cells: torch.Tensor
    rows: np.ndarray  # indices of the states whose rows were enumerated (the others are NaN)
    unexplored_mass: float  # the largest unexplored mass of any row
    leaves: int


def kernel_matrix(make_kernel: Callable[[torch.Tensor], object], target, states: str = "support",
                  max_leaves: int = 2_000_000) -> KernelMatrix:
    """Enumerate ``make_kernel(x)`` from every state x (``states``: "support" = mu(x) > 0, or "all").

    Rows of states not enumerated are NaN.  ``make_kernel(x)`` gets x as a LongTensor [n].
    """
    table = as_table_target(target)
    if states not in ("support", "all"):
        raise ValueError(f"states must be 'support' or 'all', got {states!r}")
    cells = all_cells(table.n, table.q)
    mu = table.probs.reshape(-1).numpy()
    size = cells.shape[0]
    K = np.full((size, size), np.nan)
    chosen = np.nonzero(mu > 0)[0] if states == "support" else np.arange(size)
    worst, leaves = 0.0, 0
    for s in chosen:
        law = exact_law(make_kernel(cells[s].clone()), table, max_leaves=max_leaves)
        K[s] = law.probs.reshape(-1).numpy()
        worst = max(worst, law.unexplored_mass)
        leaves += law.leaves
    return KernelMatrix(K, cells, chosen, worst, leaves)


@dataclass
class StationarityResult:
    """tv = TV(mu K, mu); max_abs = max |mu K - mu|; row_sums_error = max |1 - sum_y K[x, y]|."""

    tv: float
    max_abs: float
    row_sums_error: float
    unexplored_mass: float

    @property
    def stationary(self) -> bool:
        return self.tv < 1e-12 and self.unexplored_mass < 1e-12


def stationarity(kernel: KernelMatrix, target) -> StationarityResult:
    """Exact check of mu K = mu (only rows of the support enter: mu vanishes elsewhere)."""
    mu = as_table_target(target).probs.reshape(-1).numpy()
    rows = kernel.rows
    if np.any(mu[np.setdiff1d(np.arange(mu.size), rows)] > 0):
        raise ValueError("the kernel matrix lacks rows of states in the support of mu; enumerate with states='support'")
    pushed = mu[rows] @ kernel.matrix[rows]
    return StationarityResult(
        tv=0.5 * float(np.abs(pushed - mu).sum()),
        max_abs=float(np.abs(pushed - mu).max()),
        row_sums_error=float(np.abs(1.0 - kernel.matrix[rows].sum(1)).max()),
        unexplored_mass=kernel.unexplored_mass,
    )


def _start_vector(start, kernel: KernelMatrix) -> np.ndarray:
    size = kernel.matrix.shape[0]
    if isinstance(start, np.ndarray) and start.shape == (size,):
        return start.astype(np.float64)
    x = torch.as_tensor(start, dtype=torch.long).reshape(1, -1)
    match = np.nonzero((kernel.cells == x).all(1).numpy())[0]
    if match.size != 1:
        raise ValueError(f"start {x.tolist()} is not a state of the kernel")
    vector = np.zeros(size)
    vector[match[0]] = 1.0
    return vector


def t_step_law(kernel: KernelMatrix, start, steps: int) -> np.ndarray:
    """mu_0 K^T [S]; ``start`` a state [n] or a law [S].  The walk must stay on enumerated rows."""
    law = _start_vector(start, kernel)
    K = np.nan_to_num(kernel.matrix, nan=0.0)
    outside = np.setdiff1d(np.arange(law.size), kernel.rows)
    for _ in range(steps):
        if np.any(law[outside] > 0):
            raise ValueError("the chain reached a state whose row was not enumerated; use states='all'")
        law = law @ K
    return law


def tv_curve(kernel: KernelMatrix, target, start, steps: list[int]) -> list[tuple[int, float]]:
    """[(T, TV(mu_0 K^T, mu))] for each T in ``steps`` (increasing)."""
    mu = as_table_target(target).probs.reshape(-1).numpy()
    out, law, done = [], _start_vector(start, kernel), 0
    K = np.nan_to_num(kernel.matrix, nan=0.0)
    for T in sorted(steps):
        for _ in range(T - done):
            law = law @ K
        done = T
        out.append((T, 0.5 * float(np.abs(law - mu).sum())))
    return out


@dataclass
class GewekeResult:
    p_value: float
    alpha: float
    num_samples: int
    test: str

    @property
    def passed(self) -> bool:
        return self.p_value >= self.alpha


def geweke_check(make_kernel: Callable[[torch.Tensor], object], target, num_samples: int, alpha: float,
                 seed: int = 0) -> GewekeResult:
    """x ~ mu exactly (the target's own sequential sampler), then one kernel run from each x; test law = mu.

    ``make_kernel(x [N, n])`` returns a sampler started at the N states.  The test is the
    chi-square on the full table when q^n is small, else Holm-combined tests of the target's
    exact statistics.  Stationary kernels pass with probability >= 1 - alpha.
    """
    from autospec import Randomness
    from autospec.samplers import Sequential
    from verification import gof

    rng = Randomness(seed)
    oracle = target.oracle()
    start = Sequential().sample(oracle, num_samples, rng).values
    values = make_kernel(start).sample(oracle, num_samples, rng).values
    if hasattr(target, "probs") or target.q ** target.n <= 4096:
        table = as_table_target(target).probs.reshape(-1).numpy()
        strides = target.q ** torch.arange(target.n - 1, -1, -1)
        counts = np.bincount((values * strides).sum(1).numpy(), minlength=table.size)
        result = gof.pearson(counts, table, alpha=alpha, seed=seed)
        return GewekeResult(float(result.p_value), alpha, num_samples, "pearson chi-square on the full table")
    result = gof.marginal_tests(values, target.exact_statistics(), alpha=alpha, seed=seed)
    return GewekeResult(float(result.p_value), alpha, num_samples, "exact statistics (Holm)")
