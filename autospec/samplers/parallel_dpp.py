"""Exact parallel sampling of symmetric DPPs by batched rejection (in the manner of arXiv 2203.11190).

Works on any q = 2 target whose oracle gives inclusion conditionals of a
k-homogeneous DPP (a projection DPP: the marginals sum to k - |S| given the
included set S).  With r = k - |S| > 0 and p_i = P(i in Y | S) (they sum to r):

* batch length l = ceil(sqrt(r)) (or a fixed ``batch``), at most r;
* draw t_1 ~ p / r, and M = ``trials`` parallel trials, each t_2..t_l drawn
  i.i.d. from p / r;
* one round asks the conditionals at S + {t_1} and at every prefix
  S + {t_1..t_j} (j = 2..l) of every trial;
* trial m is accepted with probability
      a_m = prod_(j >= 2) P(t_j in Y | S + t_<j) / p_(t_j)  (= det(K_T|S) / prod_j (K_|S)_tt <= 1)
  (every factor <= 1 because conditioning on an inclusion lowers the other
  marginals; 0 on repeats and on impossible prefixes);
* t_1 is always added to S; the first accepted trial's t_2..t_l too.

Why exact: t_1 is a uniformly random element of Y ~ DPP | S.  Given t_1 an
accepted trial has probability proportional to prod_(j>=2) p_(t_j)/r * a_m
= P(t_2..t_l in Y | S + t_1) / r^(l-1): a uniformly random ordered subset of
Y given S + t_1, and whether any trial is accepted depends on S and t_1
only.  Each stage adds a random subset of Y chosen independently of
everything but the past, so Y's conditional law is kept.

This differs from the textbook scheme (arXiv 2203.11190: whole batches i.i.d.,
retry until one is accepted) in one respect: the trials share their first
item, which is kept even when every trial fails.  Its acceptance factor is 1
in the textbook rule anyway; sharing it makes every round add at least one
item, makes the choice tree finite (so ``exact_law`` enumerates it), and lets
the query at S + {t_1} serve as the next round's marginals whatever happens.
One round per iteration, plus one first round for p at S = {}; each round
makes 1 + M (l - 1) queries.

``components = c``: the first c coordinates are independent mixture labels
(``SpectralDPPTarget``: an L-ensemble's eigenvectors); they are drawn first from
their marginals (one round), and the items are then a projection DPP given them.

Trials trade queries for rounds: M trials cost 1 + M (l - 1) queries per round
and raise the chance that a round adds a whole batch of l items rather than one.
"""

from __future__ import annotations

import math

import torch

from autospec.oracles import CountingOracle
from autospec.randomness import RandomSource
from autospec.samplers.base import Sampler
from autospec.samplers.rowwise import rows_of

__all__ = ["ParallelDPP", "batch_length"]

_SUM_TOL = 1e-6


def batch_length(remaining: int, batch: int | None = None) -> int:
    """l = ceil(sqrt(r)) (or the fixed ``batch``), never more than r."""
    return min(remaining, batch if batch is not None else math.ceil(math.sqrt(remaining)))


class ParallelDPP(Sampler):
    """Batched rejection sampling of a k-homogeneous DPP from its inclusion-conditional oracle."""

    def __init__(self, trials: int = 4, batch: int | None = None, components: int = 0, device: str | torch.device = "cpu"):
        super().__init__(device)
        for name, value, low in (("trials", trials, 1), ("components", components, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or batch < 1):
            raise ValueError(f"batch must be None (ceil(sqrt(r))) or a positive int, got {batch!r}")
        self.trials, self.batch, self.components = trials, batch, components
        self.name = f"ParallelDPP(trials={trials}" + (f", batch={batch}" if batch else "") + ")"

    def run(self, oracle: CountingOracle, num_samples: int, rng: RandomSource) -> torch.Tensor:
        if oracle.q != 2:
            raise ValueError(f"ParallelDPP samples sets: the oracle must have q = 2 (x_i = 1: i in Y), got q = {oracle.q}")
        if self.components >= oracle.n:
            raise ValueError(f"components = {self.components} leaves no items among n = {oracle.n} coordinates")
        x = torch.full((num_samples, oracle.n), -1, dtype=torch.long, device=self.device)
        everyone = torch.arange(num_samples, device=self.device)
        c = self.components
        if c:  # independent mixture labels: one round, drawn together
            labels = oracle.marginals(x, sample_ids=everyone)[:, :c, 1]
            x[:, :c] = rng.bernoulli(labels).to(self.device, torch.long)
        p = oracle.marginals(x, sample_ids=everyone)[:, :, 1]  # [N, n]
        for s in range(num_samples):  # samples need different numbers of rounds: one at a time
            x[s] = self._complete(oracle, x[s], p[s], s, rows_of(rng, s))
        x[:, c:] = x[:, c:].clamp(min=0)  # items never included are out
        return x

    def _remaining(self, x: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, int]:
        free = x < 0
        free[: self.components] = False
        total = float(p[free].sum())
        r = round(total)
        if abs(total - r) > _SUM_TOL:
            raise ValueError(f"the inclusion marginals given the chosen items sum to {total:.9g}, not an integer: "
                             "ParallelDPP needs a k-homogeneous (projection) DPP")
        return torch.where(free, p, torch.zeros_like(p)), r

    def _complete(self, oracle, x: torch.Tensor, p: torch.Tensor, sample_id: int, rng: RandomSource) -> torch.Tensor:
        p, r = self._remaining(x, p)
        while r > 0:
            size, M = batch_length(r, self.batch), self.trials
            first = int(rng.categorical((p / r).unsqueeze(0))[0])  # t_1, shared: always added
            tokens = rng.categorical((p / r).expand(1, M, size - 1, -1))[0].to(self.device) if size > 1 else None  # [M, size-1]
            base = x.clone()
            base[first] = 1
            grid = base.repeat(M, max(size - 1, 0), 1)  # [M, size-1, n]: row j is S + t_1 + t_2..t_(j+2)
            for m in range(M):
                for j in range(size - 1):
                    grid[m, j:, tokens[m, j]] = 1
            prefixes = torch.cat([base.unsqueeze(0), grid.reshape(-1, base.shape[0])])
            ids = torch.full((prefixes.shape[0],), sample_id, dtype=torch.long, device=self.device)
            answers = oracle.marginals(prefixes, sample_ids=ids)[:, :, 1]  # [1 + M (size-1), n]
            x, p_next = base, answers[0]
            if size > 1:
                chain = torch.cat([answers[0].expand(M, 1, -1), answers[1:].view(M, size - 1, -1)], 1)  # at S + t_<=j
                accept = self.acceptance(p, torch.cat([torch.full((M, 1), first), tokens], 1), chain)
                accepted = rng.bernoulli(accept.unsqueeze(0))[0].to(self.device)
                if bool(accepted.any()):
                    m = int(accepted.to(torch.long).argmax())
                    x, p_next = grid[m, size - 2].clone(), answers[1 + m * (size - 1) + size - 2]
            p, r = self._remaining(x, p_next)
        return x

    @staticmethod
    def acceptance(p: torch.Tensor, tokens: torch.Tensor, conditionals: torch.Tensor) -> torch.Tensor:
        """prod_j P(t_j | S + t_<j) / p_(t_j): p [n], tokens [M, size], conditionals [M, size, n] at S + t_<=j -> [M].

        Each factor is <= 1: conditioning a DPP on an inclusion lowers every other marginal (a Schur
        complement); repeats and impossible prefixes give 0."""
        M, size = tokens.shape
        first = p[tokens[:, 0]]
        later = conditionals[:, :-1].gather(2, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)  # P(t_j | S + t_<j), j >= 2
        repeated = (tokens.unsqueeze(2) == tokens.unsqueeze(1)).tril(-1).any(2)[:, 1:]  # t_j among t_<j
        later = torch.where(repeated, torch.zeros_like(later), later)
        ratio = torch.cat([first.unsqueeze(1), later], 1) / p[tokens]
        return ratio.prod(1).clamp(0.0, 1.0)
