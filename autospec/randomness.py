"""Every random draw a sampler makes goes through a ``Randomness`` object.

Two implementations share one interface:

* ``Randomness(seed)``: seeded draws from a ``torch.Generator``; the same seed
  gives the same draws bit for bit on CPU.
* ``ReplayRandomness``: forced choices, used by ``verification.exact_law`` to
  walk the whole tree of a sampler's random choices.  Each call is one node of
  that tree; a call that draws k values at once branches over their joint
  outcomes, and zero-probability outcomes are never children.

Samplers must draw *all* their randomness from the object they are given, and
only through ``categorical``, ``bernoulli``, ``permutation`` and ``normal``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Sequence

import torch

__all__ = [
    "RandomSource",
    "Randomness",
    "ReplayRandomness",
    "ChoiceNode",
    "NotEnumerableError",
    "PathTooDeepError",
    "ReplayMismatchError",
]

# Probabilities within this of 1 are treated as 1 when validating p in [0, 1];
# they arise from rounding in ratios such as min(1, p / d).
_PROB_SLACK = 1e-9


def _check_probs(probs: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(probs).__name__}")
    if not probs.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {probs.dtype}")
    if probs.dim() == 0:
        raise ValueError(f"{name} must have a last axis of categories, got a scalar")
    if probs.shape[-1] == 0:
        raise ValueError(f"{name} has an empty last axis: need at least one category")
    if not bool(torch.isfinite(probs).all()):
        raise ValueError(f"{name} contains NaN or infinite weights")
    if bool((probs < 0).any()):
        raise ValueError(f"{name} contains negative weights (min {probs.min().item():.3g})")
    total = probs.sum(-1)
    if bool((total <= 0).any()):
        bad = torch.nonzero(total <= 0)[0].tolist()
        raise ValueError(f"{name} has a row of all-zero weights at index {bad}: nothing to draw")
    return total


def _check_bernoulli(p: torch.Tensor) -> torch.Tensor:
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"p must be a torch.Tensor, got {type(p).__name__}")
    if not p.is_floating_point():
        raise TypeError(f"p must be a floating tensor, got dtype {p.dtype}")
    if not bool(torch.isfinite(p).all()):
        raise ValueError("p contains NaN or infinite probabilities")
    if bool(((p < -_PROB_SLACK) | (p > 1 + _PROB_SLACK)).any()):
        raise ValueError(
            f"p must lie in [0, 1], got values in [{p.min().item():.6g}, {p.max().item():.6g}]"
        )
    return p.clamp(0.0, 1.0)


def _check_permutation_args(batch: int, n: int) -> None:
    for name, value in (("batch", batch), ("n", n)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")


class RandomSource:
    """The interface samplers draw from (see the module docstring)."""

    device: torch.device

    def categorical(self, probs: torch.Tensor) -> torch.Tensor:
        """probs [..., q] non-negative weights (normalised per row) -> LongTensor [...]."""
        raise NotImplementedError

    def bernoulli(self, p: torch.Tensor) -> torch.Tensor:
        """p [...] in [0, 1] -> BoolTensor [...]."""
        raise NotImplementedError

    def permutation(self, batch: int, n: int) -> torch.Tensor:
        """-> LongTensor [batch, n], each row a uniformly random order of range(n)."""
        raise NotImplementedError

    def normal(self, shape: Sequence[int] | int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """-> standard normal tensor of the given shape (continuous: not enumerable)."""
        raise NotImplementedError


class Randomness(RandomSource):
    """Seeded randomness backed by a ``torch.Generator`` on ``device``."""

    def __init__(self, seed: int = 0, device: str | torch.device = "cpu"):
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self.seed = seed
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    def __repr__(self) -> str:
        return f"Randomness(seed={self.seed}, device='{self.device}')"

    def _uniform(self, shape: Sequence[int], dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return torch.rand(tuple(shape), generator=self.generator, device=self.device, dtype=dtype)

    def categorical(self, probs: torch.Tensor) -> torch.Tensor:
        total = _check_probs(probs, "probs")
        probs = probs.to(torch.float64)
        cdf = probs.cumsum(-1)
        # Inverse CDF: the first category whose cumulative weight exceeds u * total.
        # Zero-weight categories are never chosen (their cdf step is empty).
        u = self._uniform(probs.shape[:-1], torch.float64).to(probs.device) * total.to(torch.float64)
        index = torch.searchsorted(cdf, u.unsqueeze(-1), right=True).squeeze(-1)
        # Rounding can put u * total at the very top of the cdf; fall back to the
        # last category of positive weight, never a zero-weight one.
        last_positive = probs.shape[-1] - 1 - (probs.flip(-1) > 0).to(torch.int64).argmax(-1)
        return torch.minimum(index, last_positive)

    def bernoulli(self, p: torch.Tensor) -> torch.Tensor:
        p = _check_bernoulli(p)
        return self._uniform(p.shape, torch.float64).to(p.device) < p.to(torch.float64)

    def permutation(self, batch: int, n: int) -> torch.Tensor:
        _check_permutation_args(batch, n)
        return self._uniform((batch, n), torch.float64).argsort(dim=1)

    def normal(self, shape: Sequence[int] | int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        if isinstance(shape, int):
            shape = (shape,)
        return torch.randn(tuple(shape), generator=self.generator, device=self.device, dtype=dtype)


# --------------------------------------------------------------------------
# Enumeration: forced choices replayed through the same interface.
# --------------------------------------------------------------------------


class NotEnumerableError(RuntimeError):
    """A sampler drew from a continuous distribution under enumeration."""


class PathTooDeepError(RuntimeError):
    """A path of random choices exceeded the enumeration depth limit."""


class ReplayMismatchError(RuntimeError):
    """Replaying the same forced choices produced a different call sequence."""


@dataclass
class ChoiceNode:
    """One random call seen as a node of the choice tree.

    ``supports[e]`` lists the possible outcomes of element e (values with
    positive probability) and ``weights[e]`` their probabilities; the node's
    children are the joint outcomes, enumerated in mixed radix.
    """

    kind: str
    shape: tuple[int, ...]
    supports: list[tuple]
    weights: list[tuple[float, ...]]
    fingerprint: tuple = field(repr=False, default=())

    @property
    def num_children(self) -> int:
        return math.prod(len(s) for s in self.supports)

    def child(self, index: int) -> tuple[list, float]:
        """Outcome per element and the joint probability of child ``index``."""
        outcome, prob = [], 1.0
        for support, weight in zip(reversed(self.supports), reversed(self.weights)):
            index, digit = divmod(index, len(support))
            outcome.append(support[digit])
            prob *= weight[digit]
        outcome.reverse()
        return outcome, prob


def _categorical_node(probs: torch.Tensor) -> ChoiceNode:
    total = _check_probs(probs, "probs")
    normalised = (probs.to(torch.float64) / total.to(torch.float64).unsqueeze(-1)).reshape(-1, probs.shape[-1])
    rows = normalised.cpu().tolist()
    supports = [tuple(i for i, w in enumerate(row) if w > 0) for row in rows]
    weights = [tuple(row[i] for i in s) for s, row in zip(supports, rows)]
    return ChoiceNode("categorical", tuple(probs.shape[:-1]), supports, weights, tuple(map(tuple, rows)))


def _bernoulli_node(p: torch.Tensor) -> ChoiceNode:
    flat = _check_bernoulli(p).to(torch.float64).reshape(-1).cpu().tolist()
    supports, weights = [], []
    for pe in flat:
        outcomes = [(False, 1.0 - pe), (True, pe)]
        outcomes = [(v, w) for v, w in outcomes if w > 0]
        supports.append(tuple(v for v, _ in outcomes))
        weights.append(tuple(w for _, w in outcomes))
    return ChoiceNode("bernoulli", tuple(p.shape), supports, weights, tuple(flat))


def _permutation_node(batch: int, n: int, max_children: int) -> ChoiceNode:
    _check_permutation_args(batch, n)
    if math.factorial(n) ** batch > max_children:
        raise NotEnumerableError(
            f"permutation(batch={batch}, n={n}) has {math.factorial(n)}^{batch} outcomes, "
            f"more than the enumeration limit {max_children}; use a smaller n"
        )
    perms = tuple(itertools.permutations(range(n)))
    weight = 1.0 / len(perms)
    supports = [perms] * batch
    weights = [tuple([weight] * len(perms))] * batch
    return ChoiceNode("permutation", (batch, n), supports, weights, (batch, n))


class ReplayRandomness(RandomSource):
    """Replays ``forced`` child indices, then takes child 0 at every new node.

    ``nodes`` holds the nodes met so far (the forced ones first); new nodes are
    appended.  ``probability`` is the product of the chosen children's
    probabilities, i.e. the probability of the path taken.
    """

    def __init__(
        self,
        forced: Sequence[int],
        nodes: list[ChoiceNode],
        device: str | torch.device = "cpu",
        max_depth: int = 10_000,
        max_children: int = 10**7,
        tolerance: float = 1e-12,
    ):
        self.forced = list(forced)
        self.nodes = nodes
        self.device = torch.device(device)
        self.max_depth = max_depth
        self.max_children = max_children
        self.tolerance = tolerance
        self.calls = 0
        self.probability = 1.0
        self.path: list[int] = []

    def _choose(self, node: ChoiceNode) -> list:
        depth = self.calls
        if depth >= self.max_depth:
            raise PathTooDeepError(f"more than {self.max_depth} random calls on one path")
        if depth < len(self.forced):
            recorded = self.nodes[depth]
            if not _same_distribution(recorded, node, self.tolerance):
                raise ReplayMismatchError(
                    f"random call #{depth + 1} differs between two runs with the same forced choices "
                    f"(first run: {recorded.kind} of shape {recorded.shape}; this run: {node.kind} of "
                    f"shape {node.shape}). The sampler draws randomness outside the rng it was given "
                    f"(global torch/numpy/random state, time, ...) or is otherwise not deterministic "
                    f"given its rng."
                )
            index = self.forced[depth]
            node = recorded
        else:
            if node.num_children > self.max_children:
                raise NotEnumerableError(
                    f"a {node.kind} call of shape {node.shape} has {node.num_children} joint "
                    f"outcomes, more than the enumeration limit {self.max_children}"
                )
            self.nodes.append(node)
            index = 0
        outcome, prob = node.child(index)
        self.probability *= prob
        self.path.append(index)
        self.calls += 1
        return outcome

    def categorical(self, probs: torch.Tensor) -> torch.Tensor:
        node = _categorical_node(probs)
        outcome = self._choose(node)
        return torch.tensor(outcome, dtype=torch.long, device=probs.device).reshape(node.shape)

    def bernoulli(self, p: torch.Tensor) -> torch.Tensor:
        node = _bernoulli_node(p)
        outcome = self._choose(node)
        return torch.tensor(outcome, dtype=torch.bool, device=p.device).reshape(node.shape)

    def permutation(self, batch: int, n: int) -> torch.Tensor:
        node = _permutation_node(batch, n, self.max_children)
        outcome = self._choose(node)
        return torch.tensor(outcome, dtype=torch.long, device=self.device).reshape(batch, n)

    def normal(self, shape: Sequence[int] | int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        raise NotEnumerableError(
            "normal() draws from a continuous law, which cannot be enumerated; exact_law "
            "applies to samplers with finitely many random outcomes per call"
        )


def _same_distribution(a: ChoiceNode, b: ChoiceNode, tolerance: float) -> bool:
    if a.kind != b.kind or a.shape != b.shape or a.supports != b.supports:
        return False
    if a.kind == "permutation":
        return True
    return all(
        abs(x - y) <= tolerance
        for wa, wb in zip(a.weights, b.weights)
        for x, y in zip(wa, wb)
    )
