"""Bugs found in the wild: speculative-decoding losslessness bugs from public repositories, as regression cases.

Each ``WildEntry`` is a minimal reproduction of a reported mechanism (written
here from the report, never copied), its citation, an instance chosen to
expose it, and what the reported rule really is: ``expected = "biased"`` or
``"exact"`` (a reported rule that is in fact exact: the catalogue says so and
proves it by ``exact_law``).  ``sibling`` is the correct rule it differs from.

``verification.wild.audit.run_entry`` computes the evidence: the exact TV by
enumeration, ``check_exact`` at the default budget, the batch-differential
check for a bug that only shows in a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from autospec.targets import TabularTarget
from verification.wild import bugs
from verification.wild.generation import GenerationTarget, SpeculativeGeneration, random_model

__all__ = ["WildEntry", "catalogue", "entry"]


@dataclass(frozen=True)
class WildEntry:
    name: str
    citation: str  # "owner/repo#number" (and the fix, where there is one)
    mechanism: str  # one line
    make: Callable[[], Any]  # the reproduction
    sibling: Callable[[], Any]  # the correct rule on the same settings
    instance: Callable[[], GenerationTarget]
    expected: str = "biased"  # or "exact"
    batch_only: bool = False  # the bug shows only when the batch holds > 2 sequences
    note: str = ""

    @property
    def url(self) -> str:
        repo, _, number = self.citation.split()[0].partition("#")
        return f"https://github.com/{repo}/issues/{number}"


def _pair(cls, draft, q: int = 3, n: int = 2, **settings):
    draft = random_model(n, q, draft) if isinstance(draft, int) else draft
    return (lambda: cls(draft, **settings)), (lambda: SpeculativeGeneration(draft, **settings))


def beam_disagreeing_draft() -> TabularTarget:
    """A draft on [3]^2 whose most probable 2-token continuation (1, 0) does not start with its most probable
    first token 0: there beam search (width 2) and greedy drafting differ."""
    first = np.array([0.4, 0.35, 0.25])
    then = np.array([[1 / 3, 1 / 3, 1 / 3], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    return TabularTarget(first[:, None] * then, name="beam-disagreeing draft")


def _target(seed: int, n: int = 2, q: int = 3, **sampling):
    return lambda: GenerationTarget(random_model(n, q, seed), **sampling)


def _entries() -> list[WildEntry]:
    out = []

    def add(name, citation, cls, draft_seed, settings, target_seed, sampling=None, **kw):
        sampling = sampling or {}
        q, n = sampling.pop("q", 3), sampling.pop("n", 2)
        make, sibling = _pair(cls, draft_seed, q, n, **settings)
        out.append(WildEntry(name, citation, cls.__doc__.split(":", 1)[1].strip().split("\n\n")[0].replace("\n    ", " "),
                             make, sibling, _target(target_seed, n=n, q=q, **sampling), **kw))

    T = 0.5
    add("deepspec-bf16-draft-sampling", "deepseek-ai/DeepSpec#31 (fix: #30)", bugs.Bf16DraftSampling, 2,
        {"gamma": 2, "temperature": T, "logit_offset": 30.0, "dtype": torch.float32}, 1,
        {"temperature": T, "dtype": torch.float32, "logit_offset": 30.0},
        note="a rounding effect (logits near 30 in bf16 are rounded to multiples of 1/8): far below what a sample test "
             "sees at the default budget; exact_law proves it")
    add("transformers-raw-logits-as-q", "huggingface/transformers#47932 (fix: #47961)", bugs.RawDraftLogitsAsQ, 2,
        {"gamma": 2, "top_k": 2}, 1, {"top_k": 2})
    add("eagle-target-only-verification", "SafeAILab/EAGLE#329", bugs.TargetOnlyVerification, 2,
        {"gamma": 2, "temperature": T}, 1, {"temperature": T}, expected="exact",
        note="accept x w.p. p(x), else draw from p with x removed: P(out = y) = p(x) [y = x] + (1 - p(x)) p(y) / "
             "(1 - p(x)) [y != x] = p(y) for every drafted x, so the rule is exact whatever drafted x (it only loses "
             "acceptance rate); the exact law proves it")
    add("spec-rl-residual-from-target", "ShopeeLLM/Spec-RL#14", bugs.ResidualFromTarget, 2, {"gamma": 2}, 1)
    add("redrafter-beam-stochastic-ratio", "apple/ml-recurrent-drafter#6", bugs.BeamDraftStochasticRatio, beam_disagreeing_draft(),
        {"gamma": 2}, 1)
    add("greedy-draft-sampling-ratio", "jaymody/speculative-sampling#3", bugs.GreedyDraftSamplingRatio, 2,
        {"gamma": 2}, 1)
    add("dflash-draft-ignores-temperature", "z-lab/dflash#74", bugs.DraftIgnoresTemperature, 2,
        {"gamma": 2, "temperature": 0.4}, 1, {"temperature": 0.4})
    add("vllm-unprocessed-target-in-ratio", "vllm-project/vllm#10198", bugs.UnprocessedTargetInRatio, 2,
        {"gamma": 2, "temperature": 0.4}, 1, {"temperature": 0.4})
    add("mlx-match-then-fresh-draw", "ml-explore/mlx-swift-lm#459", bugs.MatchThenFreshDraw, 2, {"gamma": 1}, 1, {"q": 2})
    add("mlxcel-sampler-match", "lablup/mlxcel#902 / #992", bugs.SamplerMatch, 2, {"gamma": 2, "temperature": T}, 1,
        {"temperature": T, "q": 2}, expected="exact",
        note="the emitted token is the target's own draw z on both branches (the draft only decides how many "
             "positions one round fills), so every token is a fresh conditional draw from the target: exact; "
             "acceptance sum_x p(x) q(x) is the only cost")
    add("1cat-batch-misindexed-draft-probs", "1CatAI/1Cat-vLLM#656", bugs.BatchMisindexedDraftProbs, 2,
        {"gamma": 1}, 1, {"q": 2, "n": 3}, batch_only=True,
        note="exact at one sample (exact_law's num_samples = 1 sees nothing); the batch differential check "
             "(batch 3, row 2) and check_exact (batches of thousands) catch it")
    return out


_CATALOGUE: list[WildEntry] | None = None


def catalogue() -> list[WildEntry]:
    global _CATALOGUE
    if _CATALOGUE is None:
        _CATALOGUE = _entries()
    return list(_CATALOGUE)


def entry(name: str) -> WildEntry:
    for item in catalogue():
        if item.name == name:
            return item
    raise KeyError(f"no wild entry named {name!r}; known: {[e.name for e in catalogue()]}")
