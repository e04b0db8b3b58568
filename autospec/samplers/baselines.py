"""Inexact parallel decoders, kept as negative controls the harness must flag.

Each is what some fast sampler in use actually does; none verifies its draft,
so none samples the target law (``exact = False``).  The audit and
``verification.speed_error`` report their exact TV next to their rounds.

* ``ParallelUnmasking(k)``: each round, query the marginals once and fix the
  next k coordinates of the order independently from them (masked-diffusion
  language models).  ceil(n / k) rounds; exact only for product targets.
* ``ConfidenceUnmasking(threshold)``: each round, draw every free coordinate
  from its marginal and keep those whose drawn value has probability >=
  threshold (at least the most confident one).
* ``TopKSequential(top_k)``: sequential, but each coordinate from its
  marginal truncated to the top_k values (top_k = 1: greedy decoding).
* ``TypicalAcceptance(block_size, epsilon, delta)``: autospeculative drafts
  accepted by Medusa's typical-acceptance criterion
  P(y) >= min(epsilon, delta * exp(-H(P))) instead of a rejection rule; the
  coordinate after the accepted prefix is drawn from the target conditional.
"""

from __future__ import annotations

import torch

from autospec.oracles import CountingOracle
from autospec.randomness import RandomSource
from autospec.samplers.base import Sampler
from autospec.samplers.orders import check_order, draw_order
from autospec.samplers.speculation import SpeculativeSampler, gather_at_tokens

__all__ = ["ParallelUnmasking", "ConfidenceUnmasking", "TopKSequential", "TypicalAcceptance", "typical_rule", "BASELINES"]


class ParallelUnmasking(Sampler):
    """Fix k coordinates per round from the product of the current marginals, unverified."""

    exact = False

    def __init__(self, k: int = 2, order: str = "random", device="cpu"):
        super().__init__(device)
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        self.k, self.order = k, check_order(order)
        self.name = f"ParallelUnmasking(k={k})"

    def run(self, oracle: CountingOracle, num_samples: int, rng: RandomSource) -> torch.Tensor:
        n, device = oracle.n, self.device
        order = draw_order(self.order, num_samples, n, rng, device)
        x = torch.full((num_samples, n), -1, dtype=torch.long, device=device)
        ids = torch.arange(num_samples, device=device)
        for start in range(0, n, self.k):
            marginals = oracle.marginals(x, sample_ids=ids)
            cols = order[:, start:start + self.k]  # [N, k']
            laws = marginals.gather(1, cols.unsqueeze(-1).expand(*cols.shape, oracle.q))
            x.scatter_(1, cols, rng.categorical(laws).to(device))
        return x


class ConfidenceUnmasking(Sampler):
    """Draw all free coordinates; keep those drawn with probability >= threshold (at least one)."""

    exact = False

    def __init__(self, threshold: float = 0.6, device="cpu"):
        super().__init__(device)
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
        self.threshold = threshold
        self.name = f"ConfidenceUnmasking(threshold={threshold:g})"

    def run(self, oracle: CountingOracle, num_samples: int, rng: RandomSource) -> torch.Tensor:
        n, q, device = oracle.n, oracle.q, self.device
        x = torch.full((num_samples, n), -1, dtype=torch.long, device=device)
        while True:
            active = torch.nonzero((x < 0).any(1)).squeeze(-1)
            if active.numel() == 0:
                return x
            x_a = x[active]
            marginals = oracle.marginals(x_a, sample_ids=active)
            free = x_a < 0
            laws = torch.where(free.unsqueeze(-1), marginals, torch.nn.functional.one_hot(x_a.clamp(min=0), q).to(marginals))
            draws = rng.for_rows(active).categorical(laws).to(device)  # pinned coordinates draw their own value (one outcome)
            confidence = torch.where(free, marginals.gather(-1, draws.unsqueeze(-1)).squeeze(-1), torch.full_like(marginals[..., 0], -1.0))
            keep = free & (confidence >= self.threshold)
            best = confidence.argmax(1)
            none = ~keep.any(1)
            keep[none, best[none]] = True
            x[active] = torch.where(keep, draws, x_a)


class TopKSequential(Sampler):
    """Sequential decoding from marginals truncated to their top_k values (1 = greedy)."""

    exact = False

    def __init__(self, top_k: int = 1, order: str = "random", device="cpu"):
        super().__init__(device)
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be an int >= 1, got {top_k!r}")
        self.top_k, self.order = top_k, check_order(order)
        self.name = "Greedy" if top_k == 1 else f"TopKSequential(top_k={top_k})"

    def run(self, oracle: CountingOracle, num_samples: int, rng: RandomSource) -> torch.Tensor:
        n, q, device = oracle.n, oracle.q, self.device
        order = draw_order(self.order, num_samples, n, rng, device)
        x = torch.full((num_samples, n), -1, dtype=torch.long, device=device)
        ids = torch.arange(num_samples, device=device)
        for step in range(n):
            marginals = oracle.marginals(x, sample_ids=ids)
            col = order[:, step]
            law = marginals[ids, col]  # [N, q]
            kth = law.topk(min(self.top_k, q), dim=-1).values[:, -1:]
            # Ties at the k-th value: keep the lowest indices only, so exactly top_k values remain.
            ranks = torch.argsort(torch.argsort(-law, dim=-1, stable=True), dim=-1)
            truncated = torch.where((ranks < self.top_k) & (law >= kth), law, torch.zeros_like(law))
            x[ids, col] = rng.categorical(truncated).to(device)
        return x


def typical_rule(epsilon: float, delta: float):
    """Medusa's typical acceptance as a verification rule (see ``VerificationRule``)."""

    def rule(target, draft, tokens, lengths, rng: RandomSource):
        A, K, q = draft.shape
        p_tok = gather_at_tokens(target[:, :K], tokens)
        p = target[:, :K]
        entropy = -(torch.where(p > 0, p * torch.log(p.clamp(min=1e-300)), torch.zeros_like(p))).sum(-1)
        ok = p_tok >= torch.minimum(torch.full_like(entropy, epsilon), delta * torch.exp(-entropy))
        ok = ok & (torch.arange(K, device=draft.device).unsqueeze(0) < lengths.unsqueeze(1))
        accepted = ok.to(torch.long).cumprod(1).sum(1)
        next_law = target.gather(1, accepted.view(A, 1, 1).expand(A, 1, q)).squeeze(1)
        return accepted, next_law

    return rule


class TypicalAcceptance(SpeculativeSampler):
    """Autospeculation with Medusa-style typical acceptance (no rejection sampling)."""

    exact = False

    def __init__(self, block_size: int = 2, epsilon: float = 0.3, delta: float = 0.5, order: str = "random", device="cpu"):
        super().__init__(block_size, order, device)
        self.epsilon, self.delta = epsilon, delta
        self._rule = typical_rule(epsilon, delta)
        self.name = f"TypicalAcceptance(block_size={block_size}, epsilon={epsilon:g}, delta={delta:g})"

    def rule(self, target, draft, tokens, lengths, rng):
        return self._rule(target, draft, tokens, lengths, rng)


def BASELINES() -> list[Sampler]:
    """One instance of each inexact baseline, as used in the speed-versus-error table."""
    return [
        ParallelUnmasking(k=2),
        ParallelUnmasking(k=3),
        ConfidenceUnmasking(threshold=0.6),
        TopKSequential(top_k=1),
        TopKSequential(top_k=2),
        TypicalAcceptance(block_size=2, epsilon=0.3, delta=0.5),
    ]
