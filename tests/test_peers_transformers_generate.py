"""transformers end to end: generate(do_sample=True, assistant_model=...) has the exact law of plain sampling (up to
float32 rounding), for plain sampling, temperature and top-k; re-introducing transformers#47932 is caught."""

import pytest
import torch

from verification import exact_law
from verification.peers import PeerUnavailable


@pytest.fixture(scope="module")
def hf():
    from verification.peers import transformers_generate as tg

    try:
        models = tg.tiny_models(3)
        version = tg.version()
    except PeerUnavailable as reason:
        pytest.skip(str(reason))
    if version not in tg.CHECKED_VERSIONS:
        pytest.skip(f"transformers {version}; the end-to-end adapter was checked on {tg.CHECKED_VERSIONS}")
    return tg, models


PROMPT = [1, 2, 1, 2]


@pytest.mark.parametrize("sampling", [{}, {"temperature": 0.6}, {"top_k": 2}], ids=["plain", "temperature", "top_k"])
def test_assisted_generation_has_the_law_of_plain_sampling(hf, sampling):
    tg, (target, assistant) = hf
    reference = tg.generation_law(tg.GenerateSampler(target, PROMPT, 2, **sampling))
    assert abs(float(reference.sum()) - 1) < 1e-12 and int((reference > 0).sum()) >= 4
    law = exact_law(tg.GenerateSampler(target, PROMPT, 2, "assisted", assistant, **sampling), tg.LawTable(reference))
    assert law.unexplored_mass < 1e-12
    assert law.tv < tg.FLOAT32_TV


@pytest.mark.parametrize("sampling", [{"temperature": 0.6}, {"top_k": 2}], ids=["temperature", "top_k"])
def test_reintroduced_raw_logits_bug_is_caught_end_to_end(hf, sampling):
    tg, (target, assistant) = hf
    reference = tg.generation_law(tg.GenerateSampler(target, PROMPT, 2, **sampling))
    with tg.raw_logits_as_q():
        law = exact_law(tg.GenerateSampler(target, PROMPT, 2, "assisted", assistant, **sampling), tg.LawTable(reference))
    assert law.tv > 100 * tg.FLOAT32_TV  # 0.03 (temperature 0.6) and 0.18 (top-k 2) on this instance


def test_uniforms_may_only_be_compared(hf):
    tg, _ = hf
    from autospec.randomness import NotEnumerableError, ReplayRandomness

    with tg.enumerable_randomness(ReplayRandomness([], [])):
        u = torch.rand(3)
        assert (u <= torch.tensor([0.0, 0.5, 1.0])).dtype == torch.bool
        with pytest.raises(NotEnumerableError, match="only comparisons"):
            u + 1


@pytest.mark.slow
@pytest.mark.parametrize("candidate", ["assisted", "prompt_lookup", "early_exit"])
@pytest.mark.parametrize("sampling", [{}, {"temperature": 0.6}, {"top_k": 2}, {"top_p": 0.8}],
                         ids=["plain", "temperature", "top_k", "top_p"])
def test_every_cpu_candidate_generator_has_the_law_of_plain_sampling(hf, candidate, sampling):
    tg, _ = hf
    target, assistant = tg.tiny_models(4)
    prompt = [1, 2, 1, 3]
    reference = tg.generation_law(tg.GenerateSampler(target, prompt, 3, **sampling))
    law = exact_law(tg.GenerateSampler(target, prompt, 3, candidate, assistant, **sampling), tg.LawTable(reference))
    assert law.unexplored_mass < 1e-12 and law.tv < tg.FLOAT32_TV
