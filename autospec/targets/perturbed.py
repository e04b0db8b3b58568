"""Draft oracles built from a target: tempered, mixed with noise, or another table.

A draft model for speculative decoding only has to be a known law per query;
these wrappers give drafts that are close to the target (temperature near 1,
small mixing weight) or far from it, with zeros where the target has mass and
the reverse (temperature -> 0 or a sparse table), which is where verification
rules are easiest to get wrong.

Each wrapper is a ``ConditionalOracle``: ``marginals(partial)`` -> [B, n, q].
Pinned coordinates answer their one-hot; infeasible pinnings answer the
finite placeholder (uniform on free coordinates), like every oracle here.
"""

from __future__ import annotations

import torch

from autospec.oracles import ConditionalOracle, OracleAnswer, placeholder_marginals

__all__ = ["TemperedOracle", "MixtureOracle", "tempered_law"]


def tempered_law(law: torch.Tensor, temperature: float) -> torch.Tensor:
    """law [..., q] -> law^(1/T) normalised; T = 0 is argmax (ties split evenly).

    Zeros stay zeros; a row of all zeros is returned unchanged.
    """
    law = law.to(torch.float64)
    if temperature == 0:
        top = law.max(-1, keepdim=True).values
        weights = ((law == top) & (top > 0)).to(torch.float64)
    else:
        weights = torch.where(law > 0, law.clamp(min=1e-300) ** (1.0 / temperature), torch.zeros_like(law))
    totals = weights.sum(-1, keepdim=True)
    return torch.where(totals > 0, weights / torch.where(totals > 0, totals, torch.ones_like(totals)), law)


def _wrap(partial: torch.Tensor, inner: ConditionalOracle):
    answer = inner.query(partial) if isinstance(inner, ConditionalOracle) else OracleAnswer(
        inner.marginals(partial), torch.ones(partial.shape[0], dtype=torch.bool, device=partial.device)
    )
    return answer.marginals.to(torch.float64), answer.feasible


class TemperedOracle(ConditionalOracle):
    """The target's conditionals raised to 1/temperature and renormalised, per coordinate.

    Not the conditionals of the tempered joint (that is ``TabularTarget`` of
    probs^(1/T)); this is what a sampler with a temperature knob actually
    drafts from.  temperature = 1 is the target itself; temperature = 0 is the
    argmax (a draft with zeros wherever the target has non-maximal mass).
    """

    def __init__(self, target, temperature: float, name: str | None = None):
        if not isinstance(temperature, (int, float)) or temperature < 0:
            raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
        self.inner = target.oracle() if hasattr(target, "oracle") else target
        self.n, self.q = int(self.inner.n), int(self.inner.q)
        self.temperature = float(temperature)
        self.name = name or f"tempered(T={temperature:g}, {getattr(self.inner, 'name', 'oracle')})"

    def answer(self, partial: torch.Tensor) -> OracleAnswer:
        marginals, feasible = _wrap(partial, self.inner)
        free = (partial < 0).unsqueeze(-1)
        out = torch.where(free, tempered_law(marginals, self.temperature), placeholder_marginals(partial, self.q))
        return OracleAnswer(out, feasible)


class MixtureOracle(ConditionalOracle):
    """(1 - weight) * target conditional + weight * other conditional, per coordinate.

    ``other`` is another target or oracle on the same (n, q) (for instance a
    different ``TabularTarget``), or None for the uniform law.  weight = 1 is
    the other table alone: a draft unrelated to the target.
    """

    def __init__(self, target, other=None, weight: float = 0.5, name: str | None = None):
        if not 0 <= weight <= 1:
            raise ValueError(f"weight must be in [0, 1], got {weight!r}")
        self.inner = target.oracle() if hasattr(target, "oracle") else target
        self.n, self.q = int(self.inner.n), int(self.inner.q)
        self.other = None if other is None else (other.oracle() if hasattr(other, "oracle") else other)
        if self.other is not None and (int(self.other.n), int(self.other.q)) != (self.n, self.q):
            raise ValueError(
                f"other must have the target's shape (n={self.n}, q={self.q}), got n={self.other.n}, q={self.other.q}"
            )
        self.weight = float(weight)
        self.name = name or f"mixture(w={weight:g}, {getattr(self.inner, 'name', 'oracle')}, " \
            f"{getattr(self.other, 'name', 'uniform')})"

    def answer(self, partial: torch.Tensor) -> OracleAnswer:
        marginals, feasible = _wrap(partial, self.inner)
        if self.other is None:
            other = torch.full_like(marginals, 1.0 / self.q)
        else:
            other, _ = _wrap(partial, self.other)
        mixed = (1 - self.weight) * marginals + self.weight * other
        free = (partial < 0).unsqueeze(-1)
        return OracleAnswer(torch.where(free, mixed, placeholder_marginals(partial, self.q)), feasible)
