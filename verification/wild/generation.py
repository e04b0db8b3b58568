"""Left-to-right speculative generation with sampling parameters: the shape of the code people ship.

The bugs of ``verification.wild`` live in code that turns model logits into a
law (temperature, top-k), drafts with one model and verifies with another.
This module gives that setting a contract form:

* ``GenerationTarget``: a raw "model" (a ``TabularTarget``: its conditionals
  are softmax(logits)) plus sampling parameters.  Its ``probs`` is the law the
  user asked for, the product of the *processed* left-to-right conditionals;
  its ``oracle()`` answers the *raw* model's conditionals, which is all a
  generation loop gets from a model.  ``exact_law`` and ``check_exact`` use the
  first as the target and hand the second to the sampler.
* ``SpeculativeGeneration``: classic speculative decoding (Leviathan et al.
  2023) over that model: gamma tokens drafted autoregressively from the
  processed draft law, one target round at the gamma + 1 prefixes, accept
  token i with probability min(1, p_i(y_i) / q_i(y_i)), residual (p - q)+ at
  the first rejection, a bonus token from p after a full block.  Exact.  Its
  three hooks (``draft_step``, ``propose``, ``verify``) are where each wild
  bug changes one thing.

Every draw goes through ``rng`` (so ``exact_law`` enumerates the whole loop);
the batch is vectorised over samples, whose positions differ round to round.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from autospec.samplers.base import Sampler
from autospec.samplers.speculation import residual_law
from autospec.samplers.token_speculative import first_rejection_weights
from autospec.targets import TabularTarget

__all__ = ["sampling_law", "GenerationTarget", "SpeculativeGeneration", "speculative_rule", "ratio", "at_tokens", "random_model"]


def sampling_law(law: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                 dtype: torch.dtype = torch.float64, logit_offset: float = 0.0) -> torch.Tensor:
    """law [..., q] (softmax of the logits) -> softmax(logits / T) on the top_k tokens, returned in float64.

    The logits are log(law) + logit_offset (real logits carry a constant that
    softmax ignores and rounding does not), cast to ``dtype``; scaling, top-k
    and softmax run in ``dtype``, as a model run in that dtype does.
    Temperature 0 is the argmax (ties split evenly).  Zeros stay zeros.
    """
    law = law.to(torch.float64)
    logits = (torch.log(law) + logit_offset).to(dtype)
    if temperature == 0:
        top = logits.max(-1, keepdim=True).values
        return ((logits == top) & (law > 0)).to(torch.float64) / ((logits == top) & (law > 0)).sum(-1, keepdim=True)
    scaled = logits / torch.tensor(temperature, dtype=dtype)
    if top_k is not None and top_k < law.shape[-1]:
        kth = scaled.topk(top_k, dim=-1).values[..., -1:]
        scaled = torch.where(scaled >= kth, scaled, torch.full_like(scaled, -torch.inf))
    probs = torch.softmax(scaled, dim=-1).to(torch.float64)
    return probs / probs.sum(-1, keepdim=True)  # what a categorical draw from these weights samples


def _short(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _check_sampling(temperature, top_k) -> None:
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")


class GenerationTarget(TabularTarget):
    """The law of left-to-right generation from ``model`` with sampling parameters (see the module docstring).

    probs [q]*n: prod_i sampling_law(P(x_i | x_<i)); oracle(): the raw model's conditionals.
    """

    def __init__(self, model: TabularTarget, temperature: float = 1.0, top_k: int | None = None,
                 dtype: torch.dtype = torch.float64, logit_offset: float = 0.0, name: str | None = None):
        if not isinstance(model, TabularTarget):
            raise TypeError(f"model must be a TabularTarget, got {type(model).__name__}")
        _check_sampling(temperature, top_k)
        self.model, self.temperature, self.top_k = model, float(temperature), top_k
        self.dtype, self.logit_offset = dtype, float(logit_offset)
        label = name or (f"{model.name} (T={temperature:g}{'' if top_k is None else f', top_k={top_k}'}"
                         f"{'' if dtype == torch.float64 else f', {_short(dtype)}'})")
        super().__init__(self._processed_joint(model, lambda law: sampling_law(law, temperature, top_k, dtype, logit_offset)),
                         name=label)

    @staticmethod
    def _processed_joint(model, process) -> torch.Tensor:
        n, q = model.n, model.q
        cells = torch.tensor(list(itertools.product(range(q), repeat=n)), dtype=torch.long)  # [q^n, n]
        oracle = model.oracle()
        joint = torch.ones(cells.shape[0], dtype=torch.float64)
        for i in range(n):
            prefix = cells.clone()
            prefix[:, i:] = -1
            law = process(oracle.marginals(prefix)[:, i])
            joint = joint * law.gather(1, cells[:, i : i + 1]).squeeze(1)
        return joint.reshape((q,) * n)

    def oracle(self, device="cpu"):
        return self.model.oracle(device)


def ratio(p_tok: torch.Tensor, q_tok: torch.Tensor) -> torch.Tensor:
    """min(1, p / q) elementwise, with q = 0 read as 'accept iff p > 0' (a token the draft law cannot give)."""
    safe = torch.where(q_tok > 0, q_tok, torch.ones_like(q_tok))
    return torch.where(q_tok > 0, (p_tok / safe).clamp(max=1.0), (p_tok > 0).to(p_tok.dtype))


def at_tokens(laws: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """laws [A, K, q], tokens [A, K] -> [A, K]."""
    return laws.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def speculative_rule(p, q, tokens, lengths, rng, residual=residual_law):
    """Classic verification.  p [A, K+1, q] (target laws at the K+1 prefixes), q [A, K, q] (the draft law the
    ratio uses), tokens [A, K], lengths [A] -> (accepted [A], law of the next token [A, q])."""
    A, K, V = q.shape
    accepted = rng.categorical(first_rejection_weights(ratio(at_tokens(p[:, :K], tokens), at_tokens(q, tokens)), lengths))
    index = accepted.view(A, 1, 1).expand(A, 1, V)
    p_next = p.gather(1, index).squeeze(1)
    q_next = q.gather(1, index.clamp(max=K - 1)).squeeze(1)
    rejected = (accepted < lengths).unsqueeze(-1)
    return accepted, torch.where(rejected, residual(p_next, q_next), p_next)


def _point_mass(shape, q, dtype=torch.float64):
    law = torch.zeros((*shape, q), dtype=dtype)
    law[..., 0] = 1.0
    return law


class SpeculativeGeneration(Sampler):
    """Classic (exact) speculative decoding of a left-to-right model with sampling parameters.

    draft: a target or oracle on the same (n, q), the draft model.  gamma:
    tokens drafted per round.  temperature, top_k: the sampling parameters,
    applied to draft and target alike.  logit_offset: the constant real
    logits carry (softmax ignores it; float rounding does not).  dtype: the
    dtype every logits-to-law computation runs in (the law it samples is then
    ``GenerationTarget(model, ..., dtype=dtype)``, exactly).
    """

    exact = True
    citation = ""

    def __init__(self, draft, gamma: int = 2, temperature: float = 1.0, top_k: int | None = None,
                 logit_offset: float = 0.0, dtype: torch.dtype = torch.float64):
        super().__init__("cpu")
        draft = draft.oracle() if hasattr(draft, "oracle") and not hasattr(draft, "marginals") else draft
        for attribute in ("n", "q", "marginals"):
            if not hasattr(draft, attribute):
                raise TypeError(f"draft {draft!r} has no {attribute!r}; expected an oracle or a target")
        if not isinstance(gamma, int) or isinstance(gamma, bool) or gamma < 1:
            raise ValueError(f"gamma must be an int >= 1, got {gamma!r}")
        _check_sampling(temperature, top_k)
        self.draft, self.gamma, self.temperature, self.top_k = draft, gamma, float(temperature), top_k
        self.logit_offset, self.dtype = float(logit_offset), dtype
        extra = ("" if top_k is None else f", top_k={top_k}") + ("" if dtype == torch.float64 else f", {_short(dtype)}")
        self.name = f"{type(self).__name__}(gamma={gamma}, T={temperature:g}{extra})"

    # ----------------------------------------------------------- hooks
    def law(self, raw: torch.Tensor) -> torch.Tensor:
        """The processed law of a raw model law [..., q] (what 'sampling with these parameters' means)."""
        return sampling_law(raw, self.temperature, self.top_k, self.dtype, self.logit_offset)

    def draft_step(self, raw: torch.Tensor, rng) -> tuple[torch.Tensor, torch.Tensor]:
        """raw draft law [A, q] -> (drafted token [A], the law the verifier will use as q [A, q])."""
        q = self.law(raw)
        return rng.categorical(q), q

    def propose(self, x, t, lengths, rng):
        """Autoregressive draft: tokens [A, K], q [A, K, q] (K = max length; slots past a row's length unused)."""
        A, n = x.shape
        K = int(lengths.max())
        tokens = torch.zeros((A, K), dtype=torch.long)
        qs = _point_mass((A, K), self.draft.q)
        prefix = x.clone()
        for j in range(K):
            live = j < lengths
            raw = self.draft.marginals(prefix)[torch.arange(A), (t + j).clamp(max=n - 1)]
            raw = torch.where(live.unsqueeze(-1), raw, _point_mass((A,), self.draft.q))
            token, q = self.draft_step(raw, rng)
            tokens[:, j] = torch.where(live, token, torch.zeros_like(token))
            qs[:, j] = torch.where(live.unsqueeze(-1), q, qs[:, j])
            prefix = _put(prefix, t + j, tokens[:, j], live)
        return tokens, qs

    def verify(self, p_raw, q, tokens, lengths, rng):
        """p_raw [A, K+1, q] raw target laws at the prefixes; q, tokens from ``propose`` -> (accepted, next law)."""
        return speculative_rule(self.law(p_raw), q, tokens, lengths, rng)

    # ----------------------------------------------------------- the loop
    def run(self, oracle, num_samples: int, rng) -> torch.Tensor:
        n, V = int(oracle.n), int(oracle.q)
        if (int(self.draft.n), int(self.draft.q)) != (n, V):
            raise ValueError(f"draft has n={self.draft.n}, q={self.draft.q}; the target has n={n}, q={V}")
        x = torch.full((num_samples, n), -1, dtype=torch.long)
        t = torch.zeros(num_samples, dtype=torch.long)
        while True:
            active = torch.nonzero(t < n).squeeze(-1)
            if active.numel() == 0:
                return x
            A, x_a, t_a = active.numel(), x[active], t[active]
            lengths = torch.clamp(n - t_a, max=self.gamma)
            rng_a = rng.for_rows(active) if hasattr(rng, "for_rows") else rng  # this round draws one entry per row
            tokens, q = self.propose(x_a, t_a, lengths, rng_a)
            K = tokens.shape[1]
            # One target round: the laws at prefixes 0..K (prefix j pins drafted tokens 0..j-1).
            prefixes, asked = [], []
            prefix = x_a.clone()
            for j in range(K + 1):
                asked.append((j <= lengths) & (t_a + j < n))
                prefixes.append(prefix.clone())
                if j < K:
                    prefix = _put(prefix, t_a + j, tokens[:, j], j < lengths)
            asked_t = torch.stack(asked, 1)  # [A, K+1]
            stacked = torch.stack(prefixes, 1)  # [A, K+1, n]
            answers = oracle.marginals(stacked[asked_t], sample_ids=active.unsqueeze(1).expand(A, K + 1)[asked_t])
            positions = (t_a.unsqueeze(1) + torch.arange(K + 1)).clamp(max=n - 1)
            p_raw = _point_mass((A, K + 1), V)
            p_raw[asked_t] = answers[torch.arange(answers.shape[0]), positions[asked_t]]
            accepted, next_law = self.verify(p_raw, q, tokens, lengths, rng_a)
            has_next = (t_a + accepted) < n
            next_law = torch.where(has_next.unsqueeze(-1), next_law, _point_mass((A,), V))
            next_token = rng_a.categorical(next_law)
            for j in range(K):
                x_a = _put(x_a, t_a + j, tokens[:, j], j < accepted)
            x_a = _put(x_a, t_a + accepted, next_token, has_next)
            x[active] = x_a
            t[active] = t_a + accepted + has_next.to(torch.long)


def _put(x: torch.Tensor, column: torch.Tensor, value: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Copy of x [A, n] with x[a, column[a]] = value[a] where ``where[a]`` (columns past the end ignored)."""
    out = x.clone()
    rows = torch.nonzero(where & (column < x.shape[1])).squeeze(-1)
    out[rows, column[rows]] = value[rows]
    return out


def random_model(n: int, q: int, seed: int, concentration: float = 1.0, name: str | None = None) -> TabularTarget:
    """A small random 'language model' over [q]^n (a TabularTarget with full support)."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(q**n, concentration)).reshape((q,) * n)
    return TabularTarget(probs, name=name or f"model(n={n}, q={q}, seed={seed})")
