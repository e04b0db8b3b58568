"""The global-generator check blames the sampler only for draws on its own thread: a host's other threads (Dask
workers draw from Python's random for heartbeats and jitter) must not fail a correct sampler, and a sampler that
draws from Python's random must still be named while such threads run."""

import random
import threading

import pytest
import torch

from autospec.samplers import Sequential
from autospec.targets import TabularTarget
from verification import SamplerContractError
from verification.running import run_sampler


class PythonRandomSampler:
    def sample(self, oracle, num_samples, rng):
        x = torch.full((num_samples, oracle.n), -1, dtype=torch.long)
        for i in range(oracle.n):
            x[:, i] = rng.categorical(oracle.marginals(x)[:, i])
        x[:, 0] = int(random.random() < 2.0) * x[:, 0]  # a draw from the global generator (value unused)
        return x


@pytest.fixture
def busy_thread():
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            random.random()

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


def test_another_threads_draws_are_not_the_samplers(busy_thread):
    from autospec import Randomness

    out = run_sampler(Sequential(), TabularTarget.random(3, 2, seed=0).oracle(), 200, Randomness(0))
    assert tuple(out.values.shape) == (200, 3)


def test_a_samplers_own_draw_is_named_while_other_threads_draw(busy_thread):
    from autospec import Randomness

    with pytest.raises(SamplerContractError, match="Python random"):
        run_sampler(PythonRandomSampler(), TabularTarget.random(3, 2, seed=0).oracle(), 20, Randomness(0))
