"""How we know the samplers are right: exact laws, statistical checks, mutants, depth."""

from verification.exact import ExactLaw, SamplerContractError, exact_law

__all__ = ["ExactLaw", "SamplerContractError", "exact_law"]
