"""Domain sparsification for measures on k-sets (strongly Rayleigh: DPPs), as a Markov chain (arXiv 2204.02570).

State: a k-set S (x in {0, 1}^n with k ones).  With overestimates
p~_i = min(1, slack * P(i in Y)) >= P(i in Y) of the marginals (slack >= 1):

* up:   T = S plus t - k i.i.d. draws from p~ / sum(p~): a multiset with
        multiplicities m_T(i);
* down: S' among the k-subsets of T's distinct items, with probability
        proportional to mu(S') prod_(i in S') m_T(i) / p~_i (an exact inner
        sampler: every candidate's weight is computed and one is drawn).

Why mu-reversible: the up step gives the pair (S, T) the weight
mu(S) prod_(i in S) m_T(i) / p~_i times a function of T alone (the
multinomial law of the t - k draws, written over T), so the down step is the
exact conditional of S given T: up-then-down is a two-block Gibbs sweep on
(S, T).  The overestimates only matter for speed (how small t can be).

mu(S') comes from the conditional oracle by the chain rule over the n
coordinates (n prefix queries per candidate, all in one round): one round for
the marginals, then one round per step.
"""

from __future__ import annotations

import itertools

import torch

from autospec.oracles import CountingOracle
from autospec.randomness import RandomSource
from autospec.samplers.base import Sampler
from autospec.samplers.glauber import check_start, check_steps
from autospec.samplers.rowwise import rows_of

__all__ = ["DomainSparsification", "chain_rule_probability"]


def chain_rule_probability(oracle, candidates: torch.Tensor, sample_id: int) -> torch.Tensor:
    """mu(x) for full assignments candidates [C, n], by prod_i P(x_i | x_<i): one round of C n queries -> [C]."""
    C, n = candidates.shape
    prefixes = candidates.unsqueeze(1).repeat(1, n, 1)  # [C, n, n]: row i pins x_<i
    prefixes[:, torch.triu(torch.ones(n, n, dtype=torch.bool))] = -1
    ids = torch.full((C * n,), sample_id, dtype=torch.long)
    laws = oracle.marginals(prefixes.reshape(C * n, n), sample_ids=ids).reshape(C, n, n, -1)
    index = torch.arange(n)
    steps = laws[:, index, index].gather(2, candidates.unsqueeze(-1)).squeeze(-1)  # [C, n]: P(x_i | x_<i)
    return steps.prod(1)


class DomainSparsification(Sampler):
    """T steps of the up/down chain on k-sets from ``start`` (see the module)."""

    exact = False  # a Markov chain: exact in the limit; its T-step law is computed by verification.markov

    def __init__(self, steps: int, start, sparse_size: int, slack: float = 1.0, multiplicities: bool = True,
                 device: str | torch.device = "cpu"):
        super().__init__(device)
        self.steps = check_steps(steps)
        self.start = start
        if not isinstance(sparse_size, int) or isinstance(sparse_size, bool) or sparse_size < 1:
            raise ValueError(f"sparse_size (t) must be a positive int, got {sparse_size!r}")
        if not isinstance(slack, (int, float)) or isinstance(slack, bool) or not slack >= 1.0:
            raise ValueError(f"slack must be a number >= 1 (p~ = min(1, slack * marginal) overestimates), got {slack!r}")
        self.sparse_size, self.slack = sparse_size, float(slack)
        self.multiplicities = multiplicities  # False only in a mutant: the down step then ignores m_T
        self.name = f"DomainSparsification(steps={steps}, t={sparse_size}, slack={slack:g})"

    def overestimates(self, marginals: torch.Tensor) -> torch.Tensor:
        """p~ [n] from P(i in Y) [n]."""
        return (self.slack * marginals).clamp(max=1.0)

    def up_law(self, p_tilde: torch.Tensor) -> torch.Tensor:
        """The law [n] of each of the t - k added items: p~ / sum(p~)."""
        return p_tilde / p_tilde.sum()

    def run(self, oracle: CountingOracle, num_samples: int, rng: RandomSource) -> torch.Tensor:
        if oracle.q != 2:
            raise ValueError(f"DomainSparsification samples sets: the oracle must have q = 2, got q = {oracle.q}")
        x = check_start(self.start, num_samples, oracle.n, 2, self.device)
        k = int(x[0].sum()) if num_samples else 0
        if num_samples and bool((x.sum(1) != k).any()):
            raise ValueError("every start state must have the same number k of ones")
        if num_samples and self.sparse_size < k:
            raise ValueError(f"sparse_size t = {self.sparse_size} must be at least k = {k} (|S| = k)")
        free = torch.full_like(x, -1)
        marginals = oracle.marginals(free, sample_ids=torch.arange(num_samples))[:, :, 1]  # [N, n]
        for s in range(num_samples):
            source = rows_of(rng, s)
            p_tilde = self.overestimates(marginals[s])
            for _ in range(self.steps):
                x[s] = self.step(oracle, x[s], p_tilde, k, s, source)
        return x

    def step(self, oracle, x: torch.Tensor, p_tilde: torch.Tensor, k: int, sample_id: int, rng) -> torch.Tensor:
        n = x.shape[0]
        draws = self.sparse_size - k
        counts = x.clone().to(torch.float64)  # m_T: S itself, then the draws
        if draws:
            added = rng.categorical(self.up_law(p_tilde).expand(1, draws, n))[0]
            counts += torch.bincount(added, minlength=n).to(torch.float64)
        support = torch.nonzero(counts > 0).squeeze(-1).tolist()
        subsets = list(itertools.combinations(support, k))
        candidates = torch.zeros(len(subsets), n, dtype=torch.long)
        for row, subset in enumerate(subsets):
            candidates[row, list(subset)] = 1
        mu = chain_rule_probability(oracle, candidates, sample_id)
        ratio = (counts if self.multiplicities else torch.ones_like(counts)) / p_tilde.clamp(min=1e-300)
        weights = mu * torch.where(candidates.bool(), ratio, torch.ones_like(ratio)).prod(1)
        return candidates[int(rng.categorical(weights.unsqueeze(0))[0])].clone()
