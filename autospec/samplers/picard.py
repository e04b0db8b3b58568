"""Picard iteration (ParaDiGMS) for the diffusion chain: parallel in time, not exact for tol > 0.

The noise xi [N, K, d] is drawn once up front (shared noise).  Given the
converged point Y_s, a window of ``window`` steps s..e-1 is iterated:

    Y_{j+1} <- Y_s + sum_{i=s}^{j} (h_i m(Y_i, t_i) + sqrt(h_i) xi_i),   j = s..e-1,

with all m(Y_i, t_i) of the window evaluated in one round.

Stopping rule (ParaDiGMS, Shih et al. 2023, Algorithm 1, as in diffusers'
``StableDiffusionParadigmsPipeline``): the error of the new point Y_{j+1} is
its squared change per dimension scaled by the noise variance of the step
that leaves it, |Y_{j+1}^new - Y_{j+1}^old|^2 / (d h_{j+1}) (the final point,
whose step has no noise, always counts as a violation); with i the window
position of the first error above tol^2 (W if none), the window slides by
min(1 + i, W).  Sliding past the violating point itself is right: its new
value was computed from converged predecessors.  Tolerances are therefore
relative to the noise each step adds, comparable across grids.
Points beyond the window are guessed by continuing the last window point with
its drift frozen.  With tol -> 0 the output agrees pathwise with the
sequential chain on the same noise (up to rounding).  The final round
evaluates m(Y_K, t_K).
"""

from __future__ import annotations

import torch

from autospec.diffusion.denoiser import CountingDenoiser
from autospec.samplers.base import SampleResult
from autospec.samplers.diffusion_base import DiffusionSampler

__all__ = ["Picard"]


class Picard(DiffusionSampler):
    name = "picard"
    exact = False  # exact only in the limit tol -> 0

    def __init__(self, times, window: int = 16, tol: float = 1e-3, max_rounds: int | None = None, device="cpu"):
        super().__init__(times, device=device)
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ValueError(f"window must be a positive int, got {window!r}")
        if not (isinstance(tol, (int, float)) and tol >= 0):
            raise ValueError(f"tol must be a non-negative number, got {tol!r}")
        self.window, self.tol = window, float(tol)
        self.max_rounds = max_rounds if max_rounds is not None else 10 * self.steps + 10

    def __repr__(self) -> str:
        return f"picard(K={self.steps}, window={self.window}, tol={self.tol:g})"

    def run(self, denoiser, num_samples, rng, noise: torch.Tensor | None = None):
        d, K, W, dev = denoiser.dim, self.steps, self.window, self.device
        times, incr = self.times, self.increments
        if noise is None:
            noise = rng.normal((num_samples, K, d)).to(dev)
        noise = noise.to(torch.float64)
        traj = torch.zeros(num_samples, K + 1, d, dtype=torch.float64, device=dev)
        traj[:, 1:] = (incr.sqrt().view(1, K, 1) * noise).cumsum(1)  # initial guess: drift 0
        start = torch.zeros(num_samples, dtype=torch.long, device=dev)
        output = torch.zeros(num_samples, d, dtype=torch.float64, device=dev)
        done = torch.zeros(num_samples, dtype=torch.bool, device=dev)
        sweeps = torch.zeros(num_samples, dtype=torch.long, device=dev)
        offsets = torch.arange(W, device=dev)
        rounds = 0
        while not bool(done.all()):
            rounds += 1
            if rounds > self.max_rounds:
                raise RuntimeError(f"Picard did not finish in {self.max_rounds} rounds (tol={self.tol:g})")
            active = torch.nonzero(~done).squeeze(1)
            s = start[active]
            idx = s.unsqueeze(1) + offsets  # [A, W] grid indices of the window's points
            valid = idx < K
            cidx = idx.clamp(max=K)
            pts = traj[active.unsqueeze(1), cidx]  # [A, W, d]
            finishing = s >= K  # converged to Y_K: evaluate the output
            ask = valid.clone()
            ask[:, 0] |= finishing
            rows, cols = torch.nonzero(ask, as_tuple=True)
            answers = denoiser(pts[rows, cols], times[cidx[rows, cols]], sample_ids=active[rows])
            drift = torch.zeros_like(pts)
            drift[rows, cols] = answers
            fin = torch.nonzero(finishing).squeeze(1)
            output[active[fin]] = drift[fin, 0]
            done[active[fin]] = True
            go = torch.nonzero(~finishing).squeeze(1)
            if go.numel() == 0:
                continue
            a, s, idx, valid, pts, drift = active[go], s[go], idx[go], valid[go], pts[go], drift[go]
            sweeps[a] += 1
            hh = torch.where(valid, incr[idx.clamp(max=K - 1)], torch.zeros((), dtype=torch.float64))
            xi = noise[a.unsqueeze(1), idx.clamp(max=K - 1)]
            moves = hh.unsqueeze(-1) * drift + hh.sqrt().unsqueeze(-1) * xi
            new = pts[:, :1] + moves.cumsum(1)  # values at indices idx + 1
            old = traj[a.unsqueeze(1), (idx + 1).clamp(max=K)]
            # ParaDiGMS: squared change per dimension over the noise variance of the step leaving the point
            point = idx + 1  # grid index of each new point
            variance = torch.where(point < K, incr[point.clamp(max=K - 1)], torch.zeros((), dtype=torch.float64))
            squared = (new - old).pow(2).sum(-1) / d
            error = torch.where(variance > 0, squared / torch.where(variance > 0, variance, torch.ones_like(variance)),
                                torch.where(squared > 0, torch.full_like(squared, float("inf")), squared))
            violation = (error > self.tol**2) & valid
            first = torch.where(violation.any(1), violation.to(torch.long).argmax(1), torch.full_like(s, W))
            advance = torch.minimum(torch.minimum(1 + first, torch.full_like(s, W)), K - s)
            # write the sweep
            r, c = torch.nonzero(valid, as_tuple=True)
            traj[a[r], idx[r, c] + 1] = new[r, c]
            # guesses beyond the window: continue the last window point with its drift frozen
            last = valid.sum(1) - 1  # position of the last valid step in the window
            end = idx[torch.arange(a.numel()), last] + 1  # grid index of the last written point
            beyond = end.unsqueeze(1) + 1 + offsets  # next W indices
            bvalid = beyond <= K
            bh = torch.where(bvalid, incr[(beyond - 1).clamp(max=K - 1)], torch.zeros((), dtype=torch.float64))
            bxi = noise[a.unsqueeze(1), (beyond - 1).clamp(max=K - 1)]
            last_drift = drift[torch.arange(a.numel()), last]
            bmoves = bh.unsqueeze(-1) * last_drift.unsqueeze(1) + bh.sqrt().unsqueeze(-1) * bxi
            bvals = traj[a, end].unsqueeze(1) + bmoves.cumsum(1)
            r, c = torch.nonzero(bvalid, as_tuple=True)
            traj[a[r], beyond[r, c]] = bvals[r, c]
            start[a] = s + advance
        return output, {"rounds": rounds, "sweeps": sweeps}

    def sample_with_noise(self, denoiser, noise: torch.Tensor) -> SampleResult:
        """Run on given noise [N, K, d] (shared with ``DiffusionSequential.sample_with_noise``)."""
        counted = CountingDenoiser(denoiser, noise.shape[0], device=self.device)
        values, info = self.run(counted, noise.shape[0], None, noise=noise)
        return SampleResult(values, counted.rounds.clone(), counted.queries.clone(), info)
