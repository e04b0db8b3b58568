"""The draft / verify loop shared by the speculative any-order samplers.

Each round, for every unfinished sample with t coordinates fixed:

1. Draft the next k coordinates of its order independently from the draft
   law ``D`` (autospeculation: the single-coordinate marginals the oracle
   returned in the previous round; a draft model's marginals otherwise).
2. In one oracle call, ask the target conditionals at the k + 1 prefixes
   x, x + y_1, ..., x + y_1..y_k of the draft.
3. A verification rule (token-level or sequence-level) keeps the first tau
   drafted coordinates and gives the law of the next coordinate (a residual,
   or the target conditional after a fully accepted block); draw it.

The samples' assignments live in an oracle session (``CountingOracle.open_session``): a round's
prefix rows are made from it, and the kept draft and the drawn coordinate are pinned into it (checked:
free coordinates only), so an oracle that keeps incremental state (the HMM's segment trees) updates it
by the new pins instead of rebuilding it from x every round.

Pipelining: the next round drafts from the conditionals at prefix tau, which
do not yet include the coordinate drawn in step 3.  The draft only has to be
a law fixed before it is drawn, so this stays exact and costs one round per
iteration.  The first round has nothing to draft from: it drafts nothing and
just draws one coordinate from the target.
"""

from __future__ import annotations

from typing import Callable

import torch

from autospec.oracles import CountingOracle
from autospec.randomness import RandomSource
from autospec.samplers.base import Sampler
from autospec.samplers.block_size import BlockSizePolicy, as_block_policy
from autospec.samplers.orders import check_order, draw_order

__all__ = ["SpeculativeSampler", "VerificationRule", "residual_law", "gather_at_tokens"]

# rule(target [A, K+1, q], draft [A, K, q], tokens [A, K], lengths [A], rng)
#   -> (accepted [A] in 0..lengths, next_law [A, q] weights for position accepted + 1)
VerificationRule = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, RandomSource],
    tuple[torch.Tensor, torch.Tensor],
]


def gather_at_tokens(laws: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """laws [A, K, q], tokens [A, K] -> [A, K]: each law's probability of its token."""
    return laws.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def residual_law(target: torch.Tensor, draft: torch.Tensor, scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """max(scale * target - draft, 0) over the last axis (unnormalised).

    Where it vanishes the rejection that calls for it has probability zero;
    the target law stands in so the draw stays well defined.
    """
    if isinstance(scale, torch.Tensor):
        scale = scale.unsqueeze(-1)
    weights = (scale * target - draft).clamp(min=0.0)
    empty = weights.sum(-1, keepdim=True) <= 0
    return torch.where(empty, target, weights)


class SpeculativeSampler(Sampler):
    """Draft k coordinates, verify them in one round with ``rule``, repeat.

    Subclasses set ``rule``; ``draft_laws`` may be overridden to draft from a
    separate model instead of the target's own marginals.
    """

    rule_name = "speculative"

    def __init__(
        self,
        block_size: int | BlockSizePolicy | str = 4,
        order: str = "random",
        device: str | torch.device = "cpu",
    ):
        super().__init__(device)
        self.block_policy = as_block_policy(block_size)
        self.order = check_order(order)
        self.name = f"{type(self).__name__}(block_size={self.block_policy!r})"

    def rule(self, target, draft, tokens, lengths, rng):
        raise NotImplementedError

    def draft_laws(self, base: torch.Tensor, positions: torch.Tensor, active: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Draft law of each drafted position, [A, K, q]: by default the target conditionals the last
        round returned for those positions (base [A, >= K, q], aligned with positions [A, K])."""
        return base[:, : positions.shape[1]]

    def run(self, oracle: CountingOracle, num_samples: int, rng: RandomSource) -> torch.Tensor:
        n, q, device = oracle.n, oracle.q, self.device
        order = draw_order(self.order, num_samples, n, rng, device)
        # The samples' assignments live in an oracle session: each round's prefix rows are made from it
        # and every kept value is pinned into it, so an oracle may keep incremental state between rounds.
        session = oracle.open_session(torch.full((num_samples, n), -1, dtype=torch.long, device=device), for_prefixes=True)
        x = session.x  # read only: the session writes it
        t = torch.zeros(num_samples, dtype=torch.long, device=device)  # coordinates fixed so far
        # draft source: base[s, m] = law of order[s, t + m] at the accepted prefix of the last round
        base = torch.zeros((num_samples, 0, q), dtype=torch.float64, device=device)
        block = self.block_policy.initial(num_samples, n, device)
        first_round = True
        while True:
            active = torch.nonzero(t < n).squeeze(-1)
            if active.numel() == 0:
                return x
            A = active.numel()
            round_rng = rng.for_rows(active)  # this round's draws: one entry per active sample
            t_a, x_a, order_a = t[active], x[active], order[active]
            remaining = n - t_a
            # The first round has no marginals to draft from: draft nothing.
            lengths = torch.zeros_like(t_a) if first_round else torch.minimum(block[active], remaining)
            K = int(lengths.max())
            steps = torch.arange(K + 1, device=device)
            # positions[a, j] = order[a, t + j]: the j-th drafted coordinate (j = K: the one after)
            in_range = (t_a.unsqueeze(1) + steps) < n
            positions = order_a.gather(1, (t_a.unsqueeze(1) + steps).clamp(max=n - 1))
            drafted = steps[:K].unsqueeze(0) < lengths.unsqueeze(1)  # [A, K]

            # 1. Draft.  Undrafted slots get a point mass, so they draw nothing.
            draft = self.draft_laws(base[active], positions[:, :K], active, x_a)
            draft = torch.where(drafted.unsqueeze(-1), draft, _point_mass(A, K, q, device))
            tokens = round_rng.categorical(draft).to(device) if K > 0 else torch.zeros((A, 0), dtype=torch.long, device=device)

            # 2. One round: the target conditionals at prefixes 0..lengths that still have a coordinate to ask about.
            # Row (a, j) is prefix j of sample a: x_a with its drafted slots m < j pinned to their tokens.
            asked = (steps.unsqueeze(0) <= lengths.unsqueeze(1)) & in_range  # [A, K+1]
            owner, prefix_length = torch.nonzero(asked, as_tuple=True)  # row order: row-major over (a, j)
            row_of = torch.full((A, K + 1), -1, dtype=torch.long, device=device)
            row_of[owner, prefix_length] = torch.arange(owner.numel(), device=device)
            rows = session.prefix_rows(active, positions[:, :K], tokens, drafted, owner, prefix_length)
            # Each prefix is read at its own slot now; the accepted one is read again below for the next draft.
            answers = oracle.query_prefixes(rows, sample_ids=active[owner],
                                            positions=positions[owner, prefix_length].unsqueeze(1))  # [rows, 1, q]
            # target[a, j] = law of positions[a, j] given prefix j  ([A, K+1, q]); unasked slots: point mass
            slot_law = answers[row_of.clamp(min=0), 0]
            target = torch.where(asked.unsqueeze(-1), slot_law, _point_mass(A, K + 1, q, device))

            # 3. Verify, then draw the next coordinate.
            if K > 0:
                accepted, next_law = self.rule(target, draft, tokens, lengths, round_rng)
            else:
                accepted, next_law = torch.zeros_like(lengths), target[:, 0]
            has_next = (t_a + accepted) < n
            next_law = torch.where(has_next.unsqueeze(-1), next_law, _point_mass(A, 1, q, device)[:, 0])
            next_value = round_rng.categorical(next_law).to(device)

            keep = drafted & (steps[:K].unsqueeze(0) < accepted.unsqueeze(1))
            next_position = positions.gather(1, accepted.unsqueeze(1)).squeeze(1)
            t_next = t_a + accepted + has_next.to(torch.long)
            if not first_round:
                block[active] = self.block_policy.update(block[active], accepted, lengths)
            # Pipelining: the next draft comes from the conditionals at prefix `accepted`, read at the
            # positions the next round drafts (the same round's answer: no new round).
            going = t_next < n
            width = int(torch.minimum(block[active], n - t_next)[going].max()) if bool(going.any()) else 0
            base = torch.zeros((num_samples, width, q), dtype=torch.float64, device=device)
            if width:
                rows = row_of.gather(1, accepted.unsqueeze(1)).squeeze(1)[going]
                ahead = order_a[going].gather(1, (t_next[going].unsqueeze(1) + torch.arange(width, device=device)).clamp(max=n - 1))
                base[active[going]] = oracle.reread(rows, ahead)
            # The kept draft and the drawn coordinate, pinned after the reread (which reads this round's rows).
            pin_rows = torch.cat([active.unsqueeze(1).expand_as(keep)[keep], active[has_next]])
            session.pin(pin_rows, torch.cat([positions[:, :K][keep], next_position[has_next]]),
                        torch.cat([tokens[keep], next_value[has_next]]))
            t[active] = t_next
            first_round = False

def _write(x: torch.Tensor, columns: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Copy of x [..., n] with x[..., columns] = values where mask ([..., m] each).

    Unmasked writes go to a scratch column that is dropped, so duplicate
    columns among the unmasked slots cannot race with the masked ones.
    """
    n = x.shape[-1]
    padded = torch.cat([x, x.new_full((*x.shape[:-1], 1), -1)], dim=-1)
    padded.scatter_(-1, torch.where(mask, columns, torch.full_like(columns, n)), values)
    return padded[..., :n]


def _point_mass(A: int, K: int, q: int, device) -> torch.Tensor:
    out = torch.zeros((A, K, q), dtype=torch.float64, device=device)
    out[..., 0] = 1.0
    return out
