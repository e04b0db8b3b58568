"""The exact output law of a sampler, by enumerating every random choice it makes.

The sampler runs with ``num_samples = 1`` and a ``ReplayRandomness``: each
random call is a node of a tree whose children are the call's joint outcomes
of positive probability.  Depth-first, each run replays a forced prefix of
choices and then takes the first child of every new node; the run's output
gets the product of the chosen children's probabilities.  Summing over all
leaves gives the output law in float64: a proof of exactness on that instance
(TV ~ 1e-12 for a correct sampler), not a test.

Paths longer than ``max_depth`` random calls, and whatever lies beyond
``max_leaves`` runs, are not explored; their mass is reported as
``unexplored_mass``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch

from autospec.randomness import ChoiceNode, PathTooDeepError, ReplayRandomness
from verification.running import output_values

__all__ = ["ExactLaw", "exact_law", "SamplerContractError"]


class SamplerContractError(RuntimeError):
    """The sampler broke the contract (randomness outside rng, bad output...)."""


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
    values = output_values(output)
    if not isinstance(values, torch.Tensor):
        raise SamplerContractError(f"sampler returned {type(values).__name__}; expected values [1, n] or a result with .values")
    if values.shape != (1, n):
        raise SamplerContractError(f"sampler returned values of shape {list(values.shape)} for num_samples=1, expected [1, {n}]")
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
) -> ExactLaw:
    """Exact output law of ``sampler`` on ``target`` (a target with ``probs`` and ``oracle()``).

    ``recheck_every``: every so many leaves, run the same path again and
    compare outputs; together with reseeding the global generators before
    each run this catches samplers that draw randomness outside ``rng``.
    """
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
            try:
                output = sampler.sample(oracle, 1, rng)
            except PathTooDeepError:
                output = None
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
