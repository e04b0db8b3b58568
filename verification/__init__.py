"""How we know the samplers are right: exact laws, statistical checks, mutants, depth."""

from verification.check import CheckResult, assert_sampler_exact, check_exact
from verification.exact import ExactLaw, SamplerContractError, exact_law

__all__ = ["CheckResult", "assert_sampler_exact", "check_exact", "ExactLaw", "SamplerContractError", "exact_law"]
