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
    """Block rule drawing the residual from max(P - D, 0) instead of max(p_tau P - D, 0).

    The two residuals differ only after a rejection at tau >= 1 with p_tau < 1.  With pipelined
    drafting the first drafted coordinate's draft law is the conditional *before* the coordinate
    drawn last round, so p_1 < 1 is possible; at n = 3 the bug lives in the second round's tau = 1
    branch alone.  On a random table its exact TV is ~1e-3 (far below the default budget's
    min_detectable_tv 0.02); ``residual_adversarial_table`` (found by maximising the exact TV)
    has TV 0.022 and is its audit instance.
    """

    def rule(self, target, draft, tokens, lengths, rng):
        p, h = block_acceptance(target, draft, tokens, lengths)
        accepted = rng.categorical(last_success_weights(h))
        return accepted, _next_law(target, draft, accepted, lengths, residual_law)


register(Mutant("token-residual-from-target", ResidualFromTarget.__doc__, lambda: ResidualFromTarget(BLOCK), lambda: TokenSpeculative(BLOCK)))
register(Mutant("token-inverted-ratio", InvertedRatio.__doc__, lambda: InvertedRatio(BLOCK), lambda: TokenSpeculative(BLOCK)))
register(Mutant("no-verification", NoVerification.__doc__, lambda: NoVerification(BLOCK), lambda: TokenSpeculative(BLOCK)))
register(Mutant("block-residual-unscaled", BlockResidualWithoutScale.__doc__.splitlines()[0], lambda: BlockResidualWithoutScale(BLOCK), lambda: SequenceSpeculative(BLOCK)))


# ---------------------------------------------------------------------------------------------------
# Token-rule mutants
def _token_accept(target, draft, tokens):
    K = draft.shape[1]
    return (gather_at_tokens(target[:, :K], tokens) / gather_at_tokens(draft, tokens)).clamp(max=1.0)


class ResidualDraftMinusTarget(TokenSpeculative):
    """Token rule drawing the rejected coordinate from (D - P)+ instead of (P - D)+."""

    def rule(self, target, draft, tokens, lengths, rng):
        accepted = rng.categorical(first_rejection_weights(_token_accept(target, draft, tokens), lengths))
        return accepted, _next_law(target, draft, accepted, lengths, lambda p, d: residual_law(d, p))


class LastDraftUnverified(TokenSpeculative):
    """Token rule keeping the last drafted coordinate unverified: the 'free' extra coordinate taken from the draft."""

    def rule(self, target, draft, tokens, lengths, rng):
        accept = _token_accept(target, draft, tokens)
        last = torch.arange(draft.shape[1], device=draft.device).unsqueeze(0) == (lengths - 1).unsqueeze(1)
        accept = torch.where(last, torch.ones_like(accept), accept)
        accepted = rng.categorical(first_rejection_weights(accept, lengths))
        return accepted, _next_law(target, draft, accepted, lengths, residual_law)


class PrefixOffByOne(TokenSpeculative):
    """Token rule taking the target conditional at the wrong prefix (i instead of i - 1, an off-by-one index)."""

    def rule(self, target, draft, tokens, lengths, rng):
        K = draft.shape[1]
        accept = (gather_at_tokens(target[:, 1:K + 1], tokens) / gather_at_tokens(draft, tokens)).clamp(max=1.0)
        accepted = rng.categorical(first_rejection_weights(accept, lengths))
        return accepted, _next_law(target, draft, accepted, lengths, residual_law)


class SharedUniform(TokenSpeculative):
    """Token rule reusing one uniform for the whole block (accept while u <= a_i): survival min(a) instead of prod(a)."""

    def rule(self, target, draft, tokens, lengths, rng):
        accept = _token_accept(target, draft, tokens)
        A, K = accept.shape
        steps = torch.arange(K + 1, device=accept.device)
        masked = torch.where(steps[:K].unsqueeze(0) < lengths.unsqueeze(1), accept, torch.zeros_like(accept))
        survive = torch.cat([accept.new_ones(A, 1), masked.cummin(-1).values], dim=1)  # P(u <= min a_1..a_j)
        weights = survive - torch.cat([survive[:, 1:], survive.new_zeros(A, 1)], dim=1)
        weights = torch.where(steps.unsqueeze(0) <= lengths.unsqueeze(1), weights.clamp(min=0.0), torch.zeros_like(weights))
        accepted = rng.categorical(weights)
        return accepted, _next_law(target, draft, accepted, lengths, residual_law)


class TemperatureLeft(TokenSpeculative):
    """Token speculation whose target conditionals are tempered at 0.95 (a generation setting left on)."""

    exact = True
    temperature = 0.95

    def rule(self, target, draft, tokens, lengths, rng):
        from autospec.samplers.token_speculative import token_rule

        return token_rule(_temper(target, self.temperature), draft, tokens, lengths, rng)


def _temper(laws: torch.Tensor, temperature: float) -> torch.Tensor:
    """laws [..., q] -> laws^(1/T) normalised (zeros stay zero)."""
    powered = laws.clamp(min=0.0) ** (1.0 / temperature)
    total = powered.sum(-1, keepdim=True)
    return torch.where(total > 0, powered / torch.where(total > 0, total, torch.ones_like(total)), laws)


class TemperedSequential:
    """Sequential sampling from conditionals tempered at ``temperature`` (1.0 = exact): a family whose TV can be dialled.

    Follows the user-sampler contract (sample(oracle, num_samples, rng) -> values).
    """

    def __init__(self, temperature: float = 0.95):
        self.temperature = float(temperature)
        self.name = f"TemperedSequential(T={self.temperature:g})"
        self.exact = self.temperature == 1.0

    def sample(self, oracle, num_samples, rng):
        n = oracle.n
        order = rng.permutation(num_samples, n)
        x = torch.full((num_samples, n), -1, dtype=torch.long)
        everyone = torch.arange(num_samples)
        for t in range(n):
            law = oracle.marginals(x)[everyone, order[:, t]]
            x[everyone, order[:, t]] = rng.categorical(_temper(law, self.temperature))
        return x


# ---------------------------------------------------------------------------------------------------
# Block-rule mutants: one switch each in a copy of block_acceptance (the reference is untouched;
# with bug=None this copy equals block_acceptance exactly, which tests/test_mutants.py checks).
def block_acceptance_variant(target, draft, tokens, lengths, bug: str | None = None):
    A, K, q = draft.shape
    steps = torch.arange(K + 1, device=draft.device)
    dtype = torch.float32 if bug == "float32" else draft.dtype
    if bug == "float32":  # products of ratios in float32, outside log space
        ratio = (gather_at_tokens(target[:, :K], tokens) / gather_at_tokens(draft, tokens)).to(dtype)
        ps = [torch.ones(A, dtype=dtype, device=draft.device)]
        for i in range(K):
            ps.append(torch.clamp(ps[-1] * ratio[:, i], max=1.0))
        p = torch.stack(ps, dim=1).to(draft.dtype)
    else:
        log_ratio = torch.log(gather_at_tokens(target[:, :K], tokens)) - torch.log(gather_at_tokens(draft, tokens))
        log_p = [torch.zeros(A, dtype=draft.dtype, device=draft.device)]
        for i in range(K):
            nxt = log_p[-1] + log_ratio[:, i]
            log_p.append(nxt if bug == "no-min" else torch.clamp(nxt, max=0.0))
        p = torch.exp(torch.stack(log_p, dim=1))
    p_in_h = torch.cat([p[:, :1], p[:, :-1]], dim=1) if bug == "previous-p" else p  # p_{i-1} in h_i
    surplus = (p_in_h[:, :K].unsqueeze(-1) * target[:, :K] - draft).clamp(min=0.0).sum(-1)
    surplus = torch.cat([surplus, surplus.new_zeros(A, 1)], dim=1)
    denominator = surplus if bug == "no-one-minus-p" else surplus + (1.0 - p_in_h)
    safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    h = torch.where(denominator > 0, surplus / safe, torch.zeros_like(p)).clamp(max=1.0)
    h[:, 0] = 1.0
    at_length = steps.unsqueeze(0) == lengths.unsqueeze(1)
    h = torch.where(at_length, p.clamp(max=1.0), h)
    h = torch.where(steps.unsqueeze(0) <= lengths.unsqueeze(1), h, torch.zeros_like(h))
    return p, h


def _block_rule_with(target, draft, tokens, lengths, rng, bug=None):
    """block_rule, with its acceptance computed by block_acceptance_variant(bug)."""
    A, K, q = draft.shape
    p, h = block_acceptance_variant(target, draft, tokens, lengths, bug)
    accepted = rng.categorical(last_success_weights(h))
    p_tau = p.gather(1, accepted.unsqueeze(1)).squeeze(1)
    return accepted, _next_law(target, draft, accepted, lengths, lambda t, d: residual_law(t, d, p_tau))


class _BlockBug(SequenceSpeculative):
    bug: str | None = None

    def rule(self, target, draft, tokens, lengths, rng):
        return _block_rule_with(target, draft, tokens, lengths, rng, self.bug)


class BlockNoMin(_BlockBug):
    """Block rule with p_i = p_{i-1} P_i / D_i, missing the min(1, .)."""

    bug = "no-min"


class BlockPreviousP(_BlockBug):
    """Block rule using p_{i-1} instead of p_i in h_i (in S_i and in the 1 - p_i term)."""

    bug = "previous-p"


class BlockNoOneMinusP(_BlockBug):
    """Block rule with h_i = S_i / S_i: the (1 - p_i) term of the denominator dropped."""

    bug = "no-one-minus-p"


class BlockFloat32(_BlockBug):
    """Block rule multiplying the ratios in float32 (not log space float64).

    Inherently exact-law-only: float32 rounding is ~6e-8 relative per product, so the output law moves
    by TV ~1e-9 (3.5e-9 on its instance).  A chi-square test needs samples ~ 1 / TV^2, i.e. ~1e18 here
    (the default budget, ~5e4 samples, detects TV 0.02): no sampling budget can see it, only the
    exact law (a proof) can.  The mutation audit reports it as "caught by exact_law only".
    """

    bug = "float32"


class WholeBlockResampled(SequenceSpeculative):
    """Block rule that, on a rejection, throws the whole block away and redraws its first coordinate from the target."""

    def rule(self, target, draft, tokens, lengths, rng):
        from autospec.samplers.sequence_speculative import block_rule

        accepted, next_law = block_rule(target, draft, tokens, lengths, rng)
        rejected = accepted < lengths
        return torch.where(rejected, torch.zeros_like(accepted), accepted), torch.where(rejected.unsqueeze(-1), target[:, 0], next_law)


class PeekingBlockSize(SequenceSpeculative):
    """Block size chosen by peeking at the current draft: the block is cut before the first draft token of draft prob < 1/2."""

    def rule(self, target, draft, tokens, lengths, rng):
        from autospec.samplers.sequence_speculative import block_rule

        confident = gather_at_tokens(draft, tokens) >= 0.5
        K = draft.shape[1]
        steps = torch.arange(K, device=draft.device)
        # leading run of confident tokens (the first token always counts), cut there
        run = torch.where(confident | (steps == 0), torch.ones_like(steps).expand_as(confident), torch.zeros_like(steps).expand_as(confident)).cumprod(-1).sum(-1)
        return block_rule(target, draft, tokens, torch.minimum(lengths, run.clamp(min=1)), rng)


def _register_all():
    T, S = (lambda: TokenSpeculative(BLOCK)), (lambda: SequenceSpeculative(BLOCK))
    for name, cls, sibling in [
        ("token-residual-d-minus-p", ResidualDraftMinusTarget, T),
        ("token-last-draft-unverified", LastDraftUnverified, T),
        ("token-prefix-off-by-one", PrefixOffByOne, T),
        ("token-shared-uniform", SharedUniform, T),
        ("token-temperature-0.95", TemperatureLeft, T),
        ("block-no-min", BlockNoMin, S),
        ("block-previous-p", BlockPreviousP, S),
        ("block-no-one-minus-p", BlockNoOneMinusP, S),
        ("block-float32", BlockFloat32, S),
        ("block-whole-resampled", WholeBlockResampled, S),
        ("block-size-peeks-at-draft", PeekingBlockSize, S),
    ]:
        register(Mutant(name, " ".join(cls.__doc__.split()), lambda cls=cls: cls(BLOCK), sibling))


_register_all()


# ---------------------------------------------------------------------------------------------------
# The tiny instance (n <= 4) each mutant is audited on.
def peaked_product(n: int = 4, q: int = 3):
    """Independent coordinates with law ~ (0.8, 0.15, 0.05): tempering shows in every marginal."""
    import numpy as np

    from autospec.targets import TabularTarget

    base = np.array([0.8, 0.15, 0.05][:q]) if q <= 3 else np.linspace(2, 0.2, q)
    base = base / base.sum()
    table = base
    for _ in range(n - 1):
        table = np.multiply.outer(table, base)
    return TabularTarget(table, name=f"peaked-product(n={n}, q={q})")


# n = 3, q = 3 table maximising block-residual-unscaled's exact TV (hill climbing on log weights,
# the mutant's law computed in closed form for n = 3 and checked against exact_law): TV 0.0221.
_RESIDUAL_TABLE = [
    [[0.0, 0.0, 0.0], [0.001, 0.05, 0.003], [0.0, 0.0, 0.0]],
    [[0.0, 0.001, 0.051], [0.068, 0.0, 0.121], [0.001, 0.253, 0.006]],
    [[0.0, 0.04, 0.001], [0.0, 0.11, 0.193], [0.031, 0.001, 0.068]],
]


def residual_adversarial_table():
    """Where the unscaled block residual shows: strong dependence makes p_1 = P(y | x) / P(y) small
    on some drafts while a rejection at tau = 1 stays likely, and the target/draft difference of the
    third coordinate is spread over its three values (zero cells included)."""
    import numpy as np

    from autospec.targets import TabularTarget

    table = np.array(_RESIDUAL_TABLE)
    return TabularTarget(table / table.sum(), name="residual-adversarial(n=3, q=3)")


_INSTANCES = {"token-temperature-0.95": lambda: peaked_product(3, 3),
              "block-residual-unscaled": residual_adversarial_table}


def instance_for(name: str):
    from autospec.targets import TabularTarget

    return _INSTANCES.get(name, lambda: TabularTarget.random(n=3, q=3, seed=0))()
