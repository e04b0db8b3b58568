"""How we know the samplers are right: exact laws, statistical checks, mutants, depth."""

from verification.certified import CertifiedResult, certify_exact, certify_exact_diffusion, certify_same_law
from verification.check import CheckResult, assert_sampler_exact, check_exact
from verification.diffusion_check import DiffusionCheckResult, assert_diffusion_exact, check_exact_diffusion
from verification.exact import ExactLaw, SamplerContractError, exact_law
from verification.power import min_detectable_tv, samples_for_tv
from verification.sequential import SequentialResult, check_exact_sequential

__all__ = ["CheckResult", "assert_sampler_exact", "check_exact", "ExactLaw", "SamplerContractError", "exact_law", "DiffusionCheckResult", "check_exact_diffusion", "assert_diffusion_exact", "min_detectable_tv", "samples_for_tv", "CertifiedResult", "certify_exact", "certify_exact_diffusion", "certify_same_law", "SequentialResult", "check_exact_sequential"]
