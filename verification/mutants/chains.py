"""Wrong Markov-chain and approximate samplers, each one clear change from a correct sibling.

Families: ParallelDPP, Glauber (sequential and parallel), domain
sparsification, parallel Langevin.  Each mutant comes with the check that
catches it (``CHECKS[name]()`` -> ``ChainVerdict``), the strongest available:

* exact law by enumeration (ParallelDPP; the parallel Glauber's T-step law
  against the sequential chain's);
* exact stationarity mu K = mu by enumerating the kernel from every state
  (Glauber, sparsification);
* for Langevin on a Gaussian target, the exact Gaussian law of the correct
  chain, tested against the mutant's samples (a statistical check at
  alpha = 1e-6 with 4000 samples).
"""

from __future__ import annotations

import copy as copy_module
import math
from dataclasses import dataclass
from typing import Callable

import torch

from autospec.randomness import RandomSource
from autospec.samplers.glauber import Glauber, ParallelGlauber, check_start
from autospec.samplers.langevin import ParallelLangevin
from autospec.samplers.parallel_dpp import ParallelDPP
from autospec.samplers.sparsification import DomainSparsification
from verification.mutants import Mutant, register

__all__ = ["ChainVerdict", "CHECKS", "check_chain_mutant", "EXACT_TOLERANCE"]

EXACT_TOLERANCE = 1e-10  # an exact-law or stationarity number above this is a proof of a bug on that instance
LANGEVIN_SAMPLES, LANGEVIN_ALPHA = 4000, 1e-6


@dataclass
class ChainVerdict:
    caught: bool
    number: float  # the exact TV (or the p-value, for the statistical Langevin check)
    check: str
    sibling_number: float  # the same number for the correct sibling (must pass)

    @property
    def sibling_passes(self) -> bool:
        if self.check.startswith("gaussian-law"):
            return self.sibling_number >= LANGEVIN_ALPHA
        return self.sibling_number < EXACT_TOLERANCE


# ---------------------------------------------------------------- ParallelDPP

class DPPAcceptanceWithoutInverse(ParallelDPP):
    """Acceptance prod_j P(t_j | S + t_<j), without the 1 / p_(t_j) factor."""

    @staticmethod
    def acceptance(p, tokens, conditionals):
        later = conditionals[:, :-1].gather(2, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
        repeated = (tokens.unsqueeze(2) == tokens.unsqueeze(1)).tril(-1).any(2)[:, 1:]
        return torch.where(repeated, torch.zeros_like(later), later).prod(1)


class DPPUnconditionedAcceptance(ParallelDPP):
    """Acceptance from the marginals at S for every factor (forgets to condition on t_<j): only repeats are rejected."""

    @staticmethod
    def acceptance(p, tokens, conditionals):
        repeated = (tokens.unsqueeze(2) == tokens.unsqueeze(1)).tril(-1).any(2)
        return (~repeated.any(1)).to(p.dtype)


# ---------------------------------------------------------------- Glauber

class GlauberUnconditionalRedraw(Glauber):
    """Redraws the chosen site from its unconditional marginal mu(x_i), not mu(x_i | x_-i)."""

    def run(self, oracle, num_samples: int, rng: RandomSource) -> torch.Tensor:
        x = check_start(self.start, num_samples, oracle.n, oracle.q, self.device)
        everyone = torch.arange(num_samples)
        sites = self.sites(num_samples, oracle.n, rng)
        for t in range(self.steps):
            law = oracle.marginals(torch.full_like(x, -1), sample_ids=everyone)[everyone, sites[:, t]]
            x[everyone, sites[:, t]] = rng.categorical(law)
        return x


class ParallelGlauberSystematicScan(ParallelGlauber):
    """Claims the random-scan chain but updates sites 0, 1, ..., n-1, 0, ... in order."""

    def __init__(self, steps, start, lookahead=2):
        super().__init__(steps, start, lookahead, scan="systematic")


class ParallelGlauberResidualFromTarget(ParallelGlauber):
    """At a rejected update draws from the target conditional P instead of the residual (P - D)+."""

    def residual(self, target, draft):
        return target


# ---------------------------------------------------------------- sparsification

class SparsificationUniformUp(DomainSparsification):
    """Proposes the added items uniformly while the down step still divides by p~."""

    def up_law(self, p_tilde):
        return torch.full_like(p_tilde, 1.0 / p_tilde.numel())


# ---------------------------------------------------------------- the instances and checks

def _dpp_target():
    from autospec.targets import DPPTarget

    return DPPTarget.random(5, 2, "projection", seed=7)


def _glauber_target():
    from autospec.targets import TabularTarget

    return TabularTarget.random(3, 2, seed=7)


GLAUBER_START, GLAUBER_STEPS = torch.tensor([0, 1, 0]), 3
SPARSE_START = torch.tensor([1, 1, 0, 0])


def _sparse_target():
    from autospec.targets import DPPTarget

    return DPPTarget.random(4, 2, "projection", seed=3)


def _langevin_target():
    from autospec.targets import GaussianTarget

    return GaussianTarget.random(3, seed=2)


def _langevin(kind: str, noise_scale: float = 1.0) -> ParallelLangevin:
    return ParallelLangevin(0.1, window=8, epochs=3, picard=2, kind=kind, start=[2.0, 0.0, -1.0], noise_scale=noise_scale)


def _exact_tv(sampler, target) -> float:
    from verification.exact import exact_law
    from verification.markov import as_table_target

    return exact_law(sampler, as_table_target(target)).tv


def _law_distance(sampler, reference, target) -> float:
    from verification.exact import exact_law
    from verification.markov import as_table_target

    table = as_table_target(target)
    return 0.5 * float((exact_law(sampler, table).probs - exact_law(reference, table).probs).abs().sum())


def _restarted(sampler, start):
    """The same chain sampler started at ``start``."""
    copy = copy_module.copy(sampler)
    copy.start = start
    return copy


def _stationarity_tv(sampler, target) -> float:
    from verification.markov import kernel_matrix, stationarity

    return stationarity(kernel_matrix(lambda x: _restarted(sampler, x), target), target).tv


def _gaussian_p_value(sampler, kind: str) -> float:
    from autospec import Randomness
    from verification.langevin_law import gaussian_law_test, picard_chain_law

    target = _langevin_target()
    values = sampler.sample(target, LANGEVIN_SAMPLES, Randomness(11)).values
    return gaussian_law_test(values, picard_chain_law(target, _langevin(kind)), LANGEVIN_ALPHA).p_value


_FAMILY: dict[str, tuple[str, Callable[[object], float], Callable[[], object]]] = {}


def _register(name: str, description: str, make, sibling, check: str, measure: Callable[[object], float]) -> None:
    register(Mutant(name, description, make, sibling, setting="chain"))
    _FAMILY[name] = (check, measure, sibling)


_register("dpp-acceptance-without-inverse", DPPAcceptanceWithoutInverse.__doc__,
          lambda: DPPAcceptanceWithoutInverse(trials=1), lambda: ParallelDPP(trials=1),
          "exact-law TV (projection DPP n=5, k=2)", lambda s: _exact_tv(s, _dpp_target()))
_register("dpp-unconditioned-acceptance", DPPUnconditionedAcceptance.__doc__,
          lambda: DPPUnconditionedAcceptance(trials=1), lambda: ParallelDPP(trials=1),
          "exact-law TV (projection DPP n=5, k=2)", lambda s: _exact_tv(s, _dpp_target()))
_register("glauber-unconditional-redraw", GlauberUnconditionalRedraw.__doc__,
          lambda: GlauberUnconditionalRedraw(1, GLAUBER_START), lambda: Glauber(1, GLAUBER_START),
          "stationarity TV(mu K, mu) (random table n=3, q=2)",
          lambda s: _stationarity_tv(s, _glauber_target()))
_register("parallel-glauber-systematic-scan", ParallelGlauberSystematicScan.__doc__,
          lambda: ParallelGlauberSystematicScan(GLAUBER_STEPS, GLAUBER_START),
          lambda: ParallelGlauber(GLAUBER_STEPS, GLAUBER_START, lookahead=2),
          "TV to the sequential random-scan T-step law (T=3)",
          lambda s: _law_distance(s, Glauber(GLAUBER_STEPS, GLAUBER_START), _glauber_target()))
_register("parallel-glauber-residual-from-target", ParallelGlauberResidualFromTarget.__doc__,
          lambda: ParallelGlauberResidualFromTarget(GLAUBER_STEPS, GLAUBER_START, lookahead=2),
          lambda: ParallelGlauber(GLAUBER_STEPS, GLAUBER_START, lookahead=2),
          "TV to the sequential random-scan T-step law (T=3)",
          lambda s: _law_distance(s, Glauber(GLAUBER_STEPS, GLAUBER_START), _glauber_target()))
_register("sparsification-without-multiplicities", "Down step weights mu(S') prod 1 / p~_i, dropping the multiplicities m_T(i).",
          lambda: DomainSparsification(1, SPARSE_START, 4, multiplicities=False),
          lambda: DomainSparsification(1, SPARSE_START, 4),
          "stationarity TV(mu K, mu) (projection DPP n=4, k=2, t=4)",
          lambda s: _stationarity_tv(s, _sparse_target()))
_register("sparsification-uniform-up", SparsificationUniformUp.__doc__,
          lambda: SparsificationUniformUp(1, SPARSE_START, 4, slack=1.0),
          lambda: DomainSparsification(1, SPARSE_START, 4),
          "stationarity TV(mu K, mu) (projection DPP n=4, k=2, t=4)",
          lambda s: _stationarity_tv(s, _sparse_target()))
_register("langevin-overdamped-noise-scale", "Overdamped Langevin with noise sqrt(h) xi instead of sqrt(2 h) xi.",
          lambda: _langevin("overdamped", 1 / math.sqrt(2)), lambda: _langevin("overdamped"),
          "gaussian-law test against the exact chain law (p-value)", lambda s: _gaussian_p_value(s, "overdamped"))
_register("langevin-underdamped-noise-scale", "Underdamped Langevin with velocity noise sqrt(gamma h) xi instead of sqrt(2 gamma h) xi.",
          lambda: _langevin("underdamped", 1 / math.sqrt(2)), lambda: _langevin("underdamped"),
          "gaussian-law test against the exact chain law (p-value)", lambda s: _gaussian_p_value(s, "underdamped"))

CHECKS = {name: check for name, (check, _, _) in _FAMILY.items()}


def check_chain_mutant(name: str) -> ChainVerdict:
    """Run the mutant and its correct sibling through the family's check."""
    from verification.mutants import catalogue

    mutant = next(m for m in catalogue("chain") if m.name == name)
    check, measure, _ = _FAMILY[name]
    number, sibling_number = measure(mutant.make()), measure(mutant.sibling())
    caught = number < LANGEVIN_ALPHA if check.startswith("gaussian-law") else number > EXACT_TOLERANCE
    return ChainVerdict(caught, number, check, sibling_number)
