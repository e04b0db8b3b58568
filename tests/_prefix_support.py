"""Test support: prefix-row rounds drafted over a given base (shared by the prefix-answer tests)."""

import torch

from autospec.oracles import PrefixRows


def drafted_prefix_rows(base: torch.Tensor, K: int, q: int, g: torch.Generator) -> PrefixRows:
    """Every prefix 0..K of a draft per row of base [A, n]: up to K distinct free columns per row, each drafted
    with probability 0.85, values uniform in [0, q) (a drafted value may be impossible)."""
    A = base.shape[0]
    columns = torch.zeros((A, K), dtype=torch.long)
    drafted = torch.zeros((A, K), dtype=torch.bool)
    for a in range(A):
        free = torch.nonzero(base[a] < 0).squeeze(-1)
        chosen = free[torch.randperm(free.numel(), generator=g)][:K]
        columns[a, : chosen.numel()] = chosen
        drafted[a, : chosen.numel()] = torch.rand(chosen.numel(), generator=g) < 0.85
    values = torch.randint(0, q, (A, K), generator=g)
    owner = torch.arange(A).repeat_interleave(K + 1)
    return PrefixRows(base, columns, values, drafted, owner, torch.arange(K + 1).repeat(A))
