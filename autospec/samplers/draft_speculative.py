"""Draft-model speculative decoding: a separate, cheaper draft oracle proposes, the target verifies.

Each round, for every unfinished sample with t coordinates fixed (x):

1. Draft.  ``num_drafts`` independent drafts of the next k coordinates of the
   order, each autoregressive within the block: draft token j is drawn from
   the draft oracle's conditional at x + y_1..y_{j-1}.  That takes k
   sequential calls of the draft oracle (k draft rounds; the drafts of one
   slot go in one call), never the target.
2. One target round: the target conditionals at every prefix of every draft
   (x, x + y_1, ..., x + y_1..y_k), (k + 1) * num_drafts rows.
3. Verify with one of four rules, then draw the next coordinate:

   * ``"token"``: classic speculative sampling (accept y_i with probability
     min(1, P_i(y_i) / D_i(y_i)), residual (P - D)+ at the first rejection,
     a free extra coordinate after a full block).
   * ``"block"``: block verification (sequence-level rule, see
     ``sequence_speculative.block_rule``).
   * ``"specinfer"`` (alias ``"multi"``, its former name): several i.i.d.
     drafts verified together as a tree by *recursive rejection sampling*, as
     in SpecInfer (Miao et al. 2023).  At each level the candidate tokens are
     those of the drafts that still agree with the accepted prefix; they are
     tried in turn against the current residual r (accept y with probability
     min(1, r(y) / D(y)), else r <- (r - D)+ normalised), and if all fail the
     coordinate is drawn from the last residual.
   * ``"spectr"``: the same tree, each level resolved by SpecTr's k-sequential
     selection (K-SEQ, Sun et al. 2023): with k candidates, a division factor
     rho in [1, k] with S(beta(rho)) <= rho, where beta(rho) = sum_x min(D(x),
     P(x) / rho) and S(beta) = (1 - (1 - beta)^k) / beta = sum_{i<k} (1 - beta)^i;
     candidates are tried in turn, each accepted with probability
     min(1, P(y) / (rho D(y))) (no residual update between them), and if all
     fail the coordinate is drawn from the residual P - S min(D, P / rho)
     normalised (= (P - rho D)+ at the root S = rho).  SpecTr's optimal
     transport formulation (the LP over the k-draft coupling) is not
     implemented; K-SEQ is its (1 - 1/e)-optimal selection.

   For both multi-draft rules the level's output token is exactly
   P-distributed; only its *value* matters for what follows (the drafts that
   carry it continue), so the sampler draws it from its law given the
   candidates with one categorical (q outcomes, which keeps enumeration
   cheap).  The drafts' continuations are independent of the level's coins
   given their own tokens, which is why continuing with every agreeing draft
   stays exact.  ``num_drafts = 1`` is the token rule for both.

Depth accounting (honest): a round is one batch of parallel oracle calls of
*any* model.  The draft's k calls per target round are sequential to it, so a
sample's sequential depth is its target rounds plus its draft rounds, and
that is what ``SampleResult.rounds`` reports; ``.queries`` is target plus
draft queries (one query = one row of conditionals, [n, q], of either model).
The split is in ``.target_rounds``, ``.draft_rounds``, ``.target_queries``
and ``.draft_queries`` (also in ``info``).

Exactness does not depend on the draft: any law known before the draw works,
including drafts with zeros where the target has mass (the residual covers
them) and drafts with mass where the target has none (such tokens are never
accepted).  A draft conditional at a prefix the draft itself deems impossible
is the draft oracle's placeholder, a known law like any other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from autospec.oracles import CountingOracle, MarginalOracle
from autospec.randomness import RandomSource
from autospec.samplers.base import Sampler, SampleResult, check_num_samples, check_rng
from autospec.samplers.orders import check_order, draw_order
from autospec.samplers.sequence_speculative import block_rule
from autospec.samplers.speculation import _point_mass, _write, residual_law
from autospec.samplers.token_speculative import token_rule

__all__ = ["DraftSpeculative", "DraftSampleResult", "specinfer_level_law", "spectr_level_law", "kseq_division_factor",
           "multi_draft_level_law", "RULES", "MULTI_DRAFT_RULES"]

RULES = ("token", "block", "specinfer", "spectr")
MULTI_DRAFT_RULES = ("specinfer", "spectr")
RULE_ALIASES = {"multi": "specinfer"}  # the name the SpecInfer-style rule had before "spectr" was added


@dataclass
class DraftSampleResult(SampleResult):
    """rounds [N] = target + draft rounds (sequential depth); queries [N] = target + draft queries."""

    @property
    def target_rounds(self) -> torch.Tensor:
        return self.info["target_rounds"]

    @property
    def draft_rounds(self) -> torch.Tensor:
        return self.info["draft_rounds"]

    @property
    def target_queries(self) -> torch.Tensor:
        return self.info["target_queries"]

    @property
    def draft_queries(self) -> torch.Tensor:
        return self.info["draft_queries"]


def specinfer_level_law(target: torch.Tensor, draft: torch.Tensor, candidates: torch.Tensor, alive: torch.Tensor):
    """Recursive rejection sampling (SpecInfer) at one tree level, as a law over token values.

    target [A, q] (P at the shared prefix), draft [A, q] (D at the same prefix),
    candidates [A, m] drafted tokens, alive [A, m] which drafts still agree
    with the accepted prefix (tried in index order).  Returns law [A, q]: the
    law of the level's output token given the candidates.  Averaged over
    candidates i.i.d. from D it is P.
    """
    A, q = target.shape
    law = torch.zeros_like(target)
    residual = target.clone()
    survive = torch.ones(A, dtype=target.dtype, device=target.device)
    for i in range(candidates.shape[1]):
        y = candidates[:, i : i + 1]
        r_y = residual.gather(1, y).squeeze(1)
        d_y = draft.gather(1, y).squeeze(1)
        accept = torch.where(d_y > 0, (r_y / torch.where(d_y > 0, d_y, torch.ones_like(d_y))).clamp(max=1.0),
                             torch.zeros_like(d_y))
        accept = torch.where(alive[:, i], accept, torch.zeros_like(accept))
        law.scatter_add_(1, y, (survive * accept).unsqueeze(1))
        survive = survive * (1.0 - accept)
        new_residual = residual_law(residual, draft)
        new_residual = new_residual / new_residual.sum(-1, keepdim=True)
        residual = torch.where(alive[:, i : i + 1], new_residual, residual)
    return law + survive.unsqueeze(1) * residual


multi_draft_level_law = specinfer_level_law  # backward-compatible name


def _geometric_sum(beta, k):
    """S = sum_{i<k} (1 - beta)^i = (1 - (1 - beta)^k) / beta, as a polynomial (no 0/0 at beta = 0).

    beta [A] and k [A] (torch or numpy alike) -> [A]."""
    total = beta * 0.0
    term = total + 1.0
    for i in range(int(k.max()) if len(k) else 0):
        total = total + (i < k) * term
        term = term * (1.0 - beta)
    return total


def kseq_division_factor(target: torch.Tensor, draft: torch.Tensor, k: torch.Tensor, iterations: int = 50) -> torch.Tensor:
    """SpecTr's division factor rho [A] in [1, k] for target, draft [A, q] and k [A] candidates.

    K-SEQ is valid (its acceptance part never exceeds P) when S(beta(rho)) <= rho,
    beta(rho) = sum_x min(D(x), P(x) / rho); the acceptance probability
    1 - (1 - beta)^k falls as rho grows, so SpecTr takes the root of
    S(beta(rho)) = rho.  Bisection on [1, k] that keeps the condition true at
    the upper end, which is returned: the rule is exact whatever rho this
    finds (rho = k always satisfies it, since S <= k), and the root is found
    to within (k - 1) 2^-iterations.  Written by hand (scipy's root finders
    take one scalar equation at a time), in numpy: a few hundred tiny array
    operations per call, which torch's per-call overhead would make the cost
    of every enumerated path.
    """
    P, D = target.detach().cpu().numpy(), draft.detach().cpu().numpy()
    kk = k.detach().cpu().numpy()

    def valid(rho):  # S(beta(rho)) <= rho, up to rounding (P = D gives S = 1 = rho in exact arithmetic)
        return _geometric_sum(np.minimum(D, P / rho[:, None]).sum(1), kk) - rho <= 2e-15 * kk

    lo = np.ones(len(kk))
    hi = np.where(valid(lo), 1.0, np.maximum(kk, 1).astype(np.float64))
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        valid_mid = valid(mid)
        hi = np.where(valid_mid, mid, hi)
        lo = np.where(valid_mid, lo, mid)
    return torch.from_numpy(hi).to(device=target.device, dtype=target.dtype)


def spectr_level_law(target: torch.Tensor, draft: torch.Tensor, candidates: torch.Tensor, alive: torch.Tensor):
    """SpecTr's k-sequential selection (K-SEQ) at one tree level, as a law over token values.

    target [A, q] (P), draft [A, q] (D), candidates [A, m], alive [A, m] (the
    k = alive.sum(1) candidates in play, i.i.d. from D).  Each candidate in
    turn is accepted with probability min(1, P(y) / (rho D(y))); if none is,
    the token comes from the residual P - S min(D, P / rho) normalised.  The
    chance that candidate i is the first accepted and equals x is
    (1 - beta)^(i-1) min(D(x), P(x) / rho), so the accepted part sums to
    S min(D, P / rho) <= P, and the residual carries exactly the rest: the
    level's token is P-distributed.  Returns law [A, q].
    """
    k = alive.sum(1)
    rho = kseq_division_factor(target, draft, k)
    accepted_part = torch.minimum(draft, target / rho.unsqueeze(1))  # [A, q]
    total_accepted = _geometric_sum(accepted_part.sum(1), k).unsqueeze(1) * accepted_part
    residual = (target - total_accepted).clamp(min=0.0)
    mass = residual.sum(-1, keepdim=True)
    residual = torch.where(mass > 0, residual / torch.where(mass > 0, mass, torch.ones_like(mass)), target)
    law = torch.zeros_like(target)
    survive = torch.ones(target.shape[0], dtype=target.dtype, device=target.device)
    for i in range(candidates.shape[1]):
        y = candidates[:, i : i + 1]
        p_y = target.gather(1, y).squeeze(1)
        d_y = draft.gather(1, y).squeeze(1)
        accept = torch.where(d_y > 0, (p_y / (rho * torch.where(d_y > 0, d_y, torch.ones_like(d_y)))).clamp(max=1.0),
                             torch.zeros_like(d_y))
        accept = torch.where(alive[:, i], accept, torch.zeros_like(accept))
        law.scatter_add_(1, y, (survive * accept).unsqueeze(1))
        survive = survive * (1.0 - accept)
    return law + survive.unsqueeze(1) * residual


class DraftSpeculative(Sampler):
    """Speculative decoding with a separate draft oracle.

    draft_oracle: an oracle (``n``, ``q``, ``marginals``) or a target with
    ``.oracle()``, on the target's (n, q).  block_size: drafted coordinates per
    round.  rule: "token", "block", "specinfer" (recursive rejection sampling;
    "multi" is its old name) or "spectr" (K-SEQ).  num_drafts: drafts per round
    (only the multi-draft rules use more than one; default 2 for them).
    order: "random" (any-order) or "fixed" (left to right).

    ``sample`` returns a ``DraftSampleResult``: rounds = target + draft rounds.
    """

    def __init__(
        self,
        draft_oracle,
        block_size: int = 2,
        rule: str = "token",
        num_drafts: int | None = None,
        order: str = "random",
        device: str | torch.device = "cpu",
    ):
        super().__init__(device)
        if hasattr(draft_oracle, "oracle") and not hasattr(draft_oracle, "marginals"):
            draft_oracle = draft_oracle.oracle()
        for attribute in ("n", "q", "marginals"):
            if not hasattr(draft_oracle, attribute):
                raise TypeError(f"draft_oracle {draft_oracle!r} has no {attribute!r}; expected an oracle or a target")
        rule = RULE_ALIASES.get(rule, rule)
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES} (or 'multi', an alias of 'specinfer'), got {rule!r}")
        if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 1:
            raise ValueError(f"block_size must be an int >= 1, got {block_size!r}")
        multi = rule in MULTI_DRAFT_RULES
        if num_drafts is None:
            num_drafts = 2 if multi else 1
        if not isinstance(num_drafts, int) or isinstance(num_drafts, bool) or num_drafts < 1:
            raise ValueError(f"num_drafts must be an int >= 1, got {num_drafts!r}")
        if not multi and num_drafts != 1:
            raise ValueError(f"rule {rule!r} verifies one draft; use rule='specinfer' or 'spectr' for num_drafts={num_drafts}")
        self.draft_oracle: MarginalOracle = draft_oracle
        self.block_size = block_size
        self.rule_name = rule
        self.num_drafts = num_drafts
        self.order = check_order(order)
        drafts = f", num_drafts={num_drafts}" if multi else ""
        self.draft_name = getattr(draft_oracle, "name", type(draft_oracle).__name__)
        self.name = f"DraftSpeculative(rule={rule!r}, block_size={block_size}{drafts}, order={order!r})"

    # ------------------------------------------------------------------
    def sample(self, oracle: MarginalOracle, num_samples: int, rng: RandomSource) -> DraftSampleResult:
        num_samples = check_num_samples(num_samples)
        rng = check_rng(rng)
        if (int(self.draft_oracle.n), int(self.draft_oracle.q)) != (int(oracle.n), int(oracle.q)):
            raise ValueError(
                f"draft oracle has n={self.draft_oracle.n}, q={self.draft_oracle.q}; the target has "
                f"n={oracle.n}, q={oracle.q}"
            )
        counted = CountingOracle(oracle, num_samples, device=self.device)
        draft = CountingOracle(self.draft_oracle, num_samples, device=self.device)
        values = self._run(counted, draft, num_samples, rng)
        info = {"target_rounds": counted.rounds.clone(), "draft_rounds": draft.rounds.clone(),
                "target_queries": counted.queries.clone(), "draft_queries": draft.queries.clone()}
        # The draft's calls run between the target's, never beside them: depth is the sum.
        return DraftSampleResult(values, counted.rounds + draft.rounds, counted.queries + draft.queries, info)

    def run(self, oracle, num_samples, rng):  # the Sampler interface; sample() is the entry point
        draft = CountingOracle(self.draft_oracle, num_samples, device=self.device)
        return self._run(oracle, draft, num_samples, rng)

    # ------------------------------------------------------------------
    def _run(self, oracle: CountingOracle, draft_oracle: CountingOracle, num_samples: int, rng: RandomSource):
        n, q, device = oracle.n, oracle.q, self.device
        m = self.num_drafts
        order = draw_order(self.order, num_samples, n, rng, device)
        x = torch.full((num_samples, n), -1, dtype=torch.long, device=device)
        t = torch.zeros(num_samples, dtype=torch.long, device=device)
        while True:
            active = torch.nonzero(t < n).squeeze(-1)
            if active.numel() == 0:
                return x
            A = active.numel()
            rng = rng.for_rows(active)  # this round's draws: one entry per active sample (batched enumeration)
            t_a, x_a, order_a = t[active], x[active], order[active]
            lengths = torch.clamp(n - t_a, max=self.block_size)  # >= 1
            K = int(lengths.max())
            steps = torch.arange(K + 1, device=device)
            in_range = (t_a.unsqueeze(1) + steps) < n
            positions = order_a.gather(1, (t_a.unsqueeze(1) + steps).clamp(max=n - 1))  # [A, K+1]
            drafted = steps[:K].unsqueeze(0) < lengths.unsqueeze(1)  # [A, K]

            # 1. Draft: m autoregressive drafts, one draft round per drafted slot.
            tokens = torch.zeros((A, m, K), dtype=torch.long, device=device)
            laws = _point_mass(A * m, K, q, device).view(A, m, K, q)
            owners = active.unsqueeze(1).expand(A, m)
            for j in range(K):
                rows = drafted[:, j]  # [A]
                prefix = _write(
                    x_a.unsqueeze(1).expand(A, m, n), positions[:, :K].unsqueeze(1).expand(A, m, K), tokens,
                    (steps[:K] < j).view(1, 1, K).expand(A, m, K),
                )
                asked = rows.unsqueeze(1).expand(A, m)
                answer = draft_oracle.marginals(prefix[asked], sample_ids=owners[asked])  # [R, n, q]
                law_j = torch.zeros((A, m, q), dtype=torch.float64, device=device)
                law_j[..., 0] = 1.0
                pos_j = positions[:, j].unsqueeze(1).expand(A, m)[asked]
                law_j[asked] = answer[torch.arange(answer.shape[0], device=device), pos_j]
                laws[:, :, j] = law_j
                tokens[:, :, j] = rng.categorical(law_j).to(device)

            # 2. One target round: prefixes 0..length of every draft.
            pins = (steps[:K].unsqueeze(0) < steps.unsqueeze(1)).view(1, 1, K + 1, K) & drafted.view(A, 1, 1, K)
            prefixes = _write(
                x_a.view(A, 1, 1, n).expand(A, m, K + 1, n), positions[:, :K].view(A, 1, 1, K).expand(A, m, K + 1, K),
                tokens.unsqueeze(2).expand(A, m, K + 1, K), pins.expand(A, m, K + 1, K),
            )
            asked = ((steps.unsqueeze(0) <= lengths.unsqueeze(1)) & in_range).unsqueeze(1).expand(A, m, K + 1)
            row_of = torch.full((A, m, K + 1), -1, dtype=torch.long, device=device)
            row_of[asked] = torch.arange(int(asked.sum()), device=device)
            answers = oracle.marginals(prefixes[asked], sample_ids=active.view(A, 1, 1).expand(A, m, K + 1)[asked])
            slot_law = answers[row_of.clamp(min=0), positions.unsqueeze(1).expand(A, m, K + 1)]  # [A, m, K+1, q]
            target = torch.where(asked.unsqueeze(-1), slot_law, _point_mass(A * m, K + 1, q, device).view(A, m, K + 1, q))

            # 3. Verify and draw the next coordinate.
            if self.rule_name in MULTI_DRAFT_RULES:
                accepted, next_value, keep_draft = self._verify_multi(target, laws, tokens, lengths, rng)
            else:
                rule = token_rule if self.rule_name == "token" else block_rule
                accepted, next_law = rule(target[:, 0], laws[:, 0], tokens[:, 0], lengths, rng)
                has_next = (t_a + accepted) < n
                next_law = torch.where(has_next.unsqueeze(-1), next_law, _point_mass(A, 1, q, device)[:, 0])
                next_value = rng.categorical(next_law).to(device)
                keep_draft = torch.zeros(A, dtype=torch.long, device=device)
            has_next = (t_a + accepted) < n
            kept_tokens = tokens.gather(1, keep_draft.view(A, 1, 1).expand(A, 1, K)).squeeze(1)
            keep = drafted & (steps[:K].unsqueeze(0) < accepted.unsqueeze(1))
            x_a = _write(x_a, positions[:, :K], kept_tokens, keep)
            next_position = positions.gather(1, accepted.unsqueeze(1)).squeeze(1)
            x_a[has_next, next_position[has_next]] = next_value[has_next]
            x[active] = x_a
            t[active] = t_a + accepted + has_next.to(torch.long)

    def _verify_multi(self, target, laws, tokens, lengths, rng):
        """Tree verification of m drafts.  target [A, m, K+1, q], laws [A, m, K, q], tokens [A, m, K].

        Returns accepted [A], the next coordinate's value [A] (ignored where
        the block is complete and nothing is left), and the index [A] of a
        draft carrying the accepted prefix.
        """
        A, m, K, q = laws.shape
        device = laws.device
        alive = torch.ones((A, m), dtype=torch.bool, device=device)
        accepted = torch.zeros(A, dtype=torch.long, device=device)
        stopped = torch.zeros(A, dtype=torch.bool, device=device)
        next_value = torch.zeros(A, dtype=torch.long, device=device)
        for j in range(K + 1):
            live = ~stopped
            first = alive.to(torch.long).argmax(1)  # a draft on the accepted prefix (they share P and D there)
            p_j = target[torch.arange(A, device=device), first, j]  # [A, q]
            at_end = live & (lengths == j)
            if j < K:
                d_j = laws[torch.arange(A, device=device), first, j]
                level = live & (lengths > j)
                level_law = specinfer_level_law if self.rule_name == "specinfer" else spectr_level_law
                law = level_law(p_j, d_j, tokens[:, :, j], alive & level.unsqueeze(1))
                law = torch.where(level.unsqueeze(1), law, p_j)
            else:
                level = torch.zeros_like(live)
                law = p_j
            # Rows that stopped already draw from a point mass (nothing is used).
            law = torch.where(live.unsqueeze(1), law, _point_mass(A, 1, q, device)[:, 0])
            law = law / law.sum(-1, keepdim=True)
            z = rng.categorical(law).to(device)
            match = alive & (tokens[:, :, min(j, K - 1)] == z.unsqueeze(1)) & level.unsqueeze(1)
            goes_on = level & match.any(1)
            # A level that ends the round: the token drawn is the next coordinate.
            ends = live & ~goes_on
            next_value = torch.where(ends, z, next_value)
            accepted = accepted + goes_on.to(torch.long)
            alive = torch.where(goes_on.unsqueeze(1), match, alive)
            stopped = stopped | ends | at_end
            if bool(stopped.all()):
                break
        keep_draft = alive.to(torch.long).argmax(1)
        return accepted, next_value, keep_draft
