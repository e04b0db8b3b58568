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

import torch
from torch.special import log_ndtr

from autospec.samplers.asd import SpeculativeDiffusion
from autospec.samplers.diffusion_base import gaussian_log_ratio
from autospec.samplers.sequence_speculative import last_success_weights

__all__ = ["SequenceSpeculativeDiffusion", "residual_mass", "log_residual_survival", "sample_truncated_residual"]


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x <= 0 (-inf at x = 0)."""
    x = x.clamp(max=0.0)
    return torch.where(x > -0.6931471805599453, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def log_residual_survival(u, log_p, delta):
    """log of p Phibar(u - delta) - Phibar(u) (the unnormalised residual mass beyond u); delta > 0."""
    first = log_p + log_ndtr(delta - u)
    return first + _log1mexp(log_ndtr(-u) - first)


def residual_mass(log_p: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """S = mass of max(p N(delta, 1) - N(0, 1), 0) = p (1 - Phi(u* - delta)) - (1 - Phi(u*)); 0 when delta = 0."""
    positive = delta > 0
    safe = torch.where(positive, delta, torch.ones_like(delta))
    u_star = safe / 2 - log_p / safe
    mass = torch.exp(log_residual_survival(u_star, log_p, safe))
    return torch.where(positive, mass, torch.zeros_like(mass))


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
