"""Run any contract-following sampler and get values, rounds and queries back.

Also the checks every path that runs a sampler shares: the sampler is an
object with ``sample``, its output has the promised shape and dtype, and it
drew no randomness from the global torch, numpy or ``random`` generators.
"""

from __future__ import annotations

import functools
import random
import threading

import numpy as np
import torch

from autospec import Randomness
from autospec.oracles import CountingOracle
from autospec.samplers.base import Sampler, SampleResult

__all__ = [
    "run_sampler", "sampler_name", "output_values", "SamplerContractError", "GlobalGenerators", "check_sampler_object",
]

# Oracle answers are [rows, n, q] per round; keep one chunk's answers near this many floats.
_CHUNK_FLOATS = 2**23


class SamplerContractError(RuntimeError):
    """The sampler broke the contract (randomness outside rng, bad output...)."""


# Python's random module: its module-level functions are wrapped (once, pass-through) so that a draw made on the
# thread that runs the sampler is recorded; draws by other threads (a Dask worker's heartbeats, retry jitter) are
# not the sampler's.  Written by hand: no library attributes global-generator draws to a thread.
_PYTHON_DRAWS = threading.local()
_PYTHON_WRAPPED = False


def _record_python_random_draws() -> None:
    global _PYTHON_WRAPPED
    if _PYTHON_WRAPPED:
        return
    for name in random.__all__:
        original = getattr(random, name, None)
        if getattr(original, "__self__", None) is not random._inst:  # only the global Random's bound methods
            continue

        def wrapper(*args, _original=original, _name=name, **kwargs):
            for draws in _open_draw_sets():
                draws.add(f"random.{_name}")
            return _original(*args, **kwargs)

        setattr(random, name, functools.update_wrapper(wrapper, original))
    _PYTHON_WRAPPED = True


def _open_draw_sets() -> list[set[str]]:
    """This thread's sets recording Python random draws, one per GlobalGenerators not yet checked."""
    if not hasattr(_PYTHON_DRAWS, "open"):
        _PYTHON_DRAWS.open = []
    return _PYTHON_DRAWS.open


class GlobalGenerators:
    """The states of the global torch, numpy and ``random`` generators, to tell whether a run moved them.

    ``check(sampler)`` after the run raises ``SamplerContractError`` naming every
    global generator that was drawn from (or reseeded) in between.  Python's ``random``: calls of its module
    functions on this thread are recorded, and its state is also compared when the process runs no other thread
    (hosts such as Dask workers draw from it on their own threads, which must not be blamed on the sampler).
    """

    def __init__(self):
        self.torch = torch.get_rng_state()
        self.numpy = np.random.get_state()
        self.python = random.getstate() if threading.active_count() == 1 else None
        _record_python_random_draws()
        self.python_draws: set[str] = set()
        _open_draw_sets().append(self.python_draws)
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    def moved(self) -> list[str]:
        names = []
        if not torch.equal(self.torch, torch.get_rng_state()):
            names.append("torch")
        if self.cuda is not None and any(not torch.equal(a, b) for a, b in zip(self.cuda, torch.cuda.get_rng_state_all())):
            names.append("torch.cuda")
        now = np.random.get_state()
        if not (np.array_equal(self.numpy[1], now[1]) and tuple(self.numpy[2:]) == tuple(now[2:])):
            names.append("numpy (np.random)")
        open_sets = _open_draw_sets()
        open_sets[:] = [d for d in open_sets if d is not self.python_draws]  # stop recording for this run
        if self.python_draws or (self.python is not None and self.python != random.getstate()):
            names.append("Python random")
        return names

    def check(self, sampler) -> None:
        names = self.moved()
        if names:
            raise SamplerContractError(
                f"sampler {sampler_name(sampler)} drew randomness outside the rng it was given: the global "
                f"{' and '.join(names)} generator moved during a run (torch.rand, torch.multinomial, np.random.*, "
                f"random.*, ...). A sampler must draw all its randomness from rng: exact_law cannot enumerate "
                f"other draws and seeded checks cannot reproduce them."
            )


def check_sampler_object(sampler) -> None:
    """A sampler is an instance with ``sample(oracle, num_samples, rng)``."""
    if isinstance(sampler, type):
        name = sampler.__name__
        raise TypeError(f"sampler must be an object with sample(oracle, num_samples, rng); pass an instance: {name}(), not {name}")
    if not callable(getattr(sampler, "sample", None)):
        raise TypeError(
            f"sampler must be an object with sample(oracle, num_samples, rng), got {type(sampler).__name__}")


def output_values(output):
    """The values a sampler returned: a bare tensor, or a result's ``.values``.

    (A tensor has a ``values`` method of its own, so it must be tested first.)
    """
    return output if isinstance(output, torch.Tensor) else getattr(output, "values", output)


def sampler_name(sampler) -> str:
    return str(getattr(sampler, "name", None) or type(sampler).__name__)


def run_sampler(sampler, oracle, num_samples: int, rng: Randomness, chunk_size: int | None = None) -> SampleResult:
    """Samples in chunks (bounded memory); a user's sampler gets a counting oracle too."""
    check_sampler_object(sampler)
    n, q = oracle.n, oracle.q
    if chunk_size is None:
        chunk_size = max(1, min(num_samples, _CHUNK_FLOATS // (8 * n * q)))
    parts = []
    for start in range(0, num_samples, chunk_size):
        size = min(chunk_size, num_samples - start)
        generators = GlobalGenerators()
        if isinstance(sampler, Sampler):
            parts.append(sampler.sample(oracle, size, rng))
            generators.check(sampler)
            continue
        counted = CountingOracle(oracle, size)
        output = sampler.sample(counted, size, rng)
        generators.check(sampler)
        values = output_values(output)
        if not isinstance(values, torch.Tensor) or tuple(values.shape) != (size, n):
            shape = list(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
            raise SamplerContractError(f"sampler {sampler_name(sampler)} returned values {shape}, expected [{size}, {n}]")
        if values.dtype.is_floating_point or values.dtype == torch.bool or values.is_complex():
            raise SamplerContractError(
                f"sampler {sampler_name(sampler)} returned values of dtype {values.dtype}; expected an integer tensor")
        parts.append(SampleResult(values.to(torch.long), counted.rounds.clone(), counted.queries.clone()))
    if not parts:
        empty = torch.zeros(0, dtype=torch.long)
        return SampleResult(torch.zeros((0, n), dtype=torch.long), empty, empty)
    values = torch.cat([p.values.cpu() for p in parts])
    if bool(((values < 0) | (values >= q)).any()):
        raise SamplerContractError(f"sampler {sampler_name(sampler)} returned values outside [0, {q - 1}]")
    return SampleResult(values, torch.cat([p.rounds.cpu() for p in parts]), torch.cat([p.queries.cpu() for p in parts]))
