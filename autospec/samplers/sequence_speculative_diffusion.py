"""Sequence-level speculative diffusion: the block-verification rule on Gaussian steps.

Drafting and the round are those of ASD (frozen drift, one round per block).
Step i of the block has target P_i = N(a_i, h_i I) and draft D_i = N(b_i, h_i I).
With p_0 = 1, p_i = min(1, p_{i-1} P_i(y_i) / D_i(y_i)) (log space),

    S_i = mass of max(p_i P_{i+1} - D_{i+1}, 0) = p_i (1 - Phi(u* - delta)) - (1 - Phi(u*)),
    u* = delta / 2 - log(p_i) / delta,  delta = |a_{i+1} - b_{i+1}| / sqrt(h_{i+1}),
    h_i = S_i / (S_i + 1 - p_i)  (i < L),  h_L = p_L,

tau = the largest i with eta_i <= h_i; keep y_1..y_tau and, when tau < L, draw
y_{tau+1} from the residual max(p_tau P - D, 0) normalised: with
y = b + sqrt(h) (u e + w), e = (a - b) / |a - b|, w is a standard normal
orthogonal to e and u has density proportional to p phi(u - delta) - phi(u) on
u > u*, sampled exactly by inverting its survival function
(p Phibar(u - delta) - Phibar(u)) / S in log space (bisection; written by hand:
no library samples this law).  When tau = L the block ends at y_L, whose drift
is known, which is the same as drawing the extra step from P_{L+1} next round.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.special import log_ndtr

from autospec.samplers.asd import SpeculativeDiffusion
from autospec.samplers.diffusion_base import gaussian_log_ratio
from autospec.samplers.sequence_speculative import last_success_weights

__all__ = ["SequenceSpeculativeDiffusion", "residual_mass", "log_residual_survival", "sample_truncated_residual"]


_SQRT_HALF = 0.7071067811865476
_SQRT_2_OVER_PI = 0.7978845608028654
# Gauss-Legendre nodes and weights on [0, 1] (8 points), for the integral of the hazard excess over short intervals
_GL_NODES, _GL_WEIGHTS = (torch.from_numpy(v) for v in np.polynomial.legendre.leggauss(8))
_GL_NODES, _GL_WEIGHTS = (_GL_NODES + 1) / 2, _GL_WEIGHTS / 2


def _hazard_excess(x: torch.Tensor) -> torch.Tensor:
    """g(x) = phi(x) / Phibar(x) - x > 0 (normal hazard minus x), without cancellation.

    phi / Phibar = sqrt(2 / pi) / erfcx(x / sqrt 2); beyond x = 30 the difference with x would lose
    digits, and the asymptotic series 1/x - 2/x^3 + 10/x^5 - 74/x^7 + 706/x^9 is used (next term
    below 1e-11 relative there)."""
    direct = _SQRT_2_OVER_PI / torch.special.erfcx(x.clamp(max=30.0) * _SQRT_HALF) - x.clamp(max=30.0)
    z = 1.0 / x.clamp(min=30.0)
    z2 = z * z
    series = z * (1 - z2 * (2 - z2 * (10 - z2 * (74 - 706 * z2))))
    return torch.where(x > 30.0, series, direct)


def _log_erfcx(y: torch.Tensor) -> torch.Tensor:
    """log erfcx(y) for any y (erfcx overflows below y = -26: there log erfcx = y^2 + log erfc(y))."""
    return torch.where(y >= 0, torch.log(torch.special.erfcx(y.clamp(min=0.0))), y * y + torch.log(torch.erfc(y.clamp(max=0.0))))


def _log_expm1(r: torch.Tensor) -> torch.Tensor:
    """log(exp(r) - 1) for r >= 0 (-inf at r = 0), without overflow for large r."""
    return torch.where(r > 1.0, r + torch.log1p(-torch.exp(-r.clamp(min=1.0))), torch.log(torch.expm1(r.clamp(max=1.0))))


def log_residual_survival(u, log_p, delta):
    """log of p Phibar(u - delta) - Phibar(u) (the unnormalised residual mass beyond u), for u >= u*.

    Written as Phibar(u) (exp(r) - 1) with r = log p + log Phibar(u - delta) - log Phibar(u) >= 0, and
    r = (u - u*) delta + int_{u - delta}^{u} g(x) dx, g the hazard excess (since log p = -int (x) dx over
    the same interval at u = u*): both terms are >= 0, so nothing cancels however small delta is.  For
    delta >= 0.1 the integral is the erfcx difference; below, 8-point Gauss-Legendre (g is smooth there).
    -inf where the mass underflows (tiny delta with p < 1 puts u* beyond any float), never NaN.
    Written by hand: no library has this difference of normal tails in log space.
    """
    log_p, delta = torch.broadcast_tensors(torch.as_tensor(log_p, dtype=torch.float64), torch.as_tensor(delta, dtype=torch.float64))
    u = torch.as_tensor(u, dtype=torch.float64).expand_as(delta)
    positive = delta > 0
    d = torch.where(positive, delta, torch.ones_like(delta))
    u_star = d / 2 - log_p / d
    finite = positive & torch.isfinite(u_star) & torch.isfinite(u)
    u = torch.where(finite, u, torch.zeros_like(u))
    u_star = torch.where(finite, u_star, torch.zeros_like(u_star))
    above = ((u - u_star) * d).clamp(min=0.0)
    wide = _log_erfcx((u - d) * _SQRT_HALF) - _log_erfcx(u * _SQRT_HALF)  # = int g over [u - d, u]
    nodes = (u - d).unsqueeze(-1) + d.unsqueeze(-1) * _GL_NODES.to(u.device)
    narrow = d * (_hazard_excess(nodes) * _GL_WEIGHTS.to(u.device)).sum(-1)
    r = above + torch.where(d >= 0.1, wide, narrow)
    log_mass = log_ndtr(-u) + _log_expm1(r.clamp(min=0.0))
    return torch.where(finite, log_mass, torch.full_like(log_mass, -math.inf))


def residual_mass(log_p: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """S = mass of max(p N(delta, 1) - N(0, 1), 0) = p (1 - Phi(u* - delta)) - (1 - Phi(u*)); 0 when delta = 0.

    Accurate to about 1e-12 relative for any delta > 0 and p in (0, 1], and 0 (not NaN) where S underflows."""
    delta = torch.as_tensor(delta, dtype=torch.float64)
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    return torch.exp(log_residual_survival(safe / 2 - log_p / safe, log_p, delta))


def sample_truncated_residual(log_p, delta, normal, iterations: int = 120):
    """u with density proportional to p phi(u - delta) - phi(u) on u > u*, by inverse survival.

    ``normal`` [A] standard normals supply the uniforms V = Phi(normal): u solves
    log G(u) = log V with G the normalised survival function (decreasing from 1 at u*).
    """
    u_star = delta / 2 - log_p / delta
    log_mass = log_residual_survival(u_star, log_p, delta)
    log_v = log_ndtr(normal)
    lo = u_star.clone()
    hi = torch.maximum(u_star, delta) + 60.0
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        above = log_residual_survival(mid, log_p, delta) - log_mass > log_v  # G(mid) > V: root is to the right
        lo = torch.where(above, mid, lo)
        hi = torch.where(above, hi, mid)
    return 0.5 * (lo + hi)


class SequenceSpeculativeDiffusion(SpeculativeDiffusion):
    """Block verification (sequence-level acceptance) on Gaussian steps."""

    name = "sequence_speculative_diffusion"

    def residual_u(self, log_p, delta, rng):
        """The one-dimensional part of the residual: exact truncated law (see module docstring)."""
        return sample_truncated_residual(log_p, delta, rng.normal(log_p.shape).to(log_p.device))

    def verify(self, draft, a, b, h, lengths, rng):
        A, L = h.shape
        dev = h.device
        steps_ix = torch.arange(L + 1, device=dev)
        valid = steps_ix[:L].unsqueeze(0) < lengths.unsqueeze(1)
        safe_h = torch.where(valid, h, torch.ones_like(h))
        log_ratio = torch.where(valid, gaussian_log_ratio(draft[:, 1:], a, b, safe_h), torch.zeros_like(h))
        log_p = [torch.zeros(A, dtype=torch.float64, device=dev)]
        for i in range(L):
            log_p.append(torch.clamp(log_p[-1] + log_ratio[:, i], max=0.0))
        log_p = torch.stack(log_p, dim=1)  # [A, L+1]
        p = torch.exp(log_p)
        delta = torch.where(valid, (a - b).norm(dim=-1) / safe_h.sqrt(), torch.zeros_like(h))  # [A, L]
        surplus = torch.cat([residual_mass(log_p[:, :L], delta), torch.zeros(A, 1, dtype=torch.float64, device=dev)], 1)
        one_minus_p = -torch.expm1(log_p)  # exact near p = 1
        denominator = surplus + one_minus_p
        safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
        hval = torch.where(denominator > 0, surplus / safe, torch.zeros_like(p)).clamp(max=1.0)
        hval[:, 0] = 1.0  # as in the discrete block rule: P(tau = 0) = prod_{j>0} (1 - h_j) either way
        at_length = steps_ix.unsqueeze(0) == lengths.unsqueeze(1)
        hval = torch.where(at_length, p, hval)
        hval = torch.where(steps_ix.unsqueeze(0) <= lengths.unsqueeze(1), hval, torch.zeros_like(hval))
        tau = rng.categorical(last_success_weights(hval))
        complete = tau >= lengths
        idx = torch.arange(A, device=dev)
        j = tau.clamp(max=L - 1)  # the step drawn from the residual (when not complete)
        point = draft[idx, lengths].clone()
        rej = torch.nonzero(~complete).squeeze(1)
        if rej.numel() > 0:
            jr = j[rej]
            ar, br, hr = a[rej, jr], b[rej, jr], h[rej, jr]
            diff = ar - br
            dist = diff.norm(dim=-1)
            e = diff / dist.unsqueeze(-1)
            dl = dist / hr.sqrt()
            u = self.residual_u(log_p[rej, jr], dl, rng)
            w = rng.normal((rej.numel(), a.shape[-1])).to(dev)
            w = w - (w * e).sum(-1, keepdim=True) * e
            point[rej] = br + hr.sqrt().unsqueeze(-1) * (u.unsqueeze(-1) * e + w)
        steps = torch.where(complete, lengths, tau + 1)
        return steps, point, complete
