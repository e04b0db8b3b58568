"""autospec: reference parallel and speculative samplers with exact targets and oracles."""

from autospec.randomness import Randomness, RandomSource

__all__ = ["Randomness", "RandomSource"]
__version__ = "0.1.0"
