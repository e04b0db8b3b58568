"""Audit of Hugging Face transformers' speculative-sampling routine (assisted generation).

Written against transformers 5.23.0: ``transformers.generation.utils._speculative_sampling(
candidate_input_ids, candidate_logits, candidate_length, new_logits, assistant_ensemble_weight=None)``
-> (valid_tokens [1, n_matches + 1], n_matches).  Its randomness is
``torch.rand_like`` (one uniform per drafted token, accept iff r_i <= p_i / q_i)
and ``torch.multinomial`` (the residual or bonus token).

The adapter decodes a left-to-right sequence of length n from a synthetic
target (a ``TabularTarget``: its conditionals are the "model" logits,
log-probabilities) with a synthetic draft oracle (the "assistant": its
conditionals are the candidate logits; the adapter draws the candidates from
them autoregressively, as assisted generation does), and calls the routine for
every verification step.  No model weights.

Exact output law: the routine's two random calls are intercepted (its module's
``torch`` is swapped for a proxy during the call).  ``torch.multinomial`` is
enumerated over its support with weights p / sum(p).  For ``torch.rand_like``
the adapter finds, per drafted token, the set of uniforms the routine accepts
by bisection (it is an interval [0, c], checked at its ends), under two models
of the uniform:

* "ideal": a continuous uniform on [0, 1): P(accept) = c;
* "cpu-grid": what torch's CPU generator actually returns, k * 2^-b with k
  uniform in [0, 2^b) (b = 24 for float32, 53 for float64, checked on import):
  P(accept) = #{k accepted} / 2^b.

Summing over draft tokens, acceptance patterns and multinomial outcomes gives
the output law of whole sequences in float64.  A seeded run with the real
global generator, checked by chi-square, is the end-to-end cross-check.
"""

from __future__ import annotations

import inspect
import itertools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

__all__ = [
    "WRITTEN_AGAINST", "PeerUnavailable", "load_speculative_sampling", "speculative_decoding_law",
    "HFSpeculativeSampler", "zero_probability_repro",
]

WRITTEN_AGAINST = "5.23.0"
_EXPECTED_PARAMS = ["candidate_input_ids", "candidate_logits", "candidate_length", "new_logits"]


class PeerUnavailable(RuntimeError):
    """The third-party package is absent, or the routine is not where/what the adapter expects."""


def load_speculative_sampling():
    """(routine, version) or PeerUnavailable with the reason."""
    try:
        import transformers
        from transformers.generation import utils
    except Exception as error:  # ImportError, or a broken install
        raise PeerUnavailable(f"transformers is not importable ({type(error).__name__}: {error}); "
                              "install the extra: pip install 'autospec[peers]'") from None
    routine = getattr(utils, "_speculative_sampling", None)
    if routine is None:
        raise PeerUnavailable(f"transformers {transformers.__version__} has no generation.utils._speculative_sampling "
                              f"(adapter written against {WRITTEN_AGAINST}); the routine moved or was removed")
    params = list(inspect.signature(routine).parameters)
    if params[:4] != _EXPECTED_PARAMS:
        raise PeerUnavailable(f"transformers {transformers.__version__}: _speculative_sampling{tuple(params)} no longer "
                              f"starts with {tuple(_EXPECTED_PARAMS)} (adapter written against {WRITTEN_AGAINST})")
    source = inspect.getsource(routine)
    if "rand_like" not in source or "multinomial" not in source:
        raise PeerUnavailable(f"transformers {transformers.__version__}: _speculative_sampling no longer draws through "
                              "torch.rand_like / torch.multinomial; the enumeration would miss its randomness")
    return routine, transformers.__version__


# ---------------------------------------------------------------------------
# Interception of the routine's randomness
# ---------------------------------------------------------------------------


class _TorchProxy:
    """Stands in for the ``torch`` module inside the routine; forwards everything but two calls."""

    def __init__(self, uniforms, choice):
        self._uniforms, self._choice, self.multinomial_probs = uniforms, choice, None

    def __getattr__(self, name):
        return getattr(torch, name)

    def rand_like(self, like, *args, **kwargs):
        return torch.as_tensor(self._uniforms, dtype=like.dtype).reshape(like.shape)

    def multinomial(self, probs, num_samples=1, *args, **kwargs):
        self.multinomial_probs = probs.detach().clone()
        return torch.full((*probs.shape[:-1], num_samples), self._choice, dtype=torch.long)


def _call(routine, uniforms, choice, args, kwargs):
    proxy = _TorchProxy(uniforms, choice)
    namespace = routine.__globals__
    saved = namespace["torch"]
    namespace["torch"] = proxy
    try:
        tokens, matches = routine(*args, **kwargs)
    finally:
        namespace["torch"] = saved
    return tokens[0].tolist(), int(matches), proxy.multinomial_probs


def _grid_bits(dtype: torch.dtype) -> int:
    return {torch.float32: 24, torch.float64: 53, torch.float16: 11, torch.bfloat16: 8}[dtype]


def _acceptance(routine, i, gamma, args, kwargs, model, bits):
    """P(the routine accepts drafted token i | it reached i), and the uniforms (accept, reject) to replay it."""

    def accepted(u):
        uniforms = [0.0] * gamma
        uniforms[i] = u
        return _call(routine, uniforms, 0, args, kwargs)[1] > i

    if model == "cpu-grid":
        scale = 2.0 ** -bits
        if not accepted(0.0):
            return 0.0, None, 0.0
        lo, hi = 0, 2**bits - 1  # lo accepted
        if accepted(hi * scale):
            return 1.0, 0.0, None
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if accepted(mid * scale) else (lo, mid)
        return (lo + 1) * scale, 0.0, hi * scale
    lo, hi = 0.0, 1.0
    if accepted(math.nextafter(1.0, 0.0)):
        return 1.0, 0.0, None
    if not accepted(0.0):
        # the continuous model gives {0} probability zero: accept set is null
        return 0.0, None, 0.5
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if accepted(mid) else (lo, mid)
    return lo, 0.5 * lo, 0.5 * (hi + 1.0)


def routine_law(routine, candidate_ids, candidate_logits, new_logits, model="ideal", **kwargs):
    """Law of the routine's output tokens for one call: list of (tokens, probability, failed)."""
    gamma = candidate_logits.shape[1]
    args = (candidate_ids, candidate_logits, gamma, new_logits)
    bits = _grid_bits(candidate_logits.dtype)
    accept = [_acceptance(routine, i, gamma, args, kwargs, model, bits) for i in range(gamma)]
    outcomes = []
    for pattern in itertools.product([True, False], repeat=gamma):
        weight, uniforms = 1.0, []
        for (p_acc, u_acc, u_rej), ok in zip(accept, pattern):
            weight *= p_acc if ok else 1.0 - p_acc
            uniforms.append(u_acc if ok else u_rej)
        if weight <= 0:
            continue
        _, _, probs = _call(routine, uniforms, 0, args, kwargs)
        probs = probs.reshape(-1).to(torch.float64)
        if not bool(torch.isfinite(probs).all()) or float(probs.sum()) <= 0:
            outcomes.append((None, weight, True))  # torch.multinomial would raise here
            continue
        probs = probs / probs.sum()
        for choice in torch.nonzero(probs > 0).reshape(-1).tolist():
            tokens, _, _ = _call(routine, uniforms, choice, args, kwargs)
            outcomes.append((tokens, weight * float(probs[choice]), False))
    return outcomes


def _logits(law: torch.Tensor, dtype) -> torch.Tensor:
    return torch.log(law.to(torch.float64)).to(dtype)  # log 0 = -inf: softmax gives exactly 0


@dataclass
class PeerLaw:
    probs: torch.Tensor
    failed_mass: float
    expected_calls: float

    def tv(self, target_probs: torch.Tensor) -> float:
        return 0.5 * float((self.probs - target_probs).abs().sum()) + 0.5 * self.failed_mass


def _conditional_uncached(oracle, prefix, n):
    partial = torch.full((1, n), -1, dtype=torch.long)
    partial[0, : len(prefix)] = torch.tensor(prefix, dtype=torch.long)
    return oracle.marginals(partial)[0, len(prefix)]


_conditional = _conditional_uncached


def speculative_decoding_law(target, draft_oracle, gamma: int = 2, dtype=torch.float64, model="ideal",
                             routine=None, **routine_kwargs) -> PeerLaw:
    """Exact law on [q]^n of left-to-right assisted decoding with the routine doing every verification."""
    routine = routine or load_speculative_sampling()[0]
    n, q = target.n, target.q
    oracle = target.oracle()
    draft = draft_oracle.oracle() if hasattr(draft_oracle, "oracle") else draft_oracle
    law = np.zeros(q**n)
    failed, calls = 0.0, 0.0

    def walk(prefix, weight):
        nonlocal failed, calls
        t = len(prefix)
        if t == n:
            law[int(np.ravel_multi_index(prefix, (q,) * n))] += weight
            return
        g = min(gamma, n - t)
        calls += weight
        for ys in itertools.product(range(q), repeat=g):
            d_laws, w = [], weight
            for j, y in enumerate(ys):
                d = _conditional(draft, list(prefix) + list(ys[:j]), n)
                d_laws.append(d)
                w *= float(d[y])
            if w <= 0:
                continue
            p_laws = [_conditional(oracle, list(prefix) + list(ys[:j]), n) for j in range(g)]
            p_laws.append(_conditional(oracle, list(prefix) + list(ys), n) if t + g < n
                          else torch.full((q,), 1.0 / q, dtype=torch.float64))  # past the end: unused
            ids = torch.tensor([list(prefix) + list(ys)], dtype=torch.long)
            cand = _logits(torch.stack(d_laws), dtype).unsqueeze(0)
            new = _logits(torch.stack(p_laws), dtype).unsqueeze(0)
            for tokens, p, bad in routine_law(routine, ids, cand, new, model, **routine_kwargs):
                if bad:
                    failed += w * p
                else:
                    walk(tuple(prefix) + tuple(tokens[: n - t]), w * p)

    walk((), 1.0)
    return PeerLaw(torch.from_numpy(law).reshape((q,) * n), failed, calls)


class HFSpeculativeSampler:
    """Assisted decoding with the real routine and torch's real global generator (for check_exact).

    It draws from torch's global generator (that is what the routine does), seeded
    from ``seed`` inside ``torch.random.fork_rng``; it ignores the rng it is given.
    """

    exact = True

    def __init__(self, draft_oracle, gamma=2, dtype=torch.float32, seed=0, **routine_kwargs):
        self.routine, self.version = load_speculative_sampling()
        self.draft = draft_oracle.oracle() if hasattr(draft_oracle, "oracle") else draft_oracle
        self.gamma, self.dtype, self.seed, self.kwargs = gamma, dtype, seed, routine_kwargs
        self.name = f"transformers {self.version} _speculative_sampling (gamma={gamma}, {dtype})"

    def sample(self, oracle, num_samples, rng):
        from autospec.samplers.base import SampleResult

        n, q = oracle.n, oracle.q
        out = torch.zeros((num_samples, n), dtype=torch.long)
        cache: dict = {}

        def _conditional(source, prefix, n):  # the oracles are deterministic: answer each prefix once
            key = (id(source), tuple(prefix))
            if key not in cache:
                cache[key] = _conditional_uncached(source, prefix, n)
            return cache[key]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for s in range(num_samples):
                prefix = []
                while len(prefix) < n:
                    g = min(self.gamma, n - len(prefix))
                    ys, d_laws = [], []
                    for _ in range(g):
                        d = _conditional(self.draft, prefix + ys, n)
                        d_laws.append(d)
                        ys.append(int(torch.multinomial(d, 1)))
                    p_laws = [_conditional(oracle, prefix + ys[:j], n) for j in range(g)]
                    p_laws.append(_conditional(oracle, prefix + ys, n) if len(prefix) + g < n
                                  else torch.full((q,), 1.0 / q, dtype=torch.float64))
                    tokens, _ = self.routine(torch.tensor([prefix + ys]), _logits(torch.stack(d_laws), self.dtype)[None],
                                             g, _logits(torch.stack(p_laws), self.dtype)[None], **self.kwargs)
                    prefix += tokens[0].tolist()[: n - len(prefix)]
                out[s] = torch.tensor(prefix)
        zeros = torch.zeros(num_samples, dtype=torch.long)
        return SampleResult(out, zeros, zeros.clone(), {"note": "rounds not counted (oracle answers cached)"})


def zero_probability_repro():
    """Minimal instance of the finding: one token, target P = [1, 0], draft D = [1/2, 1/2], float32 logits.

    Returns (routine's probability of emitting the impossible token 1 under
    torch's CPU generator, the exact value 0).  The routine accepts a drafted
    token iff r <= p/q with r = torch.rand_like(...), and on CPU r = 0.0 has
    probability 2^-24 (float32), so token 1 (p = 0) is accepted with that
    probability: P(emit 1) = 1/2 * 2^-24 = 2.98e-8.
    """
    from autospec.targets import TabularTarget

    target = TabularTarget(np.array([1.0, 0.0]), name="P=[1,0]")
    draft = TabularTarget(np.array([0.5, 0.5]), name="D=[1/2,1/2]")
    law = speculative_decoding_law(target, draft, gamma=1, dtype=torch.float32, model="cpu-grid")
    return ReproResult(float(law.probs[1]), 0.0)


class ReproResult(NamedTuple):
    """(routine's probability, exact probability) of emitting the impossible token; prints as one sentence."""

    routine_probability: float
    exact_probability: float

    def __str__(self) -> str:
        return (f"transformers _speculative_sampling, target P = [1, 0], draft D = [1/2, 1/2], float32 on CPU: "
                f"P(emit token 1) = {self.routine_probability:.3g}"
                + (f" = 2^{math.log2(self.routine_probability):.4g}" if self.routine_probability > 0 else "")
                + f" where the exact law gives {self.exact_probability:g}")
