"""Wrong diffusion samplers, each one clear change from a correct sibling (a subclass overriding one method).

All are built on the default kill setting ``kill_setting()``: a coarse grid on
which drafts are often rejected, so that each bug moves the output law by far
more than ``check_exact_diffusion`` detects at its default budget.
``kill_table`` runs the catalogue over many seeds and prints how often each
mutant was caught (and how often the correct siblings passed).
"""

from __future__ import annotations

import torch

from autospec.diffusion.grid import time_grid
from autospec.samplers.asd import ASD
from autospec.samplers.sequence_speculative_diffusion import SequenceSpeculativeDiffusion
from autospec.targets.gaussian import GaussianTarget
from verification.mutants import Mutant, catalogue, register

__all__ = [
    "FreshDrawASD",
    "WrongHyperplaneASD",
    "InvertedRatioASD",
    "WrongTimeIndexASD",
    "ReusedNoiseASD",
    "UntruncatedResidualSequenceDiffusion",
    "kill_setting",
    "kill_table",
]

KILL_STEPS, KILL_T_MAX, KILL_LOOKAHEAD = 16, 10.0, 6


def kill_setting():
    """(times, target): the setting the catalogue's mutants are checked on."""
    target = GaussianTarget(torch.tensor([2.0, -1.0]), torch.tensor([[4.0, 1.0], [1.0, 2.0]]))
    return time_grid(KILL_STEPS, t_max=KILL_T_MAX), target


class FreshDrawASD(ASD):
    """On rejection, a fresh draw from the target step N(a, h) instead of the reflection."""

    def residual(self, point, a, b, h, rng):
        return a + h.sqrt().unsqueeze(-1) * rng.normal(a.shape).to(a.device)


class WrongHyperplaneASD(ASD):
    """Reflection across the hyperplane through a (perpendicular to a - b) instead of the bisector."""

    def residual(self, point, a, b, h, rng):
        diff = a - b
        norm2 = (diff**2).sum(-1, keepdim=True).clamp(min=1e-300)
        along = ((point - a) * diff).sum(-1, keepdim=True) / norm2
        return point - 2.0 * along * diff


class InvertedRatioASD(ASD):
    """Acceptance ratio inverted: min(1, N(y; b, h) / N(y; a, h))."""

    def log_acceptance(self, point, a, b, h):
        return -super().log_acceptance(point, a, b, h)


class WrongTimeIndexASD(ASD):
    """Denoiser evaluated at t_{k+1} for a point at step k (off-by-one time index)."""

    def query_time_index(self, index):
        return index + 1


class ReusedNoiseASD(ASD):
    """One normal draw per round reused for every drafted step."""

    def draft_noise(self, rng, shape):
        A, L, d = shape
        return rng.normal((A, 1, d)).to(self.device).expand(A, L, d)


class UntruncatedResidualSequenceDiffusion(SequenceSpeculativeDiffusion):
    """Residual's one-dimensional part drawn from N(delta, 1), not truncated to u > u*."""

    def residual_u(self, log_p, delta, rng):
        return delta + rng.normal(log_p.shape).to(log_p.device)


def _asd(cls):
    return lambda: cls(kill_setting()[0], lookahead=KILL_LOOKAHEAD)


for _name, _cls, _sibling, _description in [
    ("diffusion_fresh_draw_on_rejection", FreshDrawASD, ASD,
     "ASD draws a fresh target step on rejection instead of reflecting the draft point"),
    ("diffusion_wrong_hyperplane", WrongHyperplaneASD, ASD,
     "ASD reflects across the hyperplane through the target mean instead of the bisector"),
    ("diffusion_inverted_ratio", InvertedRatioASD, ASD, "ASD accepts with min(1, draft / target)"),
    ("diffusion_wrong_time_index", WrongTimeIndexASD, ASD, "ASD evaluates the denoiser at t_{k+1} for step k"),
    ("diffusion_reused_noise", ReusedNoiseASD, ASD, "ASD reuses one noise draw for every drafted step of a round"),
    ("diffusion_untruncated_residual", UntruncatedResidualSequenceDiffusion, SequenceSpeculativeDiffusion,
     "sequence-level residual's 1-d part from the untruncated N(delta, 1)"),
]:
    register(Mutant(_name, _description, _asd(_cls), _asd(_sibling), setting="diffusion"))


def kill_table(seeds=range(100), num_samples: int | None = None, alpha: float = 1e-5, printer=print) -> dict:
    """Run every diffusion mutant and its sibling on ``seeds``; print and return the caught / passed counts."""
    from verification.diffusion_check import check_exact_diffusion

    _, target = kill_setting()
    seeds = list(seeds)
    table = {}
    printer(f"{'mutant':38s} {'caught':>10s} {'sibling passed':>15s}")
    siblings_done: dict[str, int] = {}
    for mutant in catalogue("diffusion"):
        caught = sum(
            not check_exact_diffusion(mutant.make(), target, num_samples=num_samples, alpha=alpha, seed=s).passed
            for s in seeds
        )
        sibling = mutant.sibling()
        key = type(sibling).__name__
        if key not in siblings_done:
            siblings_done[key] = sum(
                check_exact_diffusion(sibling, target, num_samples=num_samples, alpha=alpha, seed=s).passed
                for s in seeds
            )
        table[mutant.name] = {"caught": caught, "sibling_passed": siblings_done[key], "runs": len(seeds)}
        printer(f"{mutant.name:38s} {caught:>6d}/{len(seeds):<3d} {siblings_done[key]:>11d}/{len(seeds):<3d}")
    return table

