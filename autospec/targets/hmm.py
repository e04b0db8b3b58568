"""Hidden Markov models on [q]^n: the sampled coordinates are the observations.

A hidden chain z_0 ~ initial [s], z_{i+1} | z_i ~ transition[z_i] ([s, s]) emits
x_i | z_i ~ emission[z_i] ([s, q]); the target is the law of x = (x_0..x_{n-1}).

Exact conditionals at any pinning by forward-backward with evidence.  Write
e_i(z) = emission[z, x_i] when x_i is pinned and 1 when it is free, and
M_i = diag(e_i) T.  Then, with P(pinned observations) up to a constant,

    alpha_i = initial^T M_0 M_1 ... M_{i-1}                 (evidence before i)
    beta_i  = T diag(e_{i+1}) T diag(e_{i+2}) ... T diag(e_{n-1}) 1   (evidence after i)
    P(x_i = x | pins) ∝ sum_z alpha_i(z) beta_i(z) emission[z, x].

The prefix and suffix products are computed for all i at once by a
Hillis-Steele scan (log2 n batched [B, n, s, s] matrix products), each
partial product rescaled by its largest entry: alpha_i and beta_i only matter
up to a positive factor per i, and the rescaling keeps them in range at
n = 4096.  A pinning is feasible iff its probability
sum_z alpha_0(z) e_0(z) beta_0(z) is positive; infeasible rows get the
placeholder.

(z_i, x_i) is itself a Markov chain on s * q states, which gives the exact laws
of the number of ones and of the domain walls of x by dynamic programming.
"""

from __future__ import annotations

import numpy as np
import torch

from autospec.oracles import ConditionalOracle, OracleAnswer, placeholder_marginals
from autospec.targets.statistics import ExactStatistic
from autospec.targets.structured import StructuredTarget, chain_statistics, check_n_q

__all__ = ["HMMTarget", "HMMOracle"]


def _law(x, shape, what):
    x = torch.as_tensor(np.asarray(x, dtype=np.float64))
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{what} must have shape {list(shape)}, got {list(x.shape)}")
    if not bool(torch.isfinite(x).all()) or bool((x < 0).any()):
        raise ValueError(f"{what} must be finite and non-negative")
    sums = x.sum(-1)
    if bool(((sums - 1).abs() > 1e-9).any()):
        raise ValueError(f"{what} rows must sum to 1 within 1e-9, got sums {sums.reshape(-1).tolist()}")
    return x / sums.unsqueeze(-1)


class HMMTarget(StructuredTarget):
    """Observations of a hidden Markov chain (see the module docstring)."""

    def __init__(self, n: int, transition, emission, initial=None, name: str | None = None):
        T = torch.as_tensor(np.asarray(transition, dtype=np.float64))
        if T.dim() != 2 or T.shape[0] != T.shape[1]:
            raise ValueError(f"transition must be a square [s, s] matrix, got shape {list(T.shape)}")
        s = T.shape[0]
        E = torch.as_tensor(np.asarray(emission, dtype=np.float64))
        if E.dim() != 2 or E.shape[0] != s:
            raise ValueError(f"emission must be [s, q] with s = {s} hidden states, got shape {list(E.shape)}")
        q = E.shape[1]
        check_n_q(n, q, "HMMTarget")
        self.n, self.q, self.s = n, q, s
        self.transition = _law(T, (s, s), "transition")
        self.emission = _law(E, (s, q), "emission")
        self.initial = _law(np.full(s, 1.0 / s) if initial is None else initial, (s,), "initial")
        self.name = name or f"hmm(n={n}, s={s}, q={q})"
        hidden = [self.initial]
        for _ in range(n - 1):
            hidden.append(hidden[-1] @ self.transition)
        self.hidden_marginals = torch.stack(hidden)  # [n, s]
        self.marginals = self.hidden_marginals @ self.emission  # [n, q]: law of x_i

    @classmethod
    def random(cls, n: int, s: int = 2, q: int = 2, seed: int = 0, concentration: float = 1.0, zero_fraction: float = 0.0,
               name=None):
        """Dirichlet rows; ``zero_fraction`` of transitions and emissions forbidden (each row keeps one): impossible pinnings."""
        g = np.random.default_rng(seed)
        T = g.dirichlet(np.full(s, concentration), size=s)
        E = g.dirichlet(np.full(q, concentration), size=s)
        for M in (T, E):  # forbid a fraction of transitions and emissions, keeping one entry per row
            zeros = g.random(M.shape) < zero_fraction
            zeros[np.arange(M.shape[0]), g.integers(M.shape[1], size=M.shape[0])] = False
            M[zeros] = 0.0
            M /= M.sum(-1, keepdims=True)
        return cls(n, T, E, g.dirichlet(np.ones(s)), name=name or f"hmm-random(n={n}, s={s}, q={q}, seed={seed})")

    @classmethod
    def sticky(cls, n: int, stay: float = 0.95, noise: float = 0.1, name=None):
        """Two hidden regimes that persist (stay), each emitting its own bit except with probability ``noise``."""
        T = np.array([[stay, 1 - stay], [1 - stay, stay]])
        E = np.array([[1 - noise, noise], [noise, 1 - noise]])
        return cls(n, T, E, None, name=name or f"hmm-sticky(n={n}, stay={stay:g}, noise={noise:g})")

    def oracle(self, device="cpu") -> "HMMOracle":
        return HMMOracle(self, device)

    def probability(self, values: torch.Tensor) -> torch.Tensor:
        """Forward algorithm, exact in float64: values [N, n] -> [N]."""
        values = values.to(torch.long).cpu()
        alpha = self.initial * self.emission[:, values[:, 0]].T  # [N, s]
        for i in range(1, self.n):
            alpha = (alpha @ self.transition) * self.emission[:, values[:, i]].T
        return alpha.sum(-1)

    # ---- exact laws of statistics (through the joint chain on (z, x)) -----------------
    def _joint_chain(self):
        """initial [s*q] and transition [s*q, s*q] of the Markov chain (z_i, x_i); state z * q + x."""
        s, q = self.s, self.q
        init = (self.initial.unsqueeze(1) * self.emission).reshape(s * q)
        step = self.transition.unsqueeze(1).unsqueeze(3) * self.emission.unsqueeze(0).unsqueeze(1)  # [z, x, z', x']
        return init, step.expand(s, q, s, q).reshape(s * q, s * q)

    def ones_law(self, value: int = 1) -> torch.Tensor:
        """Exact law [n+1] of #{i : x_i = value}."""
        init, P = self._joint_chain()
        hit = (torch.arange(self.s * self.q) % self.q) == value
        f = torch.zeros((self.s * self.q, self.n + 1), dtype=torch.float64)
        f[:, 0] = init
        f[hit] = torch.roll(f[hit], 1, dims=1)
        for _ in range(self.n - 1):
            g = P.T @ f
            g[hit] = torch.cat([g.new_zeros(int(hit.sum()), 1), g[hit, :-1]], dim=1)
            f = g
        return f.sum(0)

    def domain_wall_law(self) -> torch.Tensor:
        """Exact law [n] of #{i : x_i != x_{i+1}}."""
        init, P = self._joint_chain()
        x = torch.arange(self.s * self.q) % self.q
        change = x.unsqueeze(1) != x.unsqueeze(0)
        same_P, change_P = torch.where(change, 0.0, P), torch.where(change, P, 0.0)
        f = torch.zeros((self.s * self.q, self.n), dtype=torch.float64)
        f[:, 0] = init
        for _ in range(self.n - 1):
            moved = change_P.T @ f
            f = same_P.T @ f + torch.cat([moved.new_zeros(moved.shape[0], 1), moved[:, :-1]], dim=1)
        return f.sum(0)

    def pair_marginal(self, i: int, j: int) -> torch.Tensor:
        """Exact law [q, q] of (x_i, x_j), i < j."""
        Td = torch.linalg.matrix_power(self.transition, j - i)
        return (self.hidden_marginals[i].unsqueeze(1) * self.emission).T @ Td @ self.emission

    def exact_statistics(self) -> list[ExactStatistic]:
        return chain_statistics(self, pair_gap=5)


def _rescaled(m: torch.Tensor) -> torch.Tensor:
    """m [..., s, s] divided by its largest entry (all-zero matrices stay zero)."""
    top = m.amax(dim=(-2, -1), keepdim=True)
    return m / torch.where(top > 0, top, torch.ones_like(top))


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched product of small [..., s, s] matrices by broadcasting (much faster than bmm for s of 2 to 4)."""
    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2)


def _prefix_products(m: torch.Tensor) -> torch.Tensor:
    """Inclusive prefix products along dim 1, each rescaled: out[:, i] ∝ m[:, 0] @ ... @ m[:, i]."""
    out = _rescaled(m)
    d, n = 1, m.shape[1]
    while d < n:
        out = torch.cat([out[:, :d], _rescaled(_matmul(out[:, :-d], out[:, d:]))], dim=1)
        d *= 2
    return out


def _suffix_products(m: torch.Tensor) -> torch.Tensor:
    """Inclusive suffix products along dim 1, each rescaled: out[:, i] ∝ m[:, i] @ ... @ m[:, n-1]."""
    out = _rescaled(m)
    d, n = 1, m.shape[1]
    while d < n:
        out = torch.cat([_rescaled(_matmul(out[:, :-d], out[:, d:])), out[:, n - d:]], dim=1)
        d *= 2
    return out


class HMMOracle(ConditionalOracle):
    """Batched exact conditionals of an ``HMMTarget`` (forward-backward by scans; see the module docstring)."""

    def __init__(self, target: HMMTarget, device="cpu"):
        self.target = target
        self.n, self.q, self.name = target.n, target.q, target.name
        self.device = torch.device(device)
        self.transition = target.transition.to(self.device)  # [s, s]
        self.emission = target.emission.to(self.device)  # [s, q]
        self.initial = target.initial.to(self.device)  # [s]

    def answer(self, partial: torch.Tensor) -> OracleAnswer:
        partial = partial.to(self.device)
        B, n = partial.shape
        s = self.target.s
        pinned = partial >= 0
        # evidence e [B, n, s]: emission[z, x_i] at pins, 1 elsewhere
        e = torch.where(pinned.unsqueeze(-1), self.emission.T[partial.clamp(min=0)], torch.ones((), dtype=torch.float64, device=self.device))
        forward = e.unsqueeze(-1) * self.transition  # M_i = diag(e_i) T   [B, n, s, s]
        backward = self.transition * e.unsqueeze(-2)  # N_i = T diag(e_i)
        ones = torch.ones((B, 1, s), dtype=torch.float64, device=self.device)
        alpha = self.initial.expand(B, 1, s)
        if n > 1:
            prefix = _prefix_products(forward[:, : n - 1])  # [B, n-1, s, s]: M_0..M_{i}
            alpha = torch.cat([alpha, (self.initial.view(1, 1, 1, s) @ prefix).squeeze(-2)], dim=1)  # [B, n, s]
            suffix = _suffix_products(backward[:, 1:])  # [B, n-1, s, s]: N_{i+1}..N_{n-1}
            beta = torch.cat([(suffix @ ones.unsqueeze(-1).expand(B, 1, s, 1)).squeeze(-1), ones], dim=1)  # [B, n, s]
        else:
            beta = ones
        posterior = alpha * beta  # ∝ P(z_i, pins other than x_i)
        numerators = posterior @ self.emission  # [B, n, q]
        evidence = (alpha[:, 0] * e[:, 0] * beta[:, 0]).sum(-1)  # ∝ P(pins), same sign for every i
        feasible = evidence > 0
        totals = numerators.sum(-1, keepdim=True)
        conditional = numerators / torch.where(totals > 0, totals, torch.ones_like(totals))
        good = (~pinned) & feasible.unsqueeze(1) & (totals.squeeze(-1) > 0)
        return OracleAnswer(torch.where(good.unsqueeze(-1), conditional, placeholder_marginals(partial, self.q)), feasible)
