"""Parallel Langevin sampling by Picard iterations (in the manner of arXiv 2401.09016), overdamped and underdamped.

Target: anything with ``dim`` and ``score(x [B, d]) -> [B, d]`` (grad log density).
The chain is Euler-Maruyama on a grid of step h, in epochs of M steps:

* overdamped, z = x:       z_(i+1) = z_i + h s(x_i) + sqrt(2 h) xi_i;
* underdamped, z = (x, v): x_(i+1) = x_i + h v_i,
                           v_(i+1) = v_i + h (s(x_i) - gamma v_i) + sqrt(2 gamma h) xi_i.

Within an epoch the M Gaussian increments are drawn once (one Brownian path
per epoch) and the whole window is solved by Picard iteration:
Z^(0)_j = z_0 for every j, and

    Z^(p+1)_j = z_0 + sum_(i < j) [h F(Z^(p)_i) + noise_i],   j = 1..M,

with the drift F at the M points 0..M-1 evaluated in one round (one batch of
score calls).  After P iterations the epoch's last point starts the next
epoch.  Rounds: epochs * P; the sequential chain takes epochs * M.  With
P >= M the window is solved exactly (Picard on a triangular system is exact
after M sweeps), so P = M reproduces sequential Euler with the same noise;
P < M is approximate by design, and its error is measured
(``verification.langevin_law`` gives the exact Gaussian law for Gaussian
targets), never assumed.
"""

from __future__ import annotations

import math

import torch

from autospec.oracles import RoundCounter
from autospec.randomness import RandomSource
from autospec.samplers.base import SampleResult, check_num_samples, check_rng

__all__ = ["ParallelLangevin", "CountingScore"]


class CountingScore:
    """Wraps a target's score; one call (a batch of points) is one round for every sample in it."""

    def __init__(self, target, num_samples: int):
        if not hasattr(target, "score") or not hasattr(target, "dim"):
            raise TypeError(f"target {target!r} needs dim and score(x [B, d]) -> [B, d] for Langevin sampling")
        self.target, self.dim = target, int(target.dim)
        self.counter = RoundCounter(num_samples)

    def __call__(self, x: torch.Tensor, sample_ids: torch.Tensor) -> torch.Tensor:
        self.counter.charge(x.shape[0], sample_ids)
        out = self.target.score(x)
        if out.shape != x.shape or not bool(torch.isfinite(out).all()):
            raise ValueError(f"score of {self.target!r} returned shape {list(out.shape)} (expected {list(x.shape)}) or non-finite values")
        return out.to(torch.float64)


def _positive(value, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _count(value, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class ParallelLangevin:
    """Epochs of M Euler steps of size h, each solved by P Picard iterations (P = M: exact sequential Euler)."""

    exact = False  # approximate by design: a discretised chain, and P < M Picard sweeps

    def __init__(self, step: float, window: int, epochs: int, picard: int | None = None, kind: str = "overdamped",
                 friction: float = 1.0, start=None, noise_scale: float = 1.0):
        self.step = _positive(step, "step")
        self.window = _count(window, "window")
        self.epochs = _count(epochs, "epochs")
        self.picard = self.window if picard is None else _count(picard, "picard")
        if kind not in ("overdamped", "underdamped"):
            raise ValueError(f"kind must be 'overdamped' or 'underdamped', got {kind!r}")
        self.kind = kind
        self.friction = _positive(friction, "friction")
        self.start = start
        self.noise_scale = _positive(noise_scale, "noise_scale")  # 1 for the chain above; anything else only in a mutant
        self.name = f"ParallelLangevin({kind}, h={step:g}, M={window}, P={self.picard}, epochs={epochs})"

    # ---------------------------------------------------------------- the chain's pieces
    def drift(self, z: torch.Tensor, score) -> torch.Tensor:
        """F(z) for points z [B, D] (D = d or 2d), one round."""
        if self.kind == "overdamped":
            return score(z)
        d = z.shape[-1] // 2
        x, v = z[..., :d], z[..., d:]
        return torch.cat([v, score(x) - self.friction * v], -1)

    def noise(self, xi: torch.Tensor) -> torch.Tensor:
        """The Gaussian increment of one step from standard normals xi [..., d] -> [..., D]."""
        h = self.step
        if self.kind == "overdamped":
            return self.noise_scale * math.sqrt(2 * h) * xi
        return torch.cat([torch.zeros_like(xi), self.noise_scale * math.sqrt(2 * self.friction * h) * xi], -1)

    def start_state(self, num_samples: int, d: int) -> torch.Tensor:
        x0 = torch.zeros(d, dtype=torch.float64) if self.start is None else torch.as_tensor(self.start, dtype=torch.float64)
        if x0.shape != (d,):
            raise ValueError(f"start must be a vector [{d}], got shape {list(x0.shape)}")
        z0 = x0 if self.kind == "overdamped" else torch.cat([x0, torch.zeros(d, dtype=torch.float64)])  # v_0 = 0
        return z0.expand(num_samples, -1).clone()

    # ---------------------------------------------------------------- sampling
    def sample(self, target, num_samples: int, rng: RandomSource) -> SampleResult:
        num_samples = check_num_samples(num_samples)
        rng = check_rng(rng)
        score = CountingScore(target, num_samples)
        values = self.run(score, num_samples, rng)
        return SampleResult(values, score.counter.rounds.clone(), score.counter.queries.clone())

    def run(self, score: CountingScore, num_samples: int, rng: RandomSource) -> torch.Tensor:
        d, M, h = score.dim, self.window, self.step
        z0 = self.start_state(num_samples, d)
        ids = torch.arange(num_samples).repeat_interleave(M)
        for _ in range(self.epochs):
            increments = self.noise(rng.normal((num_samples, M, d)))  # one Brownian path for the epoch [N, M, D]
            points = z0.unsqueeze(1).expand(-1, M + 1, -1).clone()  # Z^(0): every point at z_0, [N, M + 1, D]
            for _ in range(self.picard):
                F = self.drift(points[:, :M].reshape(num_samples * M, -1), lambda x: score(x, ids)).view(num_samples, M, -1)
                points[:, 1:] = z0.unsqueeze(1) + (h * F + increments).cumsum(1)
            z0 = points[:, M]
        return z0[:, :d].clone()

    def __repr__(self) -> str:
        return self.name
