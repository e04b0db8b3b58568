"""``check_exact_diffusion``: does a diffusion sampler sample the K-step chain's law?

Against the exact chain law where the target has one (Gaussian: exact mean and
covariance, moment tests; one-dimensional and product mixtures: exact CDF per
coordinate, KS and Cramer-von Mises), otherwise two-sample (sliced KS, whose
p-values are analytic) against ``DiffusionSequential`` on the same times and
fresh randomness.  Every check states its alpha and the smallest sup-distance
between CDFs (per coordinate or projection) it detects with power 0.99.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from autospec.diffusion.chain_law import GaussianChainLaw
from autospec.diffusion.denoiser import CountingDenoiser
from autospec.randomness import Randomness
from autospec.samplers.base import SampleResult
from autospec.samplers.diffusion_base import DiffusionSampler
from autospec.samplers.diffusion_sequential import DiffusionSequential
from verification.running import check_sampler_object, output_values, sampler_name
from verification.two_sample import gaussian_moment_tests, min_detectable_ks, pit_tests, sliced_ks_test

__all__ = ["DiffusionCheckResult", "check_exact_diffusion", "assert_diffusion_exact", "run_diffusion_sampler"]

_REFERENCE_SEED_OFFSET = 1_000_003


@dataclass
class DiffusionCheckResult:
    sampler: str
    target: str
    test: str
    statistic: float
    p_value: float
    alpha: float
    passed: bool
    num_samples: int
    min_detectable_ks: float
    mean_rounds: float
    mean_queries: float
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{verdict}: {self.sampler} on {self.target}: {self.test} statistic {self.statistic:.4g}, "
            f"p = {self.p_value:.3g} (alpha = {self.alpha:g}), {self.num_samples} samples; "
            f"detects a CDF sup-distance of {self.min_detectable_ks:.4f} with power 0.99; "
            f"mean rounds {self.mean_rounds:.2f}"
        )


def run_diffusion_sampler(sampler, denoiser, num_samples: int, rng: Randomness) -> SampleResult:
    """Run a diffusion sampler; a user's sampler gets a counting denoiser, so its rounds are measured too.

    The output may be the values tensor [num_samples, d] or a result with ``.values`` (the discrete path's
    ``output_values``); rounds and queries of a user's sampler are the harness's count, not its own report.
    """
    check_sampler_object(sampler)
    if isinstance(sampler, DiffusionSampler):  # counts through its own CountingDenoiser
        out = sampler.sample(denoiser, num_samples, rng)
        values, rounds, queries = out.values, out.rounds, out.queries
    else:
        counted = CountingDenoiser(denoiser, num_samples)
        values = output_values(sampler.sample(counted, num_samples, rng))
        rounds, queries = counted.rounds.clone(), counted.queries.clone()
    dim = denoiser.dim
    if not isinstance(values, torch.Tensor) or tuple(values.shape) != (num_samples, dim):
        shape = list(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(f"sampler {sampler_name(sampler)} returned values {shape}, expected a tensor [{num_samples}, {dim}] "
                         "(or a result whose .values is one)")
    if not values.is_floating_point():
        raise ValueError(f"sampler {sampler_name(sampler)} returned values of dtype {values.dtype}; expected floating point")
    return SampleResult(values.to(torch.float64), rounds, queries)


def check_exact_diffusion(sampler, target, num_samples: int | None = None, alpha: float = 1e-3, seed: int = 0,
                          num_projections: int = 16) -> DiffusionCheckResult:
    if not (0 < alpha < 1):
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    check_sampler_object(sampler)
    times = getattr(sampler, "times", None)
    if times is None:
        raise TypeError(f"sampler {sampler!r} has no attribute 'times' (its time grid); check_exact_diffusion needs it")
    law = target.chain_law(times) if hasattr(target, "chain_law") else None
    n = num_samples if num_samples is not None else (20_000 if law is not None else 10_000)
    out = run_diffusion_sampler(sampler, target.denoiser(), n, Randomness(seed))
    values, rounds, queries = out.values, out.rounds, out.queries
    details: dict = {}
    if isinstance(law, GaussianChainLaw):
        result = gaussian_moment_tests(values, law.mean, law.cov)
        num_tests = len(result.details)
        test = "exact Gaussian chain law (moments, KS)"
    elif law is not None:
        result = pit_tests(values, [lambda x, i=i: law.cdf(x, i) for i in range(target.dim)])
        num_tests = 2 * target.dim
        test = "exact grid chain law (KS, CvM per coordinate)"
        details["grid_mass_error"] = law.mass_error
    else:
        reference = DiffusionSequential(times, device=getattr(sampler, "device", "cpu")).sample(
            target.denoiser(), n, Randomness(seed + _REFERENCE_SEED_OFFSET)
        )
        result = sliced_ks_test(values, reference.values, num_projections=num_projections, seed=seed)
        num_tests = result.details["num_directions"]
        test = "two-sample vs DiffusionSequential (sliced KS)"
    details.update(result.details)
    return DiffusionCheckResult(
        sampler=repr(sampler),
        target=repr(target),
        test=test,
        statistic=result.statistic,
        p_value=result.p_value,
        alpha=alpha,
        passed=bool(result.p_value > alpha),
        num_samples=n,
        # one-sample KS against the exact law's CDFs; two-sample (the reference has n samples too) otherwise
        min_detectable_ks=min_detectable_ks(n, alpha, num_tests, one_sample=law is not None),
        mean_rounds=float(rounds.double().mean()) if n else float("nan"),
        mean_queries=float(queries.double().mean()) if n else float("nan"),
        details=details,
    )


def assert_diffusion_exact(sampler, target, **kwargs) -> DiffusionCheckResult:
    result = check_exact_diffusion(sampler, target, **kwargs)
    if not result.passed:
        raise AssertionError(result.summary())
    return result
