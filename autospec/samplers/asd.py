"""ASD, autospeculative decoding for the diffusion chain (token-level rule on Gaussian steps).

One round, per sample at step k with current point y and drift g (the exact
m(y, t_k) when known, otherwise the denoiser value at the last rejected draft
point, which is a law fixed by the past):

1. Draft L steps with the drift frozen:  y^_{j+1} = y^_j + h g + sqrt(h) xi_j,  y^_0 = y.
2. One round: evaluate m at every draft point (and at y when its drift is unknown).
3. Step j: target N(a_j, h), a_j = y^_j + h m(y^_j, t_{k+j}); draft N(b_j, h), b_j = y^_j + h g.
   Accept y^_{j+1} with probability min(1, N(y^_{j+1}; a_j, h) / N(y^_{j+1}; b_j, h)).
   At the first rejection take the reflection of y^_{j+1} across the hyperplane
   bisecting a_j and b_j (exactly the residual law (N(a) - N(b))_+ for equal
   covariances; no extra randomness) and end the round.
When g is exact (always, except just after a reflection) a_0 = b_0 and the first
step is always accepted.  After a reflection the new point's drift is unknown;
instead of spending a round on it, the next round drafts with the drift of the
rejected draft point and evaluates m at the new point together with the drafts
(pipelining: the draft only has to be a law fixed by the past).  With
``pipeline=False`` a round is spent on the new point's drift first, so that the
first step of every drafting round is accepted, as in DESIGN 4.7.  Pipelining
saves rounds for both rules; it helps ASD most in high dimension, since the
reflected point is the mirror image of an evaluated draft point across a nearby
hyperplane while the sequence-level residual draws a fresh orthogonal part
(at d = 16 pipelined ASD then needs fewer rounds than the pipelined
sequence-level rule; without pipelining the sequence-level rule needs fewer).

``SpeculativeDiffusion`` holds the round machinery shared with the
sequence-level sampler; subclasses implement ``verify``.
"""

from __future__ import annotations

import torch

from autospec.randomness import RandomSource
from autospec.samplers.block_size import as_block_policy
from autospec.samplers.diffusion_base import DiffusionSampler, gaussian_log_ratio

__all__ = ["SpeculativeDiffusion", "ASD", "reflect"]


def reflect(point: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Reflection of point [A, d] across the hyperplane bisecting a and b (perpendicular to a - b)."""
    diff = a - b
    norm2 = (diff**2).sum(-1, keepdim=True)
    safe = torch.where(norm2 > 0, norm2, torch.ones_like(norm2))
    along = ((point - 0.5 * (a + b)) * diff).sum(-1, keepdim=True) / safe
    return torch.where(norm2 > 0, point - 2.0 * along * diff, point)


class SpeculativeDiffusion(DiffusionSampler):
    """Draft L steps with frozen drift, evaluate all in one round, verify with ``verify``."""

    def __init__(self, times, lookahead=8, pipeline: bool = True, device="cpu"):
        super().__init__(times, device=device)
        self.lookahead = as_block_policy(lookahead)
        self.pipeline = bool(pipeline)

    # -- the pieces a mutant may change ---------------------------------------
    def draft_noise(self, rng: RandomSource, shape) -> torch.Tensor:
        """Independent standard normal increments for every drafted step: [A, L, d]."""
        return rng.normal(shape).to(self.device)

    def query_time_index(self, index: torch.Tensor) -> torch.Tensor:
        """The grid index at which m is evaluated for a point at step ``index`` (the same index)."""
        return index

    def verify(self, draft, a, b, h, lengths, rng):
        """draft [A, L+1, d] (draft[:, 0] the current point), a/b [A, L, d] target/draft step means,
        h [A, L] step variances, lengths [A] >= 1 -> (steps [A] in 1..length, point [A, d], complete [A]).

        ``complete``: all ``lengths`` steps accepted, point = draft[length] (its drift is known)."""
        raise NotImplementedError

    # -- the round loop --------------------------------------------------------
    def run(self, denoiser, num_samples, rng):
        d, K, dev = denoiser.dim, self.steps, self.device
        times, incr = self.times, self.increments
        y = torch.zeros(num_samples, d, dtype=torch.float64, device=dev)
        drift = torch.zeros_like(y)  # proxy drift: m(0, 0) is not known before the first round
        known = torch.zeros(num_samples, dtype=torch.bool, device=dev)
        k = torch.zeros(num_samples, dtype=torch.long, device=dev)
        block = self.lookahead.initial(num_samples, K, dev)
        iterations = 0
        while True:
            active = torch.nonzero((k < K) | ~known).squeeze(1)
            if active.numel() == 0:
                break
            iterations += 1
            A = active.numel()
            ka, ya, ga, kn = k[active], y[active], drift[active], known[active]
            lengths = torch.minimum(block[active], K - ka)  # 0 only when k = K and the drift is unknown
            if not self.pipeline:  # spend a round on the new point's drift before drafting from it
                lengths = torch.where(kn, lengths, torch.zeros_like(lengths))
            L = int(lengths.max())
            steps_ix = torch.arange(L + 1, device=dev)
            point_ix = (ka.unsqueeze(1) + steps_ix).clamp(max=K)  # [A, L+1] grid index of each draft point
            valid_step = steps_ix[:L].unsqueeze(0) < lengths.unsqueeze(1)  # [A, L]
            h = torch.where(valid_step, incr[point_ix[:, :L].clamp(max=K - 1)], torch.zeros((), dtype=torch.float64))
            xi = self.draft_noise(rng, (A, L, d)) if L > 0 else torch.zeros(A, 0, d, dtype=torch.float64, device=dev)
            moves = h.unsqueeze(-1) * ga.unsqueeze(1) + h.sqrt().unsqueeze(-1) * xi
            draft = torch.cat([ya.unsqueeze(1), ya.unsqueeze(1) + moves.cumsum(1)], dim=1)  # [A, L+1, d]
            # one round: the current point (if its drift is unknown) and every valid draft point
            ask = torch.cat([(~kn).unsqueeze(1), valid_step], dim=1)  # [A, L+1]
            rows, cols = torch.nonzero(ask, as_tuple=True)
            answers = denoiser(
                draft[rows, cols], times[self.query_time_index(point_ix[rows, cols]).clamp(max=K)], sample_ids=active[rows]
            )
            evals = torch.empty(A, L + 1, d, dtype=torch.float64, device=dev)
            evals[:, 0] = ga
            evals[rows, cols] = answers
            finishing = lengths == 0  # only the current point's drift was evaluated
            steps = torch.zeros(A, dtype=torch.long, device=dev)
            new_point, complete = ya.clone(), torch.ones(A, dtype=torch.bool, device=dev)
            drafting = torch.nonzero(~finishing).squeeze(1)
            if drafting.numel() > 0:
                dr = draft[drafting]
                hv = h[drafting]
                a = dr[:, :L] + hv.unsqueeze(-1) * evals[drafting, :L]
                b = dr[:, :L] + hv.unsqueeze(-1) * ga[drafting].unsqueeze(1)
                s, p, c = self.verify(dr, a, b, hv, lengths[drafting], rng)
                steps[drafting], new_point[drafting], complete[drafting] = s, p, c
            # drift for the next round: exact at an accepted draft point, else the value at the rejected draft point
            new_drift = evals[torch.arange(A, device=dev), steps]
            k[active] = ka + steps
            y[active] = new_point
            drift[active] = new_drift
            known[active] = complete
            if drafting.numel() > 0:
                accepted = torch.where(complete, steps, steps - 1)[drafting]
                block[active[drafting]] = self.lookahead.update(block[active[drafting]], accepted, lengths[drafting])
        return drift, {"iterations": iterations}


class ASD(SpeculativeDiffusion):
    """Token-level acceptance, reflection on rejection."""

    name = "asd"

    def log_acceptance(self, point, a, b, h):
        """log of the acceptance ratio N(point; a, h) / N(point; b, h)."""
        return gaussian_log_ratio(point, a, b, h)

    def residual(self, point, a, b, h, rng):
        """Sample of the residual (N(a, h) - N(b, h))_+ from the rejected draft point: its reflection."""
        return reflect(point, a, b)

    def verify(self, draft, a, b, h, lengths, rng):
        A, L = h.shape
        valid = torch.arange(L, device=h.device).unsqueeze(0) < lengths.unsqueeze(1)
        safe_h = torch.where(valid, h, torch.ones_like(h))
        log_ratio = torch.where(valid, self.log_acceptance(draft[:, 1:], a, b, safe_h), torch.zeros_like(h))
        accept = rng.bernoulli(torch.exp(log_ratio.clamp(max=0.0))) | ~valid
        # number of leading accepted steps
        leading = torch.cumprod(accept.to(torch.long), dim=1).sum(1)
        complete = leading >= lengths
        j = leading.clamp(max=L - 1)  # the rejected step (when not complete)
        idx = torch.arange(A, device=h.device)
        reflected = self.residual(draft[idx, j + 1], a[idx, j], b[idx, j], h[idx, j], rng)
        point = torch.where(complete.unsqueeze(1), draft[idx, lengths], reflected)
        steps = torch.where(complete, lengths, leading + 1)
        return steps, point, complete
