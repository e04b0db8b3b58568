"""Sequence-level speculation (autospeculation, depth ~ n^(1/2)): block verification.

With p_0 = 1 and p_i = min(1, p_{i-1} P_i(y_i) / D_i(y_i)) (P the target
conditional and D the draft law of the i-th drafted coordinate, both given
prefix i - 1), S_i = sum_x max(p_i P_{i+1}(x) - D_{i+1}(x), 0) and

    h_i = S_i / (S_i + 1 - p_i)   for i < k   (0 when the denominator is 0),
    h_k = p_k,

keep y_1..y_tau for tau the largest i with eta_i <= h_i (eta_i iid uniform),
then draw one more coordinate from max(p_tau P_{tau+1} - D_{tau+1}, 0)
normalised, or from P_{k+1} when tau = k.  Acceptance depends on the ratio of
the whole prefix, which is what lets a block lose one sqrt(KL) instead of one
per token.
"""

from __future__ import annotations

import torch

from autospec.randomness import RandomSource
from autospec.samplers.speculation import SpeculativeSampler, gather_at_tokens, residual_law

__all__ = ["SequenceSpeculative", "block_rule", "block_acceptance", "last_success_weights"]


def block_acceptance(target, draft, tokens, lengths):
    """(p [A, K+1], h [A, K+1]) of the block rule; entries past each length are 0.

    Products of ratios are taken in log space (float64): long blocks of small
    ratios must not underflow or lose precision.
    """
    A, K, q = draft.shape
    steps = torch.arange(K + 1, device=draft.device)
    log_ratio = torch.log(gather_at_tokens(target[:, :K], tokens)) - torch.log(gather_at_tokens(draft, tokens))
    log_p = [torch.zeros(A, dtype=draft.dtype, device=draft.device)]
    for i in range(K):
        log_p.append(torch.clamp(log_p[-1] + log_ratio[:, i], max=0.0))
    p = torch.exp(torch.stack(log_p, dim=1))  # [A, K+1], p[:, 0] = 1
    # S_i for i = 0..K-1 (index K padded with 0)
    surplus = (p[:, :K].unsqueeze(-1) * target[:, :K] - draft).clamp(min=0.0).sum(-1)
    surplus = torch.cat([surplus, surplus.new_zeros(A, 1)], dim=1)
    denominator = surplus + (1.0 - p)  # (1 - p) first: exact when p is near 1
    safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    h = torch.where(denominator > 0, surplus / safe, torch.zeros_like(p)).clamp(max=1.0)
    # h_0 = 1: then tau = 0 has probability prod_{j>=1}(1 - h_j), which is exactly what
    # the formula gives (h_0 = S_0 / S_0 = 1) unless S_0 = 0, when that product is 0
    # anyway; fixing it keeps the law of tau well defined under rounding.
    h[:, 0] = 1.0
    at_length = steps.unsqueeze(0) == lengths.unsqueeze(1)
    h = torch.where(at_length, p, h)
    h = torch.where(steps.unsqueeze(0) <= lengths.unsqueeze(1), h, torch.zeros_like(h))
    return p, h


def last_success_weights(h: torch.Tensor) -> torch.Tensor:
    """Law of tau = max{i : eta_i <= h_i}, [A, K+1]: P(tau = i) = h_i prod_{j>i} (1 - h_j).

    The same law as drawing every Bernoulli(h_i) and taking the largest
    success; one categorical gives the enumerator K + 1 outcomes, not 2^(K+1).
    """
    fail = 1.0 - h
    # prod_{j>i} fail_j: reverse exclusive cumulative product
    after = torch.cat([fail[:, 1:].flip(1).cumprod(1).flip(1), fail.new_ones(fail.shape[0], 1)], dim=1)
    return h * after


def block_rule(target, draft, tokens, lengths, rng: RandomSource):
    """target [A, K+1, q], draft [A, K, q], tokens [A, K], lengths [A] -> (accepted [A], next_law [A, q])."""
    A, K, q = draft.shape
    p, h = block_acceptance(target, draft, tokens, lengths)
    accepted = rng.categorical(last_success_weights(h))
    index = accepted.view(A, 1, 1).expand(A, 1, q)
    target_next = target.gather(1, index).squeeze(1)
    draft_next = draft.gather(1, index.clamp(max=K - 1)).squeeze(1)
    p_tau = p.gather(1, accepted.unsqueeze(1)).squeeze(1)
    rejected = (accepted < lengths).unsqueeze(-1)
    return accepted, torch.where(rejected, residual_law(target_next, draft_next, p_tau), target_next)


class SequenceSpeculative(SpeculativeSampler):
    """Autospeculation with the sequence-level (block verification) rule."""

    def rule(self, target, draft, tokens, lengths, rng):
        return block_rule(target, draft, tokens, lengths, rng)
