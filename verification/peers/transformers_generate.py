"""transformers end to end: the exact law of ``generate(do_sample=True, assistant_model=...)``.

Two tiny random Llama models built from configs (no weights downloaded) are
the target and the assistant.  ``generate`` runs unmodified; during the call
its random functions are replaced by enumerable ones built on the harness's
replay randomness, so ``exact_law`` walks every random choice of the whole
generation loop (candidate generator, logits processors, verification):

* ``torch.multinomial(probs, 1)`` -> ``rng.categorical(probs)`` (one choice
  per row, weights probs / sum);
* ``torch.rand`` / ``torch.rand_like`` -> a *symbolic uniform*: a tensor that
  may only be compared with a threshold c (``u <= c``, ``u < c``, ``u >= c``,
  ``u > c``); each comparison is one ``rng.bernoulli`` with P(u <= c) =
  clamp(c, 0, 1), the law of a continuous uniform on [0, 1) ("ideal").  Any
  other use of the uniform raises, so a change in how transformers uses its
  uniforms cannot go unnoticed.

The reference law is the exact law of plain ``generate(do_sample=True)``
with the same logits processors, enumerated the same way: speculative
decoding must not change it.  Written against transformers 5.23.0.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from autospec.randomness import NotEnumerableError, NotRowwiseError
from verification.peers.transformers_speculative import PeerUnavailable

__all__ = ["WRITTEN_AGAINST", "CHECKED_VERSIONS", "FLOAT32_TV", "generate_cells", "raw_logits_as_q", "tiny_models", "GenerateSampler", "LawTable", "generation_law", "CANDIDATE_GENERATORS",
           "enumerable_randomness"]

WRITTEN_AGAINST = "5.23.0"
# versions on which the adapter's interception (torch.multinomial / rand inside generate) was run and gave the
# exact-law verdicts of tests/test_peers_transformers_generate.py; another version is skipped with the reason
CHECKED_VERSIONS = ("5.23.0", "5.24.0")
# generate() computes its laws from float32 logits (its _sample and assisted loops cast them), so the ratio p / q and
# the residual round at ~6e-8 relative: an exact rule shows TV ~1e-8 on these instances; a real bug shows 1e-2+.
FLOAT32_TV = 1e-6
# What each candidate-generator setting selects in transformers' _get_candidate_generator (CPU-runnable ones).
CANDIDATE_GENERATORS = {
    "assisted": "AssistedCandidateGenerator (assistant_model: a second, smaller model; sampled drafts with logits)",
    "prompt_lookup": "PromptLookupCandidateGenerator (n-gram lookup in the prompt: a deterministic draft, no logits; "
                     "verified by sampling the target and keeping matches)",
    "early_exit": "EarlyExitCandidateGenerator (the target's own first layers as the assistant)",
}


def _load():
    try:
        import transformers
        from transformers import LlamaConfig, LlamaForCausalLM
    except Exception as error:
        raise PeerUnavailable(f"transformers is not importable ({type(error).__name__}: {error})") from None
    return transformers, LlamaConfig, LlamaForCausalLM


def tiny_models(vocab_size: int = 3, seed: int = 0, scale: float = 3.0, dtype: torch.dtype = torch.float64):
    """(target, assistant): random 1-layer Llamas on a ``vocab_size`` vocabulary, from configs (no download).

    The output embeddings are scaled by ``scale`` so the next-token laws are far from uniform.  (generate casts
    the logits to float32 whatever the model's dtype, so an exact rule shows TV at float32 rounding, ~1e-8.)
    """
    transformers, LlamaConfig, LlamaForCausalLM = _load()
    models = []
    for offset, hidden in ((0, 16), (1, 8)):
        config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                             num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32,
                             bos_token_id=None, eos_token_id=None, pad_token_id=0, tie_word_embeddings=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + offset)
            model = LlamaForCausalLM(config).to(dtype).eval()
            with torch.no_grad():
                model.lm_head.weight.mul_(scale)
        model.generation_config.pad_token_id = 0
        model.generation_config.eos_token_id = None
        models.append(model)
    return models[0], models[1]


# ----------------------------------------------------------------------------- interception

_COMPARISONS = {"__le__": "le", "le": "le", "__lt__": "lt", "lt": "lt", "__ge__": "ge", "ge": "ge", "__gt__": "gt",
                "gt": "gt"}
_HARMLESS = {"shape", "dtype", "device", "size", "dim", "ndim", "numel", "__get__", "is_floating_point", "requires_grad"}


class SymbolicUniform(torch.Tensor):
    """Stands for i.i.d. uniforms on [0, 1); only comparisons with thresholds are allowed (see the module docstring)."""

    @staticmethod
    def __new__(cls, shape, dtype, device, source):
        placeholder = torch.full(tuple(shape), float("nan"), dtype=dtype, device=device)
        out = torch.Tensor._make_subclass(cls, placeholder)
        out._source = source
        return out

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if name in _COMPARISONS and len(args) == 2:
            u, c = args
            op = _COMPARISONS[name]
            if not isinstance(u, SymbolicUniform):  # c <op> u, e.g. ratio >= u
                u, c = c, u
                op = {"le": "ge", "lt": "gt", "ge": "le", "gt": "lt"}[op]
            threshold = torch.as_tensor(c).detach().to(torch.float64).expand(u.shape).clamp(0.0, 1.0)
            below = u._source.bernoulli(threshold)  # the event u <= c (u < c: the same up to a null set)
            return below if op in ("le", "lt") else ~below
        if name in _HARMLESS:
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **kwargs)
        raise NotEnumerableError(f"generation used a uniform in {name}(); only comparisons with a threshold are "
                                 "enumerable (transformers changed how it uses its uniforms)")


@contextlib.contextmanager
def enumerable_randomness(rng):
    """Within the block, torch.multinomial / torch.rand / torch.rand_like draw through ``rng`` (see the docstring)."""
    saved = torch.multinomial, torch.rand, torch.rand_like

    def multinomial(probs, num_samples=1, replacement=False, *, generator=None, out=None):
        if num_samples != 1:
            raise NotEnumerableError(f"torch.multinomial with num_samples={num_samples} is not enumerated")
        choice = rng.categorical(probs.detach().to(torch.float64))
        return choice.unsqueeze(-1).to(probs.device)

    def rand(*size, generator=None, dtype=None, device=None, **kwargs):
        shape = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else size
        return SymbolicUniform(shape, dtype or torch.float32, device or "cpu", rng)

    def rand_like(like, *, dtype=None, device=None, **kwargs):
        return SymbolicUniform(like.shape, dtype or like.dtype, device or like.device, rng)

    torch.multinomial, torch.rand, torch.rand_like = multinomial, rand, rand_like
    try:
        yield
    finally:
        torch.multinomial, torch.rand, torch.rand_like = saved


@contextlib.contextmanager
def raw_logits_as_q():
    """Re-introduces transformers#47932 for the block (a negative control for the end-to-end check): the assisted
    candidate generator hands the verifier the assistant's raw logits (``output_logits``) as q, while its drafts were
    sampled from the processed scores (top-k, temperature...)."""
    from transformers.generation.candidate_generator import AssistedCandidateGenerator

    original = AssistedCandidateGenerator._generate_candidates

    def raw(self, generation_args):
        generation_args["generation_config"].output_logits = True
        output = self.assistant_model.generate(**generation_args, **self.assistant_kwargs)
        self.assistant_kwargs["past_key_values"] = output.past_key_values
        return output.sequences, torch.stack(output.logits, dim=1)

    AssistedCandidateGenerator._generate_candidates = raw
    try:
        yield
    finally:
        AssistedCandidateGenerator._generate_candidates = original


# ----------------------------------------------------------------------------- the sampler and the law

class GenerateSampler:
    """Contract sampler: one call of ``model.generate(prompt, do_sample=True, ...)``; its continuation is the sample.

    candidate: None (plain sampling), "assisted", "prompt_lookup" or
    "early_exit".  sampling: generate's logits-processor settings
    (temperature, top_k, top_p).  Values: the ``new_tokens`` generated tokens.
    """

    exact = True

    def __init__(self, model, prompt, new_tokens: int, candidate: str | None = None, assistant=None,
                 num_assistant_tokens: int = 2, **sampling):
        if candidate not in (None, *CANDIDATE_GENERATORS):
            raise ValueError(f"candidate must be None or one of {sorted(CANDIDATE_GENERATORS)}, got {candidate!r}")
        if candidate == "assisted" and assistant is None:
            raise ValueError("candidate='assisted' needs an assistant model")
        self.model, self.assistant, self.candidate = model, assistant, candidate
        self.prompt = torch.as_tensor(prompt, dtype=torch.long).reshape(1, -1)
        self.new_tokens, self.num_assistant_tokens, self.sampling = new_tokens, num_assistant_tokens, sampling
        self.n, self.q = new_tokens, int(model.config.vocab_size)
        settings = ", ".join(f"{k}={v}" for k, v in sampling.items())
        self.name = f"transformers generate(do_sample=True{', ' + settings if settings else ''}, {candidate or 'plain'})"

    def _kwargs(self) -> dict:
        kwargs = dict(do_sample=True, max_new_tokens=self.new_tokens, min_new_tokens=self.new_tokens, **self.sampling)
        if self.candidate == "assisted":
            self.assistant.generation_config.num_assistant_tokens = self.num_assistant_tokens
            self.assistant.generation_config.num_assistant_tokens_schedule = "constant"
            self.assistant.generation_config.assistant_confidence_threshold = None
            kwargs["assistant_model"] = self.assistant
        elif self.candidate == "prompt_lookup":
            kwargs.update(prompt_lookup_num_tokens=self.num_assistant_tokens, max_matching_ngram_size=1)
        elif self.candidate == "early_exit":
            kwargs.update(assistant_early_exit=1, num_assistant_tokens=self.num_assistant_tokens)
        return kwargs

    def sample(self, oracle, num_samples: int, rng):
        if num_samples != 1 and getattr(rng, "num_rows", 1) > 1:
            raise NotRowwiseError("one generate() call per sample: enumerate one path per run")
        rows = []
        for _ in range(num_samples):
            with enumerable_randomness(rng), torch.no_grad():
                out = self.model.generate(self.prompt, **self._kwargs())
            rows.append(out[0, self.prompt.shape[1]:])
        return torch.stack(rows)


@dataclass
class LawTable:
    """A target for ``exact_law``: a law on [q]^n (its oracle is never asked)."""

    probs: torch.Tensor
    name: str = "law"

    @property
    def n(self) -> int:
        return self.probs.dim()

    @property
    def q(self) -> int:
        return int(self.probs.shape[0])

    def oracle(self, device="cpu"):
        return _NoOracle(self.n, self.q)


@dataclass
class _NoOracle:
    n: int
    q: int

    def marginals(self, partial):
        raise RuntimeError("the generation sampler asks its own models, never this oracle")


def generation_law(sampler: GenerateSampler) -> torch.Tensor:
    """Exact law [q]^n of the sampler's continuation (float64), by enumeration."""
    from verification.exact import exact_law

    uniform = torch.full((sampler.q,) * sampler.n, 1.0 / sampler.q**sampler.n, dtype=torch.float64)
    law = exact_law(sampler, LawTable(uniform))
    if law.unexplored_mass > 1e-12:
        raise RuntimeError(f"enumeration left mass {law.unexplored_mass:.3g} unexplored")
    return law.probs


def version() -> str:
    transformers, _, _ = _load()
    return transformers.__version__


def generate_cells(quick: bool = True) -> list[dict]:
    """Peer-audit rows: exact law of assisted / prompt-lookup / early-exit generation against plain sampling,
    for plain sampling, temperature, top-k and top-p (quick: vocabulary 3, 2 new tokens; else 4 and 3)."""
    vocab, new = (3, 2) if quick else (4, 3)
    target, assistant = tiny_models(vocab)
    prompt = [1, 2, 1, 2][: vocab + 1] if quick else [1, 2, 1, 3]
    name = f"transformers {version()} generate(do_sample=True)"
    rows = []
    for sampling in ({}, {"temperature": 0.6}, {"top_k": 2}, {"top_p": 0.8}):
        reference = generation_law(GenerateSampler(target, prompt, new, **sampling))
        label = ", ".join(f"{k}={v}" for k, v in sampling.items()) or "plain sampling"
        for candidate in (("assisted",) if quick else tuple(CANDIDATE_GENERATORS)):
            from verification.exact import exact_law

            law = exact_law(GenerateSampler(target, prompt, new, candidate, assistant, **sampling), LawTable(reference))
            rows.append({"sampler": f"{name} [{candidate}]", "target": f"tiny Llama, vocab {vocab}, {new} new tokens, {label}",
                         "check": "exact law vs plain generate(do_sample=True) (end to end, random calls intercepted)",
                         "verdict": "pass (float32 rounding)" if law.tv < FLOAT32_TV else "deviation",
                         "evidence": {"transformers": version(), "written_against": WRITTEN_AGAINST, "tv": law.tv,
                                      "paths": law.leaves, "candidate_generator": CANDIDATE_GENERATORS[candidate]}})
    return rows
