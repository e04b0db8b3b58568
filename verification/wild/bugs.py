"""Minimal reproductions of speculative-decoding losslessness bugs reported in public repositories.

Each class changes one thing in ``SpeculativeGeneration`` (the exact rule),
the way the cited code did; the mechanism is re-derived here from the report,
no code is copied.  ``verification.wild.catalogue`` pairs each with its
citation, an instance chosen to expose it and the checks that catch it.
"""

from __future__ import annotations

import torch

from autospec.samplers.token_speculative import first_rejection_weights
from verification.wild.generation import SpeculativeGeneration, at_tokens, ratio, sampling_law, speculative_rule

__all__ = [
    "Bf16DraftSampling", "RawDraftLogitsAsQ", "TargetOnlyVerification", "ResidualFromTarget", "BeamDraftStochasticRatio",
    "GreedyDraftSamplingRatio", "DraftIgnoresTemperature", "UnprocessedTargetInRatio", "MatchThenFreshDraw",
    "SamplerMatch", "BatchMisindexedDraftProbs",
]


class Bf16DraftSampling(SpeculativeGeneration):
    """deepseek-ai/DeepSpec#31: the draft token is sampled from softmax of the bf16 logits (native dtype) while the
    ratio and the residual use the softmax in ``dtype`` (float32 in DeepSpec) of the same logits."""

    exact = False

    def draft_step(self, raw, rng):
        sampled = sampling_law(raw, self.temperature, self.top_k, torch.bfloat16, self.logit_offset)
        return rng.categorical(sampled), self.law(raw)


class RawDraftLogitsAsQ(SpeculativeGeneration):
    """huggingface/transformers#47932: the candidate generator samples from the processed (top-k) draft logits but
    returns the raw logits, whose softmax becomes q in the ratio and the residual."""

    exact = False

    def draft_step(self, raw, rng):
        return rng.categorical(self.law(raw)), raw.to(torch.float64)


class TargetOnlyVerification(SpeculativeGeneration):
    """SafeAILab/EAGLE#329 (as the code does it): q is ignored (qx = 1): accept the drafted token with probability
    p(x); on rejection zero p(x), renormalise and draw the replacement from that.  Reported as lossy; exact."""

    def verify(self, p_raw, q, tokens, lengths, rng):
        p = self.law(p_raw)
        A, K, V = q.shape
        accepted = rng.categorical(first_rejection_weights(at_tokens(p[:, :K], tokens), lengths))  # P(accept y_i) = p_i(y_i)
        p_next = p.gather(1, accepted.view(A, 1, 1).expand(A, 1, V)).squeeze(1)
        token_next = tokens.gather(1, accepted.clamp(max=K - 1).unsqueeze(1)).squeeze(1)
        without = p_next.scatter(1, token_next.unsqueeze(1), 0.0)  # gtp[xi] = 0, renormalised by the draw
        rejected = (accepted < lengths).unsqueeze(-1)
        return accepted, torch.where(rejected & (without.sum(-1, keepdim=True) > 0), without, p_next)


class ResidualFromTarget(SpeculativeGeneration):
    """ShopeeLLM/Spec-RL#14: at the first rejection the replacement is drawn from the target p, not from (p - q)+."""

    exact = False

    def verify(self, p_raw, q, tokens, lengths, rng):
        return speculative_rule(self.law(p_raw), q, tokens, lengths, rng, residual=lambda p, q: p)


class BeamDraftStochasticRatio(SpeculativeGeneration):
    """apple/ml-recurrent-drafter#6: the draft is the top beam of a beam search over the draft model (deterministic),
    yet it is verified with min(1, p / q) and (p - q)+ as if it had been sampled from q."""

    exact = False
    beam_width = 2

    def propose(self, x, t, lengths, rng):
        A, n = x.shape
        V, W, K = self.draft.q, self.beam_width, int(lengths.max())
        tokens = torch.zeros((A, 1, 0), dtype=torch.long)  # [A, beams, j]
        laws = torch.zeros((A, 1, 0, V), dtype=torch.float64)  # the draft law at each beam prefix
        scores = torch.zeros((A, 1), dtype=torch.float64)  # draft log-probability of each beam
        for j in range(K):
            B = tokens.shape[1]
            prefix = x.unsqueeze(1).repeat(1, B, 1)
            for i in range(j):
                column = (t + i).clamp(max=n - 1).view(A, 1, 1).expand(A, B, 1)
                keep = (i < lengths).view(A, 1, 1).expand(A, B, 1)
                prefix.scatter_(2, column, torch.where(keep, tokens[:, :, i : i + 1], prefix.gather(2, column)))
            raw = self.draft.marginals(prefix.view(A * B, n))[torch.arange(A * B), (t + j).clamp(max=n - 1).repeat_interleave(B)]
            q = self.law(raw).view(A, B, V)
            total = (scores.unsqueeze(-1) + torch.log(q.clamp(min=1e-300))).view(A, B * V)
            top = total.topk(min(W, B * V), dim=1)  # one beam-search step: the best W (beam, token) pairs, sorted
            parent, token = top.indices // V, top.indices % V
            tokens = torch.cat([tokens.gather(1, parent.unsqueeze(-1).expand(-1, -1, j)), token.unsqueeze(-1)], 2)
            laws = torch.cat([laws.gather(1, parent.view(A, -1, 1, 1).expand(-1, -1, j, V)),
                              q.gather(1, parent.unsqueeze(-1).expand(-1, -1, V)).unsqueeze(2)], 2)
            scores = top.values
        return tokens[:, 0], laws[:, 0]  # the top beam, and the q its tokens are verified with


class GreedyDraftSamplingRatio(SpeculativeGeneration):
    """jaymody/speculative-sampling#3: the draft token is the argmax of the draft law, but the ratio and the
    residual use the draft's softmax q as if the token had been sampled from it."""

    exact = False

    def draft_step(self, raw, rng):
        q = self.law(raw)
        return q.argmax(-1), q


class DraftIgnoresTemperature(SpeculativeGeneration):
    """z-lab/dflash#74: the draft sampler ignores the request's temperature (draws at T = 1) while the verifier's q is
    the tempered draft law."""

    exact = False

    def draft_step(self, raw, rng):
        return rng.categorical(raw.to(torch.float64)), self.law(raw)


class UnprocessedTargetInRatio(SpeculativeGeneration):
    """vllm-project/vllm#10198 (the bug its fix removed): sampling parameters are applied to the draft but the target
    probabilities used in the ratio and the residual are the raw softmax; only the bonus token uses them."""

    exact = False

    def verify(self, p_raw, q, tokens, lengths, rng):
        accepted, next_law = speculative_rule(p_raw.to(torch.float64), q, tokens, lengths, rng)
        A, V = next_law.shape
        bonus = self.law(p_raw).gather(1, accepted.view(A, 1, 1).expand(A, 1, V)).squeeze(1)
        return accepted, torch.where((accepted == lengths).unsqueeze(-1), bonus, next_law)


def _match(p, tokens, lengths, rng):
    """One target draw z_i per position [A, K+1]; tau = the first i with tokens_i != z_i (or the length)."""
    A, K = tokens.shape
    z = rng.categorical(p)
    steps = torch.arange(K + 1)
    mismatch = torch.cat([tokens != z[:, :K], torch.ones((A, 1), dtype=torch.bool)], 1) | (steps >= lengths.unsqueeze(1))
    accepted = mismatch.to(torch.long).argmax(1)  # first True
    return z, accepted


class MatchThenFreshDraw(SpeculativeGeneration):
    """ml-explore/mlx-swift-lm#459 (the rule as the PR describes it): accept drafted tokens while they equal a token
    sampled from the target; at the first mismatch the emitted token is a fresh target draw, not the compared one."""

    exact = False

    def verify(self, p_raw, q, tokens, lengths, rng):
        p = self.law(p_raw)
        _, accepted = _match(p, tokens, lengths, rng)
        A, V = q.shape[0], p.shape[-1]
        return accepted, p.gather(1, accepted.view(A, 1, 1).expand(A, 1, V)).squeeze(1)


class SamplerMatch(SpeculativeGeneration):
    """lablup/mlxcel#902 / #992 ('sampler-match'): accept drafted tokens while they equal the target's own draw at
    that position and emit that draw on every branch.  Reported (#902) as biased; #992 shows it exact."""

    def verify(self, p_raw, q, tokens, lengths, rng):
        z, accepted = _match(self.law(p_raw), tokens, lengths, rng)
        emitted = z.gather(1, accepted.unsqueeze(1)).squeeze(1)
        return accepted, torch.nn.functional.one_hot(emitted, p_raw.shape[-1]).to(torch.float64)


class BatchMisindexedDraftProbs(SpeculativeGeneration):
    """1CatAI/1Cat-vLLM#656 (the symptom's mechanism class): with more than two sequences in the batch, the draft
    probabilities are read from a buffer indexed as if it held two requests, so row r verifies with row r mod 2's q.
    One or two sequences: exact; three or more: every row from the third on is verified against another row's q."""

    exact = False

    def verify(self, p_raw, q, tokens, lengths, rng):
        A = q.shape[0]
        if A > 2:
            q = q[torch.arange(A) % 2]
        return speculative_rule(self.law(p_raw), q, tokens, lengths, rng)


# ratio is re-exported for users writing their own variants
__all__ += ["ratio"]
