"""Reference samplers, one module per algorithm family."""

from autospec.samplers.asd import ASD, SpeculativeDiffusion
from autospec.samplers.base import Sampler, SampleResult
from autospec.samplers.baselines import ConfidenceUnmasking, ParallelUnmasking, TopKSequential, TypicalAcceptance
from autospec.samplers.block_size import AdaptiveBlockSize, BlockSizePolicy, FixedBlockSize, SmoothedBlockSize
from autospec.samplers.diffusion_base import DiffusionSampler
from autospec.samplers.diffusion_sequential import DiffusionSequential
from autospec.samplers.draft_speculative import DraftSpeculative
from autospec.samplers.glauber import Glauber, ParallelGlauber
from autospec.samplers.langevin import ParallelLangevin
from autospec.samplers.parallel_dpp import ParallelDPP
from autospec.samplers.picard import Picard
from autospec.samplers.sequence_speculative import SequenceSpeculative
from autospec.samplers.sequence_speculative_diffusion import SequenceSpeculativeDiffusion
from autospec.samplers.sequential import Sequential
from autospec.samplers.sparsification import DomainSparsification
from autospec.samplers.speculation import SpeculativeSampler
from autospec.samplers.token_speculative import TokenSpeculative

__all__ = [
    "SampleResult",
    "Sampler",
    "Sequential",
    "SpeculativeSampler",
    "TokenSpeculative",
    "SequenceSpeculative",
    "BlockSizePolicy",
    "FixedBlockSize",
    "AdaptiveBlockSize",
    "SmoothedBlockSize",
    "DiffusionSampler",
    "DiffusionSequential",
    "SpeculativeDiffusion",
    "ASD",
    "SequenceSpeculativeDiffusion",
    "Picard",
    "DraftSpeculative",
    "ParallelUnmasking",
    "ConfidenceUnmasking",
    "TopKSequential",
    "TypicalAcceptance",
    "ParallelDPP",
    "Glauber",
    "ParallelGlauber",
    "DomainSparsification",
    "ParallelLangevin",
]
