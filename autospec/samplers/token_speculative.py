"""Token-level speculation (parallel sampling via counting, depth ~ n^(2/3)).

Accept drafted token i with probability min(1, P_i(y_i) / D_i(y_i)), token by
token; at the first rejection draw that coordinate from the residual
(P_i - D_i)+ normalised and stop; if every drafted token passes, the target
conditional after the block gives one more coordinate for free.
"""

from __future__ import annotations

import torch

from autospec.randomness import RandomSource
from autospec.samplers.speculation import SpeculativeSampler, gather_at_tokens, residual_law

__all__ = ["TokenSpeculative", "token_rule", "first_rejection_weights"]


def first_rejection_weights(accept: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Law of the number of accepted tokens, [A, K+1], from per-token acceptance
    probabilities accept [A, K] and the draft lengths [A].

    P(tau = j) = a_1 ... a_j (1 - a_{j+1}) for j < length, a_1 ... a_length for
    j = length.  Drawing tau from this law is the same as drawing the K
    Bernoulli(a_i) and scanning for the first failure, and gives the
    enumerator K + 1 outcomes instead of 2^K.
    """
    A, K = accept.shape
    steps = torch.arange(K + 1, device=accept.device)
    survive = torch.cat([accept.new_ones(A, 1), accept.cumprod(-1)], dim=1)  # prod_{i<=j} a_i
    reject_next = torch.cat([1.0 - accept, accept.new_ones(A, 1)], dim=1)
    weights = survive * reject_next
    at_length = steps.unsqueeze(0) == lengths.unsqueeze(1)
    weights = torch.where(at_length, survive, weights)
    return torch.where(steps.unsqueeze(0) <= lengths.unsqueeze(1), weights, torch.zeros_like(weights))


def token_rule(target, draft, tokens, lengths, rng: RandomSource):
    """target [A, K+1, q], draft [A, K, q], tokens [A, K], lengths [A] -> (accepted [A], next_law [A, q])."""
    A, K, q = draft.shape
    accept = (gather_at_tokens(target[:, :K], tokens) / gather_at_tokens(draft, tokens)).clamp(max=1.0)
    accepted = rng.categorical(first_rejection_weights(accept, lengths))
    index = accepted.view(A, 1, 1).expand(A, 1, q)
    target_next = target.gather(1, index).squeeze(1)
    draft_next = draft.gather(1, index.clamp(max=K - 1)).squeeze(1)
    rejected = (accepted < lengths).unsqueeze(-1)
    return accepted, torch.where(rejected, residual_law(target_next, draft_next), target_next)


class TokenSpeculative(SpeculativeSampler):
    """Autospeculative decoding with the token-level (classic) acceptance rule."""

    def rule(self, target, draft, tokens, lengths, rng):
        return token_rule(target, draft, tokens, lengths, rng)
