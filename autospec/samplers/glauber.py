"""Heat-bath Glauber dynamics for T steps, and an exact parallel simulation of the same T-step chain.

Glauber(steps=T, start=x0): for t = 1..T pick a site i_t uniformly at random and
redraw x_{i_t} from mu(x_{i_t} | x_{-i}): one oracle round per step (the query
is the current state with site i_t freed).  The output is the state after T
steps: a Markov chain, exact only as T grows; its law after T steps is what
``verification.markov`` computes.

ParallelGlauber(steps=T, start=x0, lookahead=L) returns a draw from the *same*
T-step law in fewer rounds, by token-level speculation over the sequence of
updates (sites are drawn up front; they do not depend on the state):

* the draft of the next L updates draws y_j from D_j, the conditional of site
  i_{t+j} at a state known before the round (the state before the last update,
  see below): one draft value per future update, all at once;
* one round asks, for every prefix z_j (the state after the first j drafted
  updates, j = 0..L), the conditionals of the sites i_{t+j+1}..i_{t+j+L+1};
  P_{j+1} = the conditional of site i_{t+j+1} at z_j is the true law of the
  (j+1)-th update given the drafted ones;
* accept y_1, y_2, ... with probability min(1, P_j(y_j) / D_j(y_j)); at the
  first rejection draw that update from (P_j - D_j)+ normalised and stop; if all
  L pass, the (L+1)-th update is drawn from P_{L+1} for free;
* the next draft uses the conditionals at the accepted prefix z_tau, which the
  same round already returned (drafting from a state that misses the last
  update is still exact: the draft only has to be a law fixed by the past).

The updates y_1..y_T form a sequence whose j-th element has conditional law
P_j given the earlier ones; token verification samples every such sequence
exactly, so the final state (a function of the sites and the updates) has the
sequential chain's T-step law.  Rounds: 1 + the number of blocks, about
T / (accepted updates per block + 1); queries per round (L + 1)^2.
"""

from __future__ import annotations

import torch

from autospec.oracles import CountingOracle
from autospec.randomness import RandomSource
from autospec.samplers.base import Sampler
from autospec.samplers.rowwise import rows_of
from autospec.samplers.speculation import residual_law
from autospec.samplers.token_speculative import first_rejection_weights

__all__ = ["Glauber", "ParallelGlauber", "check_start", "check_steps"]


def check_steps(steps: object, name: str = "steps") -> int:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"{name} must be a non-negative int, got {steps!r}")
    return steps


def check_start(start: object, num_samples: int, n: int, q: int, device) -> torch.Tensor:
    """start: [n] (every sample starts there) or [num_samples, n], values in [0, q) -> LongTensor [N, n]."""
    if not isinstance(start, torch.Tensor):
        try:
            start = torch.as_tensor(start)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"start must be an integer tensor [n] or [num_samples, n], got {type(start).__name__}") from None
    if start.dtype.is_floating_point or start.dtype == torch.bool or start.is_complex():
        raise TypeError(f"start must be an integer tensor, got dtype {start.dtype}")
    if start.dim() == 1:
        start = start.unsqueeze(0).expand(num_samples, -1)
    if start.dim() != 2 or start.shape[1] != n or start.shape[0] != num_samples:
        raise ValueError(f"start must have shape [{n}] or [{num_samples}, {n}], got {list(start.shape)}")
    if start.numel() and bool(((start < 0) | (start >= q)).any()):
        raise ValueError(f"start values must lie in [0, {q - 1}] (a full assignment), got [{int(start.min())}, {int(start.max())}]")
    return start.to(device=device, dtype=torch.long).clone()


def freed(states: torch.Tensor, sites: torch.Tensor) -> torch.Tensor:
    """states [B, n], sites [B] -> the states with each row's site set to -1 (free)."""
    out = states.clone()
    out[torch.arange(states.shape[0], device=states.device), sites] = -1
    return out


class Glauber(Sampler):
    """T steps of random-scan heat-bath Glauber dynamics from ``start`` (one round per step)."""

    exact = False  # exact only in the limit T -> infinity; its T-step law is computed by verification.markov

    def __init__(self, steps: int, start, scan: str = "random", device: str | torch.device = "cpu"):
        super().__init__(device)
        self.steps = check_steps(steps)
        self.start = start
        if scan not in ("random", "systematic"):
            raise ValueError(f"scan must be 'random' or 'systematic', got {scan!r}")
        self.scan = scan
        self.name = f"Glauber(steps={steps})" if scan == "random" else f"Glauber(steps={steps}, scan='systematic')"

    def sites(self, num_samples: int, n: int, rng: RandomSource) -> torch.Tensor:
        """[N, T] the site updated at each step."""
        if self.scan == "systematic":
            return (torch.arange(self.steps, device=self.device) % n).expand(num_samples, -1)
        uniform = torch.full((num_samples, self.steps, n), 1.0 / n, dtype=torch.float64, device=self.device)
        return rng.categorical(uniform).to(self.device) if self.steps else uniform.new_zeros((num_samples, 0)).long()

    def run(self, oracle: CountingOracle, num_samples: int, rng: RandomSource) -> torch.Tensor:
        x = check_start(self.start, num_samples, oracle.n, oracle.q, self.device)
        everyone = torch.arange(num_samples, device=self.device)
        sites = self.sites(num_samples, oracle.n, rng)
        for t in range(self.steps):
            site = sites[:, t]
            law = oracle.marginals(freed(x, site), sample_ids=everyone)[everyone, site]  # [N, q]
            x[everyone, site] = rng.categorical(law).to(self.device)
        return x


class ParallelGlauber(Glauber):
    """The T-step Glauber chain simulated exactly by speculating L updates per round (see the module)."""

    def __init__(self, steps: int, start, lookahead: int = 4, scan: str = "random", device: str | torch.device = "cpu"):
        super().__init__(steps, start, scan, device)
        if not isinstance(lookahead, int) or isinstance(lookahead, bool) or lookahead < 1:
            raise ValueError(f"lookahead must be a positive int, got {lookahead!r}")
        self.lookahead = lookahead
        self.name = f"ParallelGlauber(steps={steps}, lookahead={lookahead})" + ("" if scan == "random" else ", systematic")

    def run(self, oracle: CountingOracle, num_samples: int, rng: RandomSource) -> torch.Tensor:
        x = check_start(self.start, num_samples, oracle.n, oracle.q, self.device)
        sites = self.sites(num_samples, oracle.n, rng)  # [N, T]
        for i in range(num_samples):  # samples advance by different amounts per round: one at a time
            x[i] = self._simulate(oracle, x[i], sites[i], i, rows_of(rng, i))
        return x

    def residual(self, target: torch.Tensor, draft: torch.Tensor) -> torch.Tensor:
        """Law [q] of a rejected update: (P - D)+ (unnormalised)."""
        return residual_law(target.unsqueeze(0), draft.unsqueeze(0))[0]

    def _window(self, sites: torch.Tensor, t: int, width: int) -> torch.Tensor:
        """Sites of updates t+1..t+width (0-based: sites[t..t+width-1]), padded with site 0 past T."""
        window = sites[t : t + width]
        return torch.cat([window, window.new_zeros(width - window.shape[0])])

    def _conditionals(self, oracle, states, sites, sample_id: int) -> torch.Tensor:
        """states [P, n], sites [P, W] -> [P, W, q]: the conditional of each site at each state, in one round."""
        P, W = sites.shape
        rows = freed(states.repeat_interleave(W, 0), sites.reshape(-1))
        ids = torch.full((P * W,), sample_id, dtype=torch.long, device=self.device)
        answer = oracle.marginals(rows, sample_ids=ids).reshape(P, W, oracle.n, oracle.q)
        return answer[torch.arange(P).unsqueeze(1), torch.arange(W).unsqueeze(0), sites]

    def _simulate(self, oracle, x: torch.Tensor, sites: torch.Tensor, sample_id: int, rng) -> torch.Tensor:
        T, L = self.steps, self.lookahead
        if T == 0:
            return x
        t = 0  # updates done
        draft = self._conditionals(oracle, x.unsqueeze(0), self._window(sites, 0, L).unsqueeze(0), sample_id)[0]  # [L, q]
        while t < T:
            k = min(L, T - t - 1)  # drafted updates this round; the (k+1)-th comes from the target
            tokens = rng.categorical(draft[:k].unsqueeze(0))[0].to(self.device) if k else torch.zeros(0, dtype=torch.long)
            prefixes = x.unsqueeze(0).repeat(k + 1, 1)  # z_0..z_k
            for j in range(k):
                prefixes[j + 1:, sites[t + j]] = tokens[j]
            windows = torch.stack([self._window(sites, t + j, L + 1) for j in range(k + 1)])  # [k+1, L+1]
            conditionals = self._conditionals(oracle, prefixes, windows, sample_id)  # [k+1, L+1, q]
            target = conditionals[:, 0]  # P_{j+1} = law of update t+j+1 at z_j, [k+1, q]
            if k:
                ratio = target[:k].gather(1, tokens.view(-1, 1)).squeeze(1) / draft[:k].gather(1, tokens.view(-1, 1)).squeeze(1)
                accept = ratio.clamp(max=1.0).unsqueeze(0)
                tau = int(rng.categorical(first_rejection_weights(accept, torch.tensor([k])))[0])
            else:
                tau = 0
            law = self.residual(target[tau], draft[tau]) if tau < k else target[tau]
            value = int(rng.categorical(law.unsqueeze(0))[0])
            x = prefixes[tau].clone()
            x[sites[t + tau]] = value
            t += tau + 1
            # next draft: conditionals at z_tau of the sites after update t (the new update not yet applied)
            draft = conditionals[tau, 1:]  # sites of updates t+1..t+L  [L, q]
        return x
