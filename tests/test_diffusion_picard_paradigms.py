"""Picard's stopping rule is ParaDiGMS's (issue 13, item 2): per-step squared change per dimension over that
step's noise variance against tol^2, window slid by min(1 + first violation, W).  Measured on shared noise
against the sequential chain (the setting of benchmarks/picard_tolerance.py, 500 paths).

With the old rule (unscaled max-norm, leading passes only) tol = 1e-2 left max errors of 0.28 (uniform grid)
and 0.29 (geometric grid) on these paths."""

import sys
from pathlib import Path

import pytest
import torch

from autospec import Randomness
from autospec.diffusion import time_grid
from autospec.samplers import DiffusionSequential, Picard

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from picard_tolerance import mixture, picard_errors  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def noise():
    return Randomness(0).normal((500, 64, 2))


def test_error_at_tol_1e2_is_small_on_both_grids(noise):
    target = mixture()
    uniform = picard_errors(target, time_grid(64, 20.0, "uniform"), noise, [1e-2, 1e-3])
    geometric = picard_errors(target, time_grid(64, 20.0, "geometric"), noise, [1e-2, 1e-3])
    assert uniform[0]["max_error"] < 2e-3, uniform  # measured 8.5e-4
    assert geometric[0]["max_error"] < 0.1 and geometric[0]["mean_error"] < 3e-3, geometric  # measured 5.2e-2, 1.5e-3
    for rows in (uniform, geometric):
        assert rows[0]["wrong_mode"] == 0.0
        assert rows[1]["max_error"] < rows[0]["max_error"] / 5  # the error falls with tol
        assert rows[0]["rounds"] < rows[1]["rounds"] < 65  # and costs rounds, still far below sequential's 65


class _Scripted:
    """m(y, t) = 0 except a jump at one grid time, so which points change in each sweep is known."""

    dim = 1

    def __init__(self, jump_time):
        self.jump_time = jump_time

    def __call__(self, y, t):
        return torch.where((t == self.jump_time).unsqueeze(-1), torch.ones_like(y), torch.zeros_like(y))


def test_window_slides_past_the_first_violation():
    """Noise 0 and a drift that is 0 except m = 1 at t_3: the first sweep (window 0..7) changes points 4..8 only.
    ParaDiGMS slides by min(1 + first violation, W): the first violating new point is Y_4 (window position 3),
    so the window moves to start 4, and the second sweep converges the rest; rounds: 2 sweeps + 1 output.
    The old rule forced the first point to pass and slid by the leading passes only: the same 4 here, so this
    pins down the shape of the rule, while the tol scaling is pinned by the next test."""
    times = time_grid(8, 8.0)
    out = Picard(times, window=8, tol=0.0).sample_with_noise(_Scripted(3.0), torch.zeros(1, 8, 1, dtype=torch.float64))
    reference = DiffusionSequential(times).sample_with_noise(_Scripted(3.0), torch.zeros(1, 8, 1, dtype=torch.float64))
    assert torch.equal(out.values, reference.values)
    assert out.info["sweeps"].tolist() == [2] and out.rounds.tolist() == [3]


def test_tolerance_is_relative_to_each_steps_noise():
    """A change of 0.5 at a point whose next step has noise variance h passes iff 0.25 / h <= tol^2: with tol = 0.5
    it passes when h >= 1 and fails when h < 1, whatever the grid's scale; the old max-norm rule compared 0.5
    with tol directly."""
    for t_max, sweeps in ((16.0, 1), (4.0, 2)):  # h = 2 (passes) and h = 0.5 (fails)
        times = time_grid(8, t_max)
        h = t_max / 8
        jump = float(times[3])
        out = Picard(times, window=8, tol=0.5).sample_with_noise(_Step(jump, 0.5 / h), torch.zeros(1, 8, 1, dtype=torch.float64))
        assert out.info["sweeps"].tolist() == [sweeps], (t_max, out.info["sweeps"])


class _Step(_Scripted):
    def __init__(self, jump_time, value):
        super().__init__(jump_time)
        self.value = value

    def __call__(self, y, t):
        return self.value * super().__call__(y, t)
