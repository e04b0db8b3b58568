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
from autospec.randomness import Randomness
from autospec.samplers.diffusion_sequential import DiffusionSequential
from verification.two_sample import gaussian_moment_tests, min_detectable_ks, pit_tests, sliced_ks_test

__all__ = ["DiffusionCheckResult", "check_exact_diffusion", "assert_diffusion_exact"]

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


def check_exact_diffusion(sampler, target, num_samples: int | None = None, alpha: float = 1e-3, seed: int = 0,
                          num_projections: int = 16) -> DiffusionCheckResult:
    if not (0 < alpha < 1):
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    times = getattr(sampler, "times", None)
    if times is None:
        raise TypeError(f"sampler {sampler!r} has no attribute 'times' (its time grid); check_exact_diffusion needs it")
    law = target.chain_law(times) if hasattr(target, "chain_law") else None
    n = num_samples if num_samples is not None else (20_000 if law is not None else 10_000)
    out = sampler.sample(target.denoiser(), n, Randomness(seed))
    values = getattr(out, "values", out)
    if not isinstance(values, torch.Tensor) or values.shape != (n, target.dim):
        raise ValueError(f"sampler {sampler!r} returned values of shape {list(getattr(values, 'shape', []))}, expected [{n}, {target.dim}]")
    rounds = getattr(out, "rounds", None)
    queries = getattr(out, "queries", None)
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
        min_detectable_ks=min_detectable_ks(n, alpha, num_tests),
        mean_rounds=float(rounds.double().mean()) if rounds is not None and n else float("nan"),
        mean_queries=float(queries.double().mean()) if queries is not None and n else float("nan"),
        details=details,
    )


def assert_diffusion_exact(sampler, target, **kwargs) -> DiffusionCheckResult:
    result = check_exact_diffusion(sampler, target, **kwargs)
    if not result.passed:
        raise AssertionError(result.summary())
    return result
