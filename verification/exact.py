"""The exact output law of a sampler, by enumerating every random choice it makes.

Every random call is a node of a tree whose children are the call's joint
outcomes of positive probability (the tree of the sampler run with
``num_samples = 1``).  A path is a sequence of child indices; replaying it
with forced choices, and taking child 0 at every node beyond, gives a leaf:
an output and the product of the chosen children's probabilities.  Every leaf
spawns the unvisited siblings along its new nodes, so each replay finds one
new leaf.  Summing over all leaves gives the output law in float64: a proof
of exactness on that instance (TV ~ 1e-12 for a correct sampler), not a test.

Batched (the default): the samplers are vectorised over samples, so one run
with ``num_samples = B`` replays B paths, sample r following path r
(``BatchReplayRandomness``).  A sampler whose calls are not one entry per
sample (and that does not say which samples a call is for, see
``RandomSource.for_rows``) is enumerated one path per run, as is a batch that
runs past ``max_depth``.  One path per batch is replayed again on its own and
must give the same output and probability (else the sampler's samples are not
independent replays and the enumeration restarts one path per run).

Randomness drawn outside ``rng`` (the global torch, numpy or ``random``
generators) is detected on every run by comparing their states before and
after: a ``SamplerContractError`` names the generator.

Paths longer than ``max_depth`` random calls, and whatever lies beyond
``max_leaves`` runs, are not explored; their mass is reported as
``unexplored_mass``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch

from autospec.randomness import (
    BatchReplayRandomness,
    ChoiceNode,
    NotRowwiseError,
    PathTooDeepError,
    ReplayRandomness,
)
from verification.running import GlobalGenerators, SamplerContractError, check_sampler_object, output_values

__all__ = ["ExactLaw", "exact_law", "SamplerContractError"]

DEFAULT_BATCH = 8192


@dataclass
class ExactLaw:
    """probs: the sampler's output law, shaped like the target's table."""

    probs: torch.Tensor
    target_probs: torch.Tensor
    unexplored_mass: float
    leaves: int
    expected_rounds: float | None = None
    expected_queries: float | None = None
    worst_cells: list[dict] = field(default_factory=list)
    batched: bool = False  # whether paths were replayed many per run

    @property
    def tv(self) -> float:
        """Total variation between the explored law and the target (unexplored mass not included)."""
        return 0.5 * float((self.probs - self.target_probs).abs().sum())

    @property
    def tv_bounds(self) -> tuple[float, float]:
        """Bounds on the TV of the full output law, whatever the unexplored mass does."""
        return max(0.0, self.tv - self.unexplored_mass), self.tv + self.unexplored_mass

    def summary(self) -> str:
        lines = [f"exact law over {self.leaves} paths: TV = {self.tv:.3e}, unexplored mass = {self.unexplored_mass:.3e}"]
        for cell in self.worst_cells[:5]:
            lines.append(f"  cell {cell['cell']}: sampler {cell['sampler']:.6g} vs target {cell['target']:.6g}")
        return "\n".join(lines)


def _values_of(output, n: int) -> tuple[torch.Tensor, float | None, float | None]:
    values = _values_tensor(output, n, 1)
    rounds = getattr(output, "rounds", None)
    queries = getattr(output, "queries", None)
    return values, (float(rounds.sum()) if rounds is not None else None), (float(queries.sum()) if queries is not None else None)


def exact_law(
    sampler,
    target,
    max_leaves: int = 2_000_000,
    max_depth: int = 10_000,
    recheck_every: int = 97,
    tolerance: float = 1e-12,
    batched: bool = True,
    batch_size: int = DEFAULT_BATCH,
) -> ExactLaw:
    """Exact output law of ``sampler`` on ``target`` (a target with ``probs`` and ``oracle()``).

    ``batched``: replay up to ``batch_size`` paths per run (the default), or
    one path per run depth-first (the previous implementation, kept for
    comparison).  ``recheck_every`` (depth-first only): every so many leaves,
    run the same path again and compare outputs.
    """
    check_sampler_object(sampler)
    if not batched:
        return _exact_law_depth_first(sampler, target, max_leaves, max_depth, recheck_every, tolerance)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    try:
        return _exact_law_batched(sampler, target, max_leaves, max_depth, tolerance, batch_size)
    except NotRowwiseError:
        # Calls not split by sample: one path per run is the tree itself.
        return _exact_law_batched(sampler, target, max_leaves, max_depth, tolerance, 1)


@dataclass
class _Paths:
    """Paths still to replay: forced [F, L] child indices, the first lengths [F] of them forced;
    children [F, L] the recorded children counts of those nodes; fork_prob [F] the path
    probability before the last forced node."""

    forced: torch.Tensor
    lengths: torch.Tensor
    children: torch.Tensor
    fork_prob: torch.Tensor

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def split(self, size: int) -> tuple[_Paths, _Paths]:
        """(all but the last size paths, the last size paths)"""
        cut = len(self) - size
        head = _Paths(self.forced[:cut], self.lengths[:cut], self.children[:cut], self.fork_prob[:cut])
        tail = _Paths(self.forced[cut:], self.lengths[cut:], self.children[cut:], self.fork_prob[cut:])
        return head, tail

    def row(self, i: int) -> _Paths:
        return _Paths(self.forced[i : i + 1], self.lengths[i : i + 1], self.children[i : i + 1], self.fork_prob[i : i + 1])


class _BatchTooDeep(Exception):
    pass


def _exact_law_batched(sampler, target, max_leaves, max_depth, tolerance, batch_size) -> ExactLaw:
    n, q = target.n, target.q
    oracle = target.oracle()
    target_probs = target.probs.to(torch.float64).cpu()
    law = torch.zeros(q**n, dtype=torch.float64)
    strides = q ** torch.arange(n - 1, -1, -1)
    root = _Paths(torch.zeros((1, 0), dtype=torch.long), torch.zeros(1, dtype=torch.long),
                  torch.ones((1, 0), dtype=torch.long), torch.ones(1, dtype=torch.float64))
    stack = [root]
    explored = torch.zeros((), dtype=torch.float64)
    rounds_sum = torch.zeros((), dtype=torch.float64)
    queries_sum = torch.zeros((), dtype=torch.float64)
    leaves, runs, has_counts = 0, 0, True
    while stack and leaves < max_leaves:
        paths = stack.pop()
        size = min(batch_size, max_leaves - leaves)
        if len(paths) > size:
            head, paths = paths.split(size)
            stack.append(head)
        try:
            rng, output = _replay(sampler, oracle, paths, max_depth, tolerance)
        except _BatchTooDeep:
            stack.extend(paths.row(i) for i in range(len(paths)))  # one at a time: the deep one is cut off alone
            continue
        leaves += len(paths)
        runs += 1
        if output is not None:
            values, rounds, queries = _batch_values(output, n, q, len(paths))
            short = rng.depth < paths.lengths
            if bool(short.any()):
                raise SamplerContractError(
                    f"the sampler finished after {int(rng.depth[short][0])} branching random calls where an earlier "
                    f"run with the same choices made {int(paths.lengths[short][0])}: it is not deterministic given its rng"
                )
            if len(paths) > 1:
                _recheck_one_row(sampler, oracle, rng, runs % len(paths), values, rounds, queries, max_depth, tolerance)
            law.index_add_(0, (values * strides).sum(1), rng.probability)
            explored += rng.probability.sum()
            if rounds is None or queries is None:
                has_counts = False
            else:
                rounds_sum += (rng.probability * rounds).sum()
                queries_sum += (rng.probability * queries).sum()
        siblings = _siblings(rng, paths.lengths)
        if len(siblings):
            stack.append(siblings)
    probs = law.reshape((q,) * n)
    explored_mass = float(explored)
    return ExactLaw(
        probs=probs,
        target_probs=target_probs,
        unexplored_mass=max(0.0, 1.0 - explored_mass),
        leaves=leaves,
        expected_rounds=float(rounds_sum) / explored_mass if has_counts and explored_mass > 0 else None,
        expected_queries=float(queries_sum) / explored_mass if has_counts and explored_mass > 0 else None,
        worst_cells=_worst_cells(probs, target_probs, n, q),
        batched=batch_size > 1,
    )


def _replay(sampler, oracle, paths: _Paths, max_depth, tolerance):
    """Run the sampler once with one row per path -> (rng, output); output None: the single path ran too deep."""
    rng = BatchReplayRandomness(paths.forced, paths.lengths, paths.children, paths.fork_prob,
                                max_depth=max_depth, tolerance=tolerance)
    generators = GlobalGenerators()
    try:
        output = sampler.sample(oracle, len(paths), rng)
    except PathTooDeepError:
        generators.check(sampler)
        if len(paths) > 1:
            raise _BatchTooDeep from None
        return rng, None
    generators.check(sampler)
    return rng, output


def _recheck_one_row(sampler, oracle, rng, i, values, rounds, queries, max_depth, tolerance) -> None:
    """Replay row i's whole path alone: the batch must not have changed its output, probability or counts."""
    depth = int(rng.depth[i])
    alone = _Paths(rng.path[i : i + 1, :depth], rng.depth[i : i + 1], rng.children[i : i + 1, :depth],
                   rng.before[i : i + 1, depth - 1] if depth else torch.ones(1, dtype=torch.float64))
    single, output = _replay(sampler, oracle, alone, max_depth, tolerance)
    v, r, qs = _batch_values(output, values.shape[1], None, 1)
    p_batch, p_alone = float(rng.probability[i]), float(single.probability[0])
    same = (
        torch.equal(v[0], values[i])
        and abs(p_batch - p_alone) <= 1e-9 * max(p_batch, p_alone)
        and (rounds is None or r is None or float(r[0]) == float(rounds[i]))
        and (queries is None or qs is None or float(qs[0]) == float(queries[i]))
    )
    if not same:
        # Its samples are not independent replays (or its counts are per batch): enumerate one path per run.
        raise NotRowwiseError(f"path {i} of a batch gave a different output, probability or count when run alone")


def _siblings(rng: BatchReplayRandomness, lengths: torch.Tensor) -> _Paths:
    """The unvisited children of every node a run met beyond its forced prefix."""
    depth = rng.depth
    columns = torch.arange(rng.path.shape[1])
    new = (columns >= lengths.unsqueeze(1)) & (columns < depth.unsqueeze(1))  # [B, L]
    extra = torch.where(new, rng.children - 1, torch.zeros_like(rng.children))
    row, col = torch.nonzero(extra, as_tuple=True)
    counts = extra[row, col]
    total = int(counts.sum())
    if total == 0:
        return _Paths(torch.zeros((0, 0), dtype=torch.long), torch.zeros(0, dtype=torch.long),
                      torch.ones((0, 0), dtype=torch.long), torch.ones(0, dtype=torch.float64))
    row, col = row.repeat_interleave(counts), col.repeat_interleave(counts)
    start = torch.cumsum(counts, 0) - counts
    child = torch.arange(total) - start.repeat_interleave(counts) + 1  # 1 .. children - 1 per node
    width = int(col.max()) + 1
    forced = rng.path[row, :width].clone()
    forced[torch.arange(total), col] = child
    return _Paths(forced, col + 1, rng.children[row, :width], rng.before[row, col])


def _batch_values(output, n: int, q: int | None, rows: int):
    """values [rows, n] (checked), rounds and queries [rows] float64 or None."""
    values = _values_tensor(output, n, rows)
    if q is not None and values.numel() and bool(((values < 0) | (values >= q)).any()):
        bad = values[((values < 0) | (values >= q)).any(1)][0].tolist()
        raise SamplerContractError(f"sampler returned values {bad} outside [0, {q - 1}]")
    counts = []
    for name in ("rounds", "queries"):
        got = getattr(output, name, None) if not isinstance(output, torch.Tensor) else None
        counts.append(None if got is None else got.detach().cpu().to(torch.float64).reshape(-1))
    return values.detach().cpu().to(torch.long), counts[0], counts[1]


def _values_tensor(output, n: int, rows: int) -> torch.Tensor:
    values = output_values(output)
    if not isinstance(values, torch.Tensor):
        raise SamplerContractError(
            f"sampler returned {type(values).__name__}; expected values [{rows}, n] or a result with .values")
    if tuple(values.shape) != (rows, n):
        raise SamplerContractError(
            f"sampler returned values of shape {list(values.shape)} for num_samples={rows}, expected [{rows}, {n}]")
    if values.dtype.is_floating_point or values.dtype == torch.bool or values.is_complex():
        raise SamplerContractError(f"sampler returned values of dtype {values.dtype}; expected an integer tensor")
    return values


# ---------------------------------------------------------------------------------------------------
# The previous implementation: one path per run, depth-first (kept to compare with the batched one).
def _exact_law_depth_first(sampler, target, max_leaves, max_depth, recheck_every, tolerance) -> ExactLaw:
    n, q = target.n, target.q
    oracle = target.oracle()
    target_probs = target.probs.to(torch.float64).cpu()
    law = np.zeros(q**n, dtype=np.float64)
    strides = q ** np.arange(n - 1, -1, -1)
    nodes: list[ChoiceNode] = []
    forced: list[int] = []
    explored, leaves, rounds_sum, queries_sum = 0.0, 0, 0.0, 0.0
    has_counts = True
    saved = _GlobalState()
    try:
        while True:
            _scramble_global_generators(leaves)
            rng = ReplayRandomness(forced, nodes, max_depth=max_depth, tolerance=tolerance)
            generators = GlobalGenerators()
            try:
                output = sampler.sample(oracle, 1, rng)
            except PathTooDeepError:
                output = None
            generators.check(sampler)
            if output is not None:
                values, rounds, queries = _values_of(output, n)
                cell = _check_cell(values, q)
                if leaves % recheck_every == recheck_every - 1:
                    _recheck(sampler, oracle, rng.path, nodes, max_depth, tolerance, cell, q, leaves)
                if rng.calls < len(forced):
                    raise SamplerContractError(
                        f"the sampler finished after {rng.calls} random calls where an earlier run with the same "
                        f"choices made {len(forced)}: it is not deterministic given its rng"
                    )
                law[int((cell * strides).sum())] += rng.probability
                explored += rng.probability
                if rounds is None or queries is None:
                    has_counts = False
                else:
                    rounds_sum += rng.probability * rounds
                    queries_sum += rng.probability * queries
            leaves += 1
            # Backtrack: the deepest node on this path with an unvisited child.
            path = rng.path
            del nodes[len(path):]
            depth = len(path) - 1
            while depth >= 0 and path[depth] + 1 >= nodes[depth].num_children:
                depth -= 1
            if depth < 0 or leaves >= max_leaves:
                break
            forced = path[:depth] + [path[depth] + 1]
            del nodes[depth + 1:]
    finally:
        saved.restore()
    probs = torch.from_numpy(law).reshape((q,) * n)
    worst = _worst_cells(probs, target_probs, n, q)
    return ExactLaw(
        probs=probs,
        target_probs=target_probs,
        unexplored_mass=max(0.0, 1.0 - explored),
        leaves=leaves,
        expected_rounds=rounds_sum / explored if has_counts and explored > 0 else None,
        expected_queries=queries_sum / explored if has_counts and explored > 0 else None,
        worst_cells=worst,
    )


def _check_cell(values: torch.Tensor, q: int) -> np.ndarray:
    cell = values[0].detach().cpu().numpy().astype(np.int64)
    if (cell < 0).any() or (cell >= q).any():
        raise SamplerContractError(f"sampler returned values {cell.tolist()} outside [0, {q - 1}]")
    return cell


def _recheck(sampler, oracle, path, nodes, max_depth, tolerance, cell, q, leaf) -> None:
    _scramble_global_generators(leaf + 1_000_003)
    rng = ReplayRandomness(list(path), nodes[: len(path)], max_depth=max_depth, tolerance=tolerance)
    again = _check_cell(_values_of(sampler.sample(oracle, 1, rng), len(cell))[0], q)
    if not np.array_equal(again, cell):
        raise SamplerContractError(
            f"two runs with the same random choices returned {cell.tolist()} and {again.tolist()}: the sampler "
            "draws randomness outside the rng it was given"
        )


def _worst_cells(probs, target_probs, n, q, count: int = 10) -> list[dict]:
    diff = (probs - target_probs).abs().reshape(-1)
    top = torch.argsort(diff, descending=True)[:count]
    strides = q ** torch.arange(n - 1, -1, -1)
    return [
        {
            "cell": ((int(i) // strides) % q).tolist(),
            "sampler": float(probs.reshape(-1)[i]),
            "target": float(target_probs.reshape(-1)[i]),
        }
        for i in top
        if diff[i] > 0
    ]


class _GlobalState:
    """Saves the global generators so that scrambling them does not leak."""

    def __init__(self):
        self.torch = torch.get_rng_state()
        self.numpy = np.random.get_state()
        self.python = random.getstate()

    def restore(self) -> None:
        torch.set_rng_state(self.torch)
        np.random.set_state(self.numpy)
        random.setstate(self.python)


def _scramble_global_generators(seed: int) -> None:
    # A sampler that (wrongly) draws from a global generator then sees different
    # numbers on each run, which the replay checks turn into a clear error.
    torch.default_generator.manual_seed(seed)  # torch.manual_seed would also seed every accelerator backend, slowly
    np.random.seed(seed % 2**32)
    random.seed(seed)
