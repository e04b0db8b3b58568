"""Every time-grid kind by properties that a degenerate grid fails (issue 13, item 3): no step covers more
than a stated share of [0, t_max], and each schedule matches its definition at known points.

The old cosine grid had time_grid(64, 50, "cosine")[-2] = 4.2e-8: one step covered all but 1e-9 of [0, 50]."""

import math

import pytest
import torch

from autospec.diffusion import alpha_bar_from_time, time_grid
from autospec.diffusion.grid import COSINE_OFFSET

T_MAX = 50.0


def _largest_share(times):
    return float((times[1:] - times[:-1]).max()) / T_MAX


def _share_bound(kind, K):
    """Largest step / t_max allowed for each kind at t_max = 50 (derived from the definitions)."""
    if kind == "uniform":
        return 1 / K
    if kind == "quadratic":  # last step t_max (1 - (1 - 1/K)^2)
        return (2 * K - 1) / K**2
    if kind in ("geometric", "log_snr"):  # last step t_max (1 - r^-1) <= t_max log r, r = 1000^(1/(K-1))
        return math.log(1000.0) / (K - 1)
    # cosine: the last step is about h |dt/du| at u_min, with 1 - alpha_bar = 1 / (1 + t_max) there: ~20.4 / K
    return 24 / K


@pytest.mark.parametrize("K", [16, 64, 256])
@pytest.mark.parametrize("kind", ["uniform", "quadratic", "geometric", "log_snr", "cosine"])
def test_no_step_covers_more_than_its_share(kind, K):
    times = time_grid(K, T_MAX, kind)
    assert times[0] == 0.0 and times[-1] == T_MAX and bool((times[1:] > times[:-1]).all())
    assert _largest_share(times) <= _share_bound(kind, K) + 1e-12, (kind, K, _largest_share(times))
    # and no step is negligible either: the smallest step is a visible fraction of the grid
    assert float((times[1:] - times[:-1]).min()) > 1e-9 * T_MAX


def test_uniform_quadratic_geometric_at_known_points():
    K = 64
    assert torch.allclose(time_grid(K, T_MAX, "uniform")[[16, 32, 48]], torch.tensor([12.5, 25.0, 37.5], dtype=torch.float64))
    assert torch.allclose(time_grid(K, T_MAX, "quadratic")[[16, 32]], torch.tensor([T_MAX / 16, T_MAX / 4], dtype=torch.float64))
    geometric = time_grid(K, T_MAX, "geometric")
    assert abs(float(geometric[1]) - T_MAX * 1e-3) < 1e-15
    ratios = geometric[2:] / geometric[1:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-12)


def test_cosine_matches_nichol_dhariwal_alpha_bar():
    """t_k is the SNR alpha_bar / (1 - alpha_bar) of the cosine schedule at diffusion times uniform on [u_min, 1]:
    alpha_bar(u) = cos((u + s) / (1 + s) pi / 2)^2 / cos(s / (1 + s) pi / 2)^2, s = 0.008 (Nichol & Dhariwal 2021),
    checked from the published formula, with u_min where the SNR equals t_max."""
    K = 64
    times = time_grid(K, T_MAX, "cosine")
    s = 0.008
    assert COSINE_OFFSET == s

    def alpha_bar(u):
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2

    # u_min by bisection on the published formula (independent of the closed form in the code)
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if alpha_bar(mid) / (1 - alpha_bar(mid)) > T_MAX else (lo, mid)
    u_min = 0.5 * (lo + hi)
    ab = alpha_bar_from_time(times)
    for k in (1, 16, 32, 48, 63, 64):
        u = 1 - k / K * (1 - u_min)
        assert abs(float(ab[k]) - alpha_bar(u)) < 1e-12, (k, float(ab[k]), alpha_bar(u))
    assert float(ab[0]) == 0.0  # u = 1: pure noise (alpha_bar(1) = 0 up to rounding)
    # alpha_bar = 1/2 (t = 1) lies near the middle of diffusion time, u = 0.5, as in the published schedule
    middle = int(torch.searchsorted(times, torch.tensor(1.0, dtype=torch.float64)))
    u_middle = 1 - middle / K * (1 - u_min)
    assert abs(u_middle - 0.5) < (1 - u_min) / K + 0.01
