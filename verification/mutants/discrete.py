"""Wrong any-order samplers: each a realistic one-change bug in a correct sibling."""

from __future__ import annotations

import torch

from autospec.samplers import SequenceSpeculative, TokenSpeculative
from autospec.samplers.sequence_speculative import block_acceptance, last_success_weights
from autospec.samplers.speculation import gather_at_tokens, residual_law
from autospec.samplers.token_speculative import first_rejection_weights
from verification.mutants import Mutant, register

BLOCK = 3


def _next_law(target, draft, accepted, lengths, residual):
    """Shared tail of the token rule: residual at a rejection, target after a full block."""
    A, K, q = draft.shape
    index = accepted.view(A, 1, 1).expand(A, 1, q)
    target_next = target.gather(1, index).squeeze(1)
    draft_next = draft.gather(1, index.clamp(max=K - 1)).squeeze(1)
    rejected = (accepted < lengths).unsqueeze(-1)
    return torch.where(rejected, residual(target_next, draft_next), target_next)


class ResidualFromTarget(TokenSpeculative):
    """Token rule whose rejected coordinate is redrawn from the target conditional, not (P - D)+."""

    def rule(self, target, draft, tokens, lengths, rng):
        accept = (gather_at_tokens(target[:, : draft.shape[1]], tokens) / gather_at_tokens(draft, tokens)).clamp(max=1.0)
        accepted = rng.categorical(first_rejection_weights(accept, lengths))
        return accepted, _next_law(target, draft, accepted, lengths, lambda p, d: p)


class InvertedRatio(TokenSpeculative):
    """Token rule accepting with min(1, D / P) instead of min(1, P / D)."""

    def rule(self, target, draft, tokens, lengths, rng):
        K = draft.shape[1]
        p_tok, d_tok = gather_at_tokens(target[:, :K], tokens), gather_at_tokens(draft, tokens)
        accept = torch.where(p_tok > 0, d_tok / p_tok.clamp(min=1e-300), torch.ones_like(p_tok)).clamp(max=1.0)
        accepted = rng.categorical(first_rejection_weights(accept, lengths))
        return accepted, _next_law(target, draft, accepted, lengths, residual_law)


class NoVerification(TokenSpeculative):
    """Parallel unmasking: every drafted coordinate is kept, nothing is verified."""

    exact = False

    def rule(self, target, draft, tokens, lengths, rng):
        return lengths.clone(), target.gather(1, lengths.view(-1, 1, 1).expand(-1, 1, draft.shape[-1])).squeeze(1)


class BlockResidualWithoutScale(SequenceSpeculative):
    """Block rule drawing the residual from max(P - D, 0) instead of max(p_tau P - D, 0)."""

    def rule(self, target, draft, tokens, lengths, rng):
        p, h = block_acceptance(target, draft, tokens, lengths)
        accepted = rng.categorical(last_success_weights(h))
        return accepted, _next_law(target, draft, accepted, lengths, residual_law)


register(Mutant("token-residual-from-target", ResidualFromTarget.__doc__, lambda: ResidualFromTarget(BLOCK), lambda: TokenSpeculative(BLOCK)))
register(Mutant("token-inverted-ratio", InvertedRatio.__doc__, lambda: InvertedRatio(BLOCK), lambda: TokenSpeculative(BLOCK)))
register(Mutant("no-verification", NoVerification.__doc__, lambda: NoVerification(BLOCK), lambda: TokenSpeculative(BLOCK)))
register(Mutant("block-residual-unscaled", BlockResidualWithoutScale.__doc__, lambda: BlockResidualWithoutScale(BLOCK), lambda: SequenceSpeculative(BLOCK)))
