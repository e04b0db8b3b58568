"""Time grids for the localization chain and the map to the VP (DDPM) parametrisation.

Stochastic localization: Y_t = t X + W_t.  Dividing by sqrt(t (1 + t)) gives the
variance-preserving state of DDPM,

    x_vp = sqrt(alpha_bar) X + sqrt(1 - alpha_bar) eps,   alpha_bar = t / (1 + t),

so t = alpha_bar / (1 - alpha_bar) is exactly the signal-to-noise ratio of the
VP process, x_vp = sqrt(alpha_bar) Y_t / t, and an epsilon-prediction network
eps(x_vp, alpha_bar) gives the denoiser m(y, t) = (x_vp - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar).
Both directions are provided so that DDPM code written the usual way can be
audited against the same chain.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "time_grid",
    "check_times",
    "alpha_bar_from_time",
    "time_from_alpha_bar",
    "vp_from_localization",
    "localization_from_vp",
    "denoiser_from_epsilon",
    "epsilon_from_denoiser",
    "GRID_KINDS",
    "cosine_alpha_bar",
    "cosine_times",
]

GRID_KINDS = ("uniform", "quadratic", "geometric", "log_snr", "cosine")


def check_times(times: object, name: str = "times") -> torch.Tensor:
    """Validate a time grid: 1-d float64, t_0 = 0, strictly increasing, finite, at least one step."""
    if isinstance(times, (list, tuple)):
        times = torch.tensor(times, dtype=torch.float64)
    if not isinstance(times, torch.Tensor):
        raise TypeError(f"{name} must be a 1-d tensor of times 0 = t_0 < ... < t_K, got {type(times).__name__}")
    if times.dim() != 1 or times.shape[0] < 2:
        raise ValueError(f"{name} must be a 1-d tensor with at least 2 entries (t_0 = 0 and t_K), got shape {list(times.shape)}")
    times = times.to(torch.float64)
    if not bool(torch.isfinite(times).all()):
        raise ValueError(f"{name} contains NaN or infinite times")
    if float(times[0]) != 0.0:
        raise ValueError(f"{name} must start at t_0 = 0 (the localization process starts at the origin), got t_0 = {float(times[0])!r}")
    steps = times[1:] - times[:-1]
    if bool((steps <= 0).any()):
        k = int(torch.nonzero(steps <= 0)[0])
        raise ValueError(
            f"{name} must be strictly increasing, but t_{k + 1} = {float(times[k + 1])!r} <= t_{k} = {float(times[k])!r}"
        )
    return times


def time_grid(steps: int, t_max: float, kind: str = "uniform", t_min: float | None = None,
              device: str | torch.device = "cpu") -> torch.Tensor:
    """Grid 0 = t_0 < t_1 < ... < t_steps = t_max, float64 [steps + 1].

    kinds:
      uniform    t_k = t_max k / K
      quadratic  t_k = t_max (k / K)^2   (fine steps early, where the drift changes fastest)
      geometric  t_1 = t_min, ..., t_K = t_max geometrically spaced (t_min default t_max * 1e-3)
      log_snr    uniform in log-SNR; the localization time *is* the VP SNR, so this is
                 the geometric grid (kept as a name DDPM users look for)
      cosine     the cosine alpha_bar schedule (Nichol & Dhariwal) on a uniform grid of diffusion
                 time, mapped to t = alpha_bar / (1 - alpha_bar) and truncated where t reaches
                 t_max (see ``cosine_times``); its last steps are long in t (short in log t)
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not (isinstance(t_max, (int, float)) and math.isfinite(t_max) and t_max > 0):
        raise ValueError(f"t_max must be a positive finite number, got {t_max!r}")
    k = torch.arange(steps + 1, dtype=torch.float64, device=device)
    if kind == "uniform":
        times = t_max * k / steps
    elif kind == "quadratic":
        times = t_max * (k / steps) ** 2
    elif kind in ("geometric", "log_snr"):
        t_min = t_max * 1e-3 if t_min is None else float(t_min)
        if not (0 < t_min < t_max):
            raise ValueError(f"t_min must lie in (0, t_max = {t_max}), got {t_min!r}")
        if steps == 1:
            times = torch.tensor([0.0, t_max], dtype=torch.float64, device=device)
        else:
            logs = torch.linspace(math.log(t_min), math.log(t_max), steps, dtype=torch.float64, device=device)
            times = torch.cat([torch.zeros(1, dtype=torch.float64, device=device), torch.exp(logs)])
    elif kind == "cosine":
        times = cosine_times(k / steps, t_max)
    else:
        raise ValueError(f"kind must be one of {GRID_KINDS}, got {kind!r}")
    times[0] = 0.0
    times[-1] = float(t_max)
    return check_times(times)


COSINE_OFFSET = 0.008  # Nichol & Dhariwal's s


def cosine_alpha_bar(u: torch.Tensor) -> torch.Tensor:
    """Nichol & Dhariwal's alpha_bar(u) = f(u) / f(0), f(u) = cos((u + s) / (1 + s) * pi / 2)^2, for diffusion
    time u in [0, 1] (u = 0 clean, u = 1 noise)."""
    u = torch.as_tensor(u, dtype=torch.float64)
    f = torch.cos((u + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2
    return f / math.cos(COSINE_OFFSET / (1 + COSINE_OFFSET) * math.pi / 2) ** 2


def cosine_times(fractions: torch.Tensor, t_max: float) -> torch.Tensor:
    """Localization times of the cosine schedule at grid fractions k / K in [0, 1].

    The chain runs from noise (u = 1, t = 0) towards data; it stops at u_min, where the
    schedule's SNR alpha_bar / (1 - alpha_bar), which is t, equals t_max.  The grid is
    uniform in u on [u_min, 1]: u_k = 1 - (k / K)(1 - u_min), t_k = t(alpha_bar(u_k)).
    """
    a_max = t_max / (1.0 + t_max)  # alpha_bar at t_max
    angle = math.acos(math.sqrt(a_max) * math.cos(COSINE_OFFSET / (1 + COSINE_OFFSET) * math.pi / 2))
    u_min = angle / (math.pi / 2) * (1 + COSINE_OFFSET) - COSINE_OFFSET
    u = 1.0 - fractions * (1.0 - u_min)
    alpha_bar = cosine_alpha_bar(u)
    return alpha_bar / (1.0 - alpha_bar)


def alpha_bar_from_time(t: torch.Tensor) -> torch.Tensor:
    """alpha_bar = t / (1 + t)  (t >= 0)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    if bool((t < 0).any()):
        raise ValueError("localization times t must be >= 0")
    return t / (1.0 + t)


def time_from_alpha_bar(alpha_bar: torch.Tensor) -> torch.Tensor:
    """t = alpha_bar / (1 - alpha_bar)  (alpha_bar in [0, 1))."""
    a = torch.as_tensor(alpha_bar, dtype=torch.float64)
    if bool(((a < 0) | (a >= 1)).any()):
        raise ValueError("alpha_bar must lie in [0, 1)")
    return a / (1.0 - a)


def vp_from_localization(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_vp = y / sqrt(t (1 + t)) = sqrt(alpha_bar) y / t; y [B, d], t [B] (t > 0)."""
    t = t.to(torch.float64).unsqueeze(-1)
    return y / torch.sqrt(t * (1.0 + t))


def localization_from_vp(x: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """y = t x / sqrt(alpha_bar) = sqrt(t (1 + t)) x; x [B, d], alpha_bar [B]."""
    t = time_from_alpha_bar(alpha_bar).unsqueeze(-1)
    return x * torch.sqrt(t * (1.0 + t))


class _EpsilonDenoiser:
    """m(y, t) from eps(x_vp [B, d], alpha_bar [B]) -> [B, d]."""

    def __init__(self, epsilon, dim: int, t_floor: float):
        self.epsilon, self.dim, self.t_floor = epsilon, int(dim), float(t_floor)
        self.name = f"denoiser_from_epsilon({getattr(epsilon, 'name', type(epsilon).__name__)})"

    def __call__(self, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # At t = 0 the VP state is pure noise and x0 = (x - sqrt(1-ab) eps) / sqrt(ab) is 0/0;
        # evaluate at t_floor instead (error O(t_floor) in the denoiser there).
        t = t.to(torch.float64).clamp(min=self.t_floor)
        alpha_bar = alpha_bar_from_time(t)
        x = vp_from_localization(y, t)
        eps = self.epsilon(x, alpha_bar)
        a = alpha_bar.unsqueeze(-1)
        return (x - torch.sqrt(1.0 - a) * eps) / torch.sqrt(a)


class _DenoiserEpsilon:
    """eps(x_vp, alpha_bar) from a denoiser m(y, t): eps = (x - sqrt(ab) m) / sqrt(1 - ab)."""

    def __init__(self, denoiser):
        self.denoiser = denoiser
        self.dim = int(denoiser.dim)
        self.name = f"epsilon_from_denoiser({getattr(denoiser, 'name', type(denoiser).__name__)})"

    def __call__(self, x: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
        alpha_bar = torch.as_tensor(alpha_bar, dtype=torch.float64)
        t = time_from_alpha_bar(alpha_bar)
        y = localization_from_vp(x, alpha_bar)
        x0 = self.denoiser(y, t)
        a = alpha_bar.unsqueeze(-1)
        return (x - torch.sqrt(a) * x0) / torch.sqrt(1.0 - a)


def denoiser_from_epsilon(epsilon, dim: int, t_floor: float = 1e-12):
    """Wrap a DDPM epsilon-prediction model eps(x_vp, alpha_bar) as a denoiser m(y, t)."""
    return _EpsilonDenoiser(epsilon, dim, t_floor)


def epsilon_from_denoiser(denoiser):
    """The epsilon-prediction model eps(x_vp, alpha_bar) equivalent to a denoiser m(y, t)."""
    return _DenoiserEpsilon(denoiser)
