"""Adapter for vLLM's rejection sampler (``vllm.v1.sample.rejection_sampler.rejection_sample``), written against
vllm 0.33.0 and not yet run: vllm does not import on this CPU machine (see ``VLLM_CPU.md`` beside this file).

Its randomness is two tensors made outside the Triton kernels, which is what makes its law computable: the
uniforms of ``generate_uniform_probs`` (a draft token is accepted iff ``uniform_prob < rate``) and the
exponentials of the recovered-token race (``argmax(prob / q)``, q ~ Exp(1)).  ``load()`` raises
``PeerUnavailable`` with the import error until vllm is importable (on a GPU machine, or on CPU with
``TRITON_INTERPRET=1`` once its dependencies are installed).
"""

from __future__ import annotations

from verification.peers.transformers_speculative import PeerUnavailable

__all__ = ["WRITTEN_AGAINST", "load"]

WRITTEN_AGAINST = "0.33.0"


def load():
    """(rejection_sample, generate_uniform_probs, version), or PeerUnavailable with the exact import error."""
    try:
        import vllm
        from vllm.v1.sample import rejection_sampler
    except Exception as error:  # ImportError, or a broken install
        raise PeerUnavailable(f"vllm is not importable ({type(error).__name__}: {error}); see "
                              "verification/peers/VLLM_CPU.md") from None
    for name in ("rejection_sample", "generate_uniform_probs", "sample_recovered_tokens"):
        if not hasattr(rejection_sampler, name):
            raise PeerUnavailable(f"vllm {vllm.__version__}: rejection_sampler has no {name} "
                                  f"(adapter written against {WRITTEN_AGAINST})")
    return rejection_sampler.rejection_sample, rejection_sampler.generate_uniform_probs, vllm.__version__
