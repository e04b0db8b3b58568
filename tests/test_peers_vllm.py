"""vLLM's rejection sampler: runs only where vllm imports (see verification/peers/VLLM_CPU.md); skips with the
exact import error otherwise, never counted as a pass."""

import pytest

from verification.peers import PeerUnavailable


def test_vllm_rejection_sampler_is_loadable_or_skips_with_the_reason():
    from verification.peers import vllm_rejection

    try:
        rejection_sample, uniforms, version = vllm_rejection.load()
    except PeerUnavailable as reason:
        assert "vllm" in str(reason)
        pytest.skip(str(reason))
    assert callable(rejection_sample) and callable(uniforms) and version
