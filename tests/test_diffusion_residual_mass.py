"""residual_mass of sequence-level speculative diffusion at tiny mean gaps (issue 13, item 7).

The old closed form subtracted two log tails that both overflow once the gap delta is below about
1e-154 with p < 1 (u* = delta/2 - log(p)/delta squared overflows): NaN, and the next categorical draw
raised.  Checked here against mpmath at enough digits to resolve the difference of the two tails."""

import math

import mpmath
import pytest
import torch

from autospec import Randomness
from autospec.diffusion import time_grid
from autospec.samplers import SequenceSpeculativeDiffusion
from autospec.samplers.sequence_speculative_diffusion import residual_mass, sample_truncated_residual

GAPS = [30.0, 1.0, 0.1, 0.0999, 1e-2, 1e-5, 1e-10, 1e-20, 1e-100, 1e-160, 1e-300]
PROBABILITIES = [1e-200, 1e-3, 0.5, 0.999, 1 - 1e-9, 1 - 1e-15, 1.0]


def _reference(p: float, delta: float):
    """S = p Phibar(u* - delta) - Phibar(u*) in mpmath; None where u* - delta > 39 (S < 1e-330: underflows)."""
    mpmath.mp.dps = 40 + int(max(0.0, -math.log10(delta)))  # enough digits for the cancellation at p = 1
    p, delta = mpmath.mpf(p), mpmath.mpf(delta)
    u_star = delta / 2 - mpmath.log(p) / delta
    if u_star - delta > 39:
        return None

    def tail(x):
        return mpmath.erfc(x / mpmath.sqrt(2)) / 2

    return float(p * tail(u_star - delta) - tail(u_star))


@pytest.mark.parametrize("p", PROBABILITIES)
def test_residual_mass_against_mpmath_at_every_gap(p):
    log_p = torch.full((len(GAPS),), math.log(p), dtype=torch.float64)
    values = residual_mass(log_p, torch.tensor(GAPS, dtype=torch.float64))
    assert not bool(torch.isnan(values).any()), values
    for delta, value in zip(GAPS, values.tolist()):
        exact = _reference(p, delta)
        if exact is None:
            assert 0.0 <= value < 1e-300, (p, delta, value)
        else:
            assert abs(value - exact) <= 1e-11 * exact, (p, delta, value, exact)


def test_residual_mass_is_zero_at_zero_gap():
    assert float(residual_mass(torch.tensor(math.log(0.5), dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64))) == 0.0


def test_truncated_residual_draw_is_finite_at_a_small_gap():
    u = sample_truncated_residual(torch.full((3,), math.log(0.5), dtype=torch.float64), torch.full((3,), 1e-3, dtype=torch.float64),
                                  torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64))
    u_star = 1e-3 / 2 - math.log(0.5) / 1e-3
    assert bool(torch.isfinite(u).all()) and bool((u >= u_star).all()) and bool((u[1:] < u[:-1]).all())  # survival G(u) = Phi(z): larger z, smaller u


def test_block_verification_with_a_tiny_gap_after_a_rejection_risk():
    """verify() on a block whose step 1 has an O(1) gap (p_1 = exp(-1/2) < 1 at the drafted point) and whose step 2
    has a gap of 1e-170 (representable: the points sit at the origin; d = 1, where the norm of the gap does not
    underflow as a sum of squares does).  A regression guard: the old code got NaN for S_1 here too, but
    verify's `denominator > 0` test turned it into h_1 = 0 (right by luck, since S_1 ~ 0)."""
    A, L, d = 64, 3, 1
    draft = torch.zeros(A, L + 1, d, dtype=torch.float64)
    b = torch.zeros(A, L, d, dtype=torch.float64)
    a = b.clone()
    a[:, 0, 0] = 1.0  # step 1: target mean 1, draft mean 0, drafted point 0
    a[:, 1, 0] = 1e-170  # step 2: a gap of 1e-170
    h = torch.ones(A, L, dtype=torch.float64)
    sampler = SequenceSpeculativeDiffusion(time_grid(4, t_max=4.0), lookahead=L)
    steps, point, complete = sampler.verify(draft, a, b, h, torch.full((A,), L), Randomness(seed=0))
    assert bool(torch.isfinite(point).all())
    assert bool(((steps >= 1) & (steps <= L)).all())
