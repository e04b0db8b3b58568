"""Every random draw a sampler makes goes through a ``Randomness`` object.

Two implementations share one interface:

* ``Randomness(seed)``: seeded draws from a ``torch.Generator``; the same seed
  gives the same draws bit for bit on CPU.
* ``ReplayRandomness``: forced choices, used by ``verification.exact_law`` to
  walk the whole tree of a sampler's random choices.  Each call is one node of
  that tree; a call that draws k values at once branches over their joint
  outcomes, and zero-probability outcomes are never children.
* ``BatchReplayRandomness``: the same replay for many paths at once, one
  sample (row) per path, so that a vectorised sampler walks thousands of
  paths in one run.  Each row gets its own slice of every call and its own
  forced choices.

Samplers must draw *all* their randomness from the object they are given, and
only through ``categorical``, ``bernoulli``, ``permutation`` and ``normal``.
Every call draws for all ``num_samples`` samples (leading axis one entry per
sample), or, through ``rng.for_rows(samples)``, for the listed samples only
(leading axis one entry per listed sample): a sampler that drops finished
samples from its calls says which samples remain, so that the batched replay
can hand each one its own choices.
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
    "BatchReplayRandomness",
    "NotRowwiseError",
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
    total = probs.sum(-1)
    if probs.numel():  # every check from three numbers, one synchronisation
        lowest, least_total, most_total = torch.stack([probs.amin(), total.amin(), total.amax()]).tolist()
        if lowest >= 0 and least_total > 0 and most_total < math.inf:
            return total  # (NaN fails >= 0; a finite sum of non-negative weights has every weight finite)
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

    def for_rows(self, samples: torch.Tensor) -> RandomSource:
        """The source for calls that draw for ``samples`` only (LongTensor [A], distinct sample indices).

        The leading axis of every call made through it has one entry per listed
        sample, in that order.  Indices are always those of the sampler's
        ``num_samples`` samples (a view's ``for_rows`` is the source's own).
        Seeded randomness draws exactly as without it; the batched enumerator
        uses it to give each sample its own forced choices.
        """
        return self


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
        # The first category whose cdf exceeds u * total has positive weight (a zero-weight one repeats its
        # predecessor's cdf), unless rounding put u * total at the very top of the cdf: then index = K, and
        # the draw falls back to the last category of positive weight, never a zero-weight one.
        if bool((index >= probs.shape[-1]).any()):
            last_positive = probs.shape[-1] - 1 - (probs.flip(-1) > 0).to(torch.int64).argmax(-1)
            index = torch.minimum(index, last_positive)
        return index

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


# --------------------------------------------------------------------------
# Batched enumeration: one forced path per sample.
# --------------------------------------------------------------------------


class NotRowwiseError(RuntimeError):
    """A call's leading axis is not one entry per sample, so it cannot be split by rows."""


_PERMUTATIONS: dict[int, torch.Tensor] = {}


def _all_permutations(n: int) -> torch.Tensor:
    """[n!, n], in itertools order (the children order of ``ReplayRandomness``)."""
    if n not in _PERMUTATIONS:
        _PERMUTATIONS[n] = torch.tensor(list(itertools.permutations(range(n))), dtype=torch.long).reshape(-1, n)
    return _PERMUTATIONS[n]


class BatchReplayRandomness(RandomSource):
    """Replays one forced path per sample (row); rows are independent replays.

    The tree is that of ``ReplayRandomness`` with ``num_samples = 1``: row r's
    slice of a call is one node, whose children are the joint outcomes of the
    slice's elements (mixed radix, last element fastest; zero-probability
    outcomes are not children).  Nodes with a single child carry no choice and
    are not recorded, so rows may meet different numbers of such calls (a
    padded slot, a finished row drawing from a point mass) without changing
    their path.

    Inputs, for B rows and paths of up to L choices:
      forced [B, L]   child index at each recorded (branching) node of the prefix
      lengths [B]     how many of them are forced; beyond, child 0 is taken
      children [B, L] the number of children the prefix's nodes had when recorded
      fork_prob [B]   the probability of the prefix before its last node (checked)
    After the run:
      probability [B]     the probability of each row's path
      depth [B]           branching nodes met; path[:, :depth], children, before
      path, children [B, L'], before [B, L'] (path probability before each node)
    """

    def __init__(
        self,
        forced: torch.Tensor,
        lengths: torch.Tensor,
        children: torch.Tensor | None = None,
        fork_prob: torch.Tensor | None = None,
        max_depth: int = 10_000,
        max_children: int = 10**7,
        tolerance: float = 1e-12,
        device: str | torch.device = "cpu",
    ):
        self.device = torch.device(device)
        B, L = forced.shape
        self.num_rows = B
        self.lengths = lengths.to(torch.long)
        self.expected_children = children
        self.fork_prob = fork_prob
        self.max_depth = max_depth
        self.max_children = max_children
        self.tolerance = tolerance
        capacity = max(L, 8)
        self.path = torch.zeros((B, capacity), dtype=torch.long)
        self.path[:, :L] = forced
        self.children = torch.ones((B, capacity), dtype=torch.long)
        self.before = torch.ones((B, capacity), dtype=torch.float64)
        self.depth = torch.zeros(B, dtype=torch.long)
        self.calls = torch.zeros(B, dtype=torch.long)
        self.probability = torch.ones(B, dtype=torch.float64)
        self.too_deep = torch.zeros(B, dtype=torch.bool)

    # ---------------------------------------------------------------- rows
    def for_rows(self, samples: torch.Tensor) -> RandomSource:
        return _RowView(self, samples)

    def _all_rows(self, leading: tuple[int, ...], what: str) -> torch.Tensor:
        if self.num_rows == 1:  # one path: the whole call is its node, whatever its shape
            return torch.zeros(1, dtype=torch.long)
        if len(leading) == 0 or leading[0] != self.num_rows:
            raise NotRowwiseError(
                f"a {what} call of shape {list(leading)} does not have one entry per sample "
                f"({self.num_rows}) on its leading axis, and no rng.for_rows(...) said which samples it is for"
            )
        return torch.arange(self.num_rows)

    @staticmethod
    def _elements(x: torch.Tensor, rows: torch.Tensor, trailing: int) -> torch.Tensor:
        """Reshape a call's tensor [A, ...] (or any shape when A = 1) to [A, E, *trailing dims]."""
        tail = x.shape[x.dim() - trailing:] if trailing else ()
        return x.reshape(rows.numel(), -1, *tail)

    # ---------------------------------------------------------------- one node per row
    def _choose(self, rows: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """counts [A, E] outcomes per element -> digits [A, E], the chosen outcome of each element."""
        A, E = counts.shape
        if A == 0 or E == 0:
            return counts.new_zeros((A, E))
        log_children = counts.to(torch.float64).log().sum(-1)
        if bool((log_children > math.log(self.max_children) + 1e-9).any()):
            raise NotEnumerableError(
                f"a call with {E} elements per sample has up to {math.exp(float(log_children.max())):.3g} joint "
                f"outcomes, more than the enumeration limit {self.max_children}"
            )
        children = counts.prod(-1)
        self.calls[rows] += 1
        if bool((self.calls[rows] > self.max_depth).any()):
            self.too_deep[rows[self.calls[rows] > self.max_depth]] = True
            raise PathTooDeepError(f"more than {self.max_depth} random calls on one path")
        branching = children > 1
        index = torch.zeros(A, dtype=torch.long)
        if bool(branching.any()):
            r = rows[branching]
            d = self.depth[r]
            kids = children[branching]
            forced = d < self.lengths[r]
            chosen = torch.where(forced, self.path[r, d.clamp(max=self.path.shape[1] - 1)], torch.zeros_like(d))
            if bool(forced.any()):
                self._check_replay(r[forced], d[forced], kids[forced], chosen[forced])
            if int(d.max()) >= self.path.shape[1]:
                self._grow(int(d.max()) + 1)
            self.path[r, d] = chosen
            self.children[r, d] = kids
            self.before[r, d] = self.probability[r]
            self.depth[r] = d + 1
            index[branching] = chosen
        # Mixed radix, last element least significant (as ChoiceNode.child).
        place = torch.cat([counts.flip(-1).cumprod(-1).flip(-1)[:, 1:], counts.new_ones(A, 1)], dim=1)
        return (index.unsqueeze(1) // place) % counts

    def _check_replay(self, r, d, kids, chosen) -> None:
        recorded = self.expected_children[r, d] if self.expected_children is not None else kids
        at_fork = d == self.lengths[r] - 1
        fork_ok = torch.ones_like(at_fork)
        if self.fork_prob is not None and bool(at_fork.any()):
            then, now = self.fork_prob[r[at_fork]], self.probability[r[at_fork]]
            fork_ok[at_fork] = (then - now).abs() <= self.tolerance * torch.maximum(then, torch.ones_like(then))
        bad = (recorded != kids) | (chosen >= kids) | ~fork_ok
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0])
            raise ReplayMismatchError(
                f"random call with {int(kids[i])} outcomes on a replayed path of sample {int(r[i])}, where an "
                f"earlier run with the same choices had {int(recorded[i])} (or a different path probability). "
                "The sampler draws randomness outside the rng it was given (global torch/numpy/random state, "
                "time, ...) or is otherwise not deterministic given its rng."
            )

    def _grow(self, needed: int) -> None:
        capacity = max(needed, 2 * self.path.shape[1])
        B, old = self.path.shape

        def grown(t, fill):
            out = torch.full((B, capacity), fill, dtype=t.dtype)
            out[:, :old] = t
            return out

        self.path, self.children, self.before = grown(self.path, 0), grown(self.children, 1), grown(self.before, 1.0)

    def _multiply(self, rows: torch.Tensor, weights: torch.Tensor) -> None:
        """Multiply each row's path probability by its node's chosen joint outcome (weights [A, E])."""
        if rows.numel():
            self.probability[rows] *= weights.prod(-1)

    # ---------------------------------------------------------------- the interface
    def _categorical(self, probs: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        total = _check_probs(probs, "probs")
        rows = self._all_rows(tuple(probs.shape[:-1]), "categorical") if rows is None else rows
        weights = self._elements(probs.to(torch.float64) / total.to(torch.float64).unsqueeze(-1), rows, 1).cpu()
        support = weights > 0  # [A, E, q]
        digits = self._choose(rows, support.sum(-1))
        # the digit-th category of positive weight
        rank = support.cumsum(-1) - 1
        value = (support & (rank == digits.unsqueeze(-1))).to(torch.int8).argmax(-1)
        self._multiply(rows, weights.gather(-1, value.unsqueeze(-1)).squeeze(-1))
        return value.reshape(probs.shape[:-1]).to(probs.device)

    def _bernoulli(self, p: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        p = _check_bernoulli(p)
        rows = self._all_rows(tuple(p.shape), "bernoulli") if rows is None else rows
        p_true = self._elements(p.to(torch.float64), rows, 0).cpu()
        p_false = 1.0 - p_true
        has_false = p_false > 0
        digits = self._choose(rows, has_false.to(torch.long) + (p_true > 0).to(torch.long))
        value = torch.where(has_false, digits == 1, torch.ones_like(has_false))  # outcomes in order (False, True)
        self._multiply(rows, torch.where(value, p_true, p_false))
        return value.reshape(p.shape).to(p.device)

    def _permutation(self, batch: int, n: int, rows: torch.Tensor | None) -> torch.Tensor:
        _check_permutation_args(batch, n)
        if rows is None:
            rows = self._all_rows((batch,), "permutation")
        per_row = batch // max(rows.numel(), 1) if rows.numel() else 0  # one path: the batch of orders is one node
        if rows.numel() and math.factorial(n) ** per_row > self.max_children:
            raise NotEnumerableError(
                f"permutation(batch={batch}, n={n}) has {math.factorial(n)}^{per_row} outcomes per sample, more "
                f"than the enumeration limit {self.max_children}; use a smaller n"
            )
        perms = _all_permutations(n)
        counts = torch.full((rows.numel(), per_row), perms.shape[0], dtype=torch.long)
        digits = self._choose(rows, counts)
        self._multiply(rows, torch.full(digits.shape, 1.0 / perms.shape[0], dtype=torch.float64))
        return perms[digits.reshape(-1)].reshape(batch, n).to(self.device)

    def categorical(self, probs: torch.Tensor) -> torch.Tensor:
        return self._categorical(probs, None)

    def bernoulli(self, p: torch.Tensor) -> torch.Tensor:
        return self._bernoulli(p, None)

    def permutation(self, batch: int, n: int) -> torch.Tensor:
        return self._permutation(batch, n, None)

    def normal(self, shape: Sequence[int] | int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        raise NotEnumerableError(
            "normal() draws from a continuous law, which cannot be enumerated; exact_law "
            "applies to samplers with finitely many random outcomes per call"
        )


class _RowView(RandomSource):
    """Calls of a ``BatchReplayRandomness`` for the listed samples only (see ``RandomSource.for_rows``)."""

    def __init__(self, base: BatchReplayRandomness, samples: torch.Tensor):
        if not isinstance(samples, torch.Tensor) or samples.dim() != 1 or samples.dtype.is_floating_point:
            raise TypeError("for_rows expects a 1-d integer tensor of sample indices")
        rows = samples.to(device="cpu", dtype=torch.long)
        if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= base.num_rows):
            raise ValueError(f"for_rows: sample indices must lie in [0, {base.num_rows - 1}]")
        if rows.numel() != torch.unique(rows).numel():
            raise ValueError("for_rows: sample indices must be distinct (one entry per sample on the leading axis)")
        self.base, self.rows, self.device = base, rows, base.device

    def for_rows(self, samples: torch.Tensor) -> RandomSource:
        return self.base.for_rows(samples)

    def _check(self, leading: tuple[int, ...], what: str) -> None:
        if len(leading) == 0 or leading[0] != self.rows.numel():
            raise ValueError(
                f"a {what} call through rng.for_rows(samples) has leading shape {list(leading)}; expected one "
                f"entry per listed sample ({self.rows.numel()})"
            )

    def categorical(self, probs: torch.Tensor) -> torch.Tensor:
        self._check(tuple(probs.shape[:-1]), "categorical")
        return self.base._categorical(probs, self.rows)

    def bernoulli(self, p: torch.Tensor) -> torch.Tensor:
        self._check(tuple(p.shape), "bernoulli")
        return self.base._bernoulli(p, self.rows)

    def permutation(self, batch: int, n: int) -> torch.Tensor:
        self._check((batch,), "permutation")
        return self.base._permutation(batch, n, self.rows)

    def normal(self, shape: Sequence[int] | int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return self.base.normal(shape, dtype)
