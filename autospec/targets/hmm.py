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
placeholder.  That dense ``answer`` costs O(B n log n s^3) a call.

The cheap paths (``answer_at``, the session, ``answer_prefixes``) keep the same products in a segment
tree per row (leaves M_j, inner nodes rescaled products of their children): a law at i costs the log2 n
siblings of i's leaf-to-root path, a pin the log2 n nodes above its leaf, a prefix row (a base row plus
drafted pins) range products of its base row's tree between its drafted columns.  They answer exactly
what ``answer`` answers (to rounding; tests/test_hmm_oracle_speed.py).

(z_i, x_i) is itself a Markov chain on s * q states, which gives the exact laws
of the number of ones and of the domain walls of x by dynamic programming.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from autospec.oracles import ConditionalOracle, OracleAnswer, OracleSession, PrefixRows, placeholder_marginals
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


def _scan(m: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """Inclusive prefix (suffix if reverse) products along dim 1, rescaled, as ``_prefix_products`` but with
    torch's batched matmul (faster than broadcasting for the [rows, K] stacks the prefix answers scan)."""
    out = _rescaled(m)
    d, n = 1, m.shape[1]
    while d < n:
        if reverse:
            out = torch.cat([_rescaled(out[:, :-d] @ out[:, d:]), out[:, n - d:]], dim=1)
        else:
            out = torch.cat([out[:, :d], _rescaled(out[:, :-d] @ out[:, d:])], dim=1)
        d *= 2
    return out


class HMMOracle(ConditionalOracle):
    """Batched exact conditionals of an ``HMMTarget`` (forward-backward by scans; see the module docstring)."""

    prefixes_from_session = True  # answer_prefixes gathers the base's trees from an HMMSession

    def __init__(self, target: HMMTarget, device="cpu"):
        self.target = target
        self.n, self.q, self.name = target.n, target.q, target.name
        self.device = torch.device(device)
        self.transition = target.transition.to(self.device)  # [s, s]
        self.emission = target.emission.to(self.device)  # [s, q]
        self.initial = target.initial.to(self.device)  # [s]
        # the q + 1 possible leaves [q + 1, s, s]: T (a free coordinate), then diag(emission[:, v]) T for v = 0..q-1
        self.leaf_table = torch.cat([self.transition.unsqueeze(0), self.emission.T.unsqueeze(-1) * self.transition])

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

    # ---- answers at asked positions: a segment tree of the per-position matrices ------------------------
    # Leaf j of a row's tree holds M_j = diag(e_j) T (T itself at a free coordinate; the identity on the
    # padding leaves n..size-1), an inner node the product of its two children, rescaled by its largest
    # entry.  The law at i needs alpha_i = initial^T M_0 .. M_{i-1} and beta_i = T M_{i+1} .. M_{n-1} 1
    # (T 1 = 1 turns the module docstring's suffix into this one): the siblings of the nodes on the path
    # from leaf i to the root are exactly the blocks of those two products, left siblings (top first) for
    # the prefix and right siblings (bottom first) for the suffix, so a law costs log2 n small products.
    # A pin changes the log2 n nodes on its leaf's path.  P(pins) = initial^T root 1, and at a free i it
    # equals sum_z alpha_i(z) beta_i(z) (the law's normaliser): a free coordinate of an infeasible row has
    # all-zero numerators and gets the placeholder, as ``answer`` gives it.

    @property
    def _size(self) -> int:
        return 1 << max(0, (self.n - 1).bit_length())

    def _leaves(self, partial: torch.Tensor) -> torch.Tensor:
        """partial [..., m] -> M_j [..., m, s, s] (T where free): one gather from the q + 1 possible leaves."""
        return self.leaf_table[partial + 1]

    def _build(self, partial: torch.Tensor) -> torch.Tensor:
        """The rows' trees, heap-ordered: [B, 2 * size, s, s] (node 1 the root, leaf j at size + j)."""
        B, n = partial.shape
        s, size = self.target.s, self._size
        tree = torch.empty((B, 2 * size, s, s), dtype=torch.float64, device=self.device)
        tree[:, size:size + n] = self._leaves(partial)
        tree[:, size + n:] = torch.eye(s, dtype=torch.float64, device=self.device)  # padding leaves
        tree[:, 0] = 0.0  # unused (node 1 is the root)
        h = size // 2
        while h >= 1:
            kids = tree[:, 2 * h:4 * h].view(B, h, 2, s, s)
            tree[:, h:2 * h] = _rescaled(kids[:, :, 0] @ kids[:, :, 1])
            h //= 2
        return tree

    def _messages(self, tree: torch.Tensor, row: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """alpha ∝ initial^T M_0..M_{i-1} and w ∝ M_{i+1}..M_{n-1} 1 at positions [B, k] of rows row [B] of tree:
        [B, k, s] each, from the siblings of i's path (one gather, then log2 n vector products)."""
        s, size = self.target.s, self._size
        levels = size.bit_length() - 1
        B, k = positions.shape
        u = torch.stack([self.initial, torch.ones_like(self.initial)]).expand(B, k, 2, s).unsqueeze(-1)
        if levels == 0:
            return u[..., 0, :, 0], u[..., 1, :, 0]
        path = (positions + size).unsqueeze(-1) >> torch.arange(levels, device=self.device)  # [B, k, L], leaf first
        sibling = tree[row.view(B, 1, 1), path ^ 1]  # [B, k, L, s, s]
        right = (path & 1).bool().view(B, k, levels, 1, 1)  # i's node is a right child: its sibling is in the prefix
        eye = torch.eye(s, dtype=torch.float64, device=self.device)
        factors = torch.stack([torch.where(right, sibling.transpose(-1, -2), eye), torch.where(right, eye, sibling)], dim=-3)
        tiny = torch.finfo(torch.float64).tiny
        for level in range(levels - 1, -1, -1):  # top first: alpha^T = A_bottom^T..A_top^T initial, w = R_bottom..R_top 1
            u = factors[:, :, level] @ u
            u = u / u.amax(dim=-2, keepdim=True).clamp(min=tiny)
        return u[..., 0, :, 0], u[..., 1, :, 0]

    def _laws(self, alpha: torch.Tensor, w: torch.Tensor, pins: torch.Tensor) -> torch.Tensor:
        """Laws [B, k, q] from alpha, w [B, k, s]; pinned (pins >= 0) and zero-probability entries: placeholder."""
        numerators = (alpha * (w @ self.transition.T)) @ self.emission
        totals = numerators.sum(-1, keepdim=True)
        conditional = numerators / torch.where(totals > 0, totals, torch.ones_like(totals))
        good = (pins < 0) & (totals.squeeze(-1) > 0)
        return torch.where(good.unsqueeze(-1), conditional, placeholder_marginals(pins, self.q))

    def _feasible(self, roots: torch.Tensor) -> torch.Tensor:
        """roots [B, s, s] ∝ M_0..M_{n-1} -> P(pins) > 0 [B]."""
        return (self.initial @ roots).sum(-1) > 0

    def answer_at(self, partial: torch.Tensor, positions: torch.Tensor) -> OracleAnswer:
        """Laws at positions [B, k]: [B, k, q] from each row's tree (O(B n s^2) to build, no [B, n, q] answer)."""
        partial, positions = partial.to(self.device), positions.to(self.device)
        B = partial.shape[0]
        tree = self._build(partial)
        alpha, w = self._messages(tree, torch.arange(B, device=self.device), positions)
        return OracleAnswer(self._laws(alpha, w, partial.gather(1, positions)), self._feasible(tree[:, 1]))

    def _ranges(self, tree: torch.Tensor, row: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        """Products M_lo..M_{hi-1} of rows row of tree, rescaled (the identity where lo >= hi): row, lo, hi [N]
        -> [N, s, s].  The usual bottom-up walk of a segment tree, vectorised with masks (log2 n steps)."""
        s, size = self.target.s, self._size
        N = row.shape[0]
        eye = torch.eye(s, dtype=torch.float64, device=self.device)
        acc = eye.expand(2, N, s, s)  # [0]: the left blocks in order; [1]: the right ones, transposed
        left, right = lo + size, hi + size
        top = 2 * size - 1
        tiny = torch.finfo(torch.float64).tiny
        for _ in range(size.bit_length()):  # log2(size) + 1 steps close every range
            open_ = left < right
            take = torch.stack([open_ & ((left & 1) == 1), open_ & ((right & 1) == 1)])  # [2, N]
            block = tree[row, torch.stack([left.clamp(max=top), (right - 1).clamp(min=0)])]  # [2, N, s, s]
            block = torch.stack([block[0], block[1].transpose(-1, -2)])
            acc = torch.where(take.view(2, N, 1, 1), acc @ block, acc)
            acc = acc / acc.amax(dim=(-2, -1), keepdim=True).clamp(min=tiny)
            left, right = (left + take[0].long()) >> 1, (right - take[1].long()) >> 1
        return _rescaled(acc[0] @ acc[1].transpose(-1, -2))

    def answer_prefixes(self, rows: PrefixRows, positions: torch.Tensor, chunk: int | None = None) -> OracleAnswer:
        """Prefix rows (``PrefixRows``) at positions [R, k], never writing a [R, n] row out.

        The base rows' trees come from the rows' session (a gather: the speculative samplers' session pins
        each kept value into them, log2 n nodes), else are built once per round ([A, n]).  Rows are taken in chunks of ``chunk`` lengths
        (default about sqrt K): rows whose length lies in [l0, l0 + chunk) get the slots below l0 from
        the trees, which hold them pinned by then, and the (fewer than ``chunk``) slots from l0 on folded
        in between range products of the trees (``_fold``); then those slots are pinned into the trees
        (one leaf-to-root pass).  Work O(A n s^2 + R chunk s^2 log n), about 2 sqrt K passes of log n steps.
        """
        positions = positions.to(self.device)
        base = rows.base.to(self.device)
        owner, length = rows.owner.to(self.device), rows.length.to(self.device)
        columns, values, drafted = rows.columns.to(self.device), rows.values.to(self.device), rows.drafted.to(self.device)
        A, n = base.shape
        K = columns.shape[1]
        R, k = positions.shape
        session = rows.session if isinstance(rows.session, HMMSession) and rows.session.oracle is self else None
        if session is not None:
            def base_trees(of: torch.Tensor) -> torch.Tensor:  # a fresh copy of the base rows' trees
                return session.tree[rows.session_rows.to(self.device)[of]]
        else:
            built = rows.of_base("hmm-trees", self._build)  # the base's trees, kept unpinned for the same round's reread

            def base_trees(of: torch.Tensor) -> torch.Tensor:
                return built[of]
        if R <= A:  # e.g. a reread: a tree per row (at most the base's memory), its drafted pins in one pass
            trees = base_trees(owner)
            active = rows.active()
            self._pin_tree(trees, torch.nonzero(active)[:, 0], columns[owner][active], values[owner][active])
            alpha, w = self._messages(trees, torch.arange(R, device=self.device), positions)
            return OracleAnswer(self._laws(alpha, w, rows.pins_at(positions)), lambda: self._feasible(trees[:, 1]))
        chunk = chunk or max(4, math.isqrt(K))
        # rows grouped by chunk of length (one synchronisation for the group sizes)
        group = length // chunk
        by_group = torch.argsort(group, stable=True)
        sizes = torch.bincount(group, minlength=K // chunk + 1).tolist()
        tree = base_trees(torch.arange(A, device=self.device))  # the drafted slots are pinned into it chunk by chunk below
        alpha = torch.empty((R, k, self.target.s), dtype=torch.float64, device=self.device)
        w, whole = torch.empty_like(alpha), torch.empty((R, self.target.s, self.target.s), dtype=torch.float64, device=self.device)
        done = 0
        for g, size in enumerate(sizes):
            lo, hi = g * chunk, min(K, (g + 1) * chunk)
            if size:
                mine = by_group[done:done + size]
                done += size
                alpha[mine], w[mine], whole[mine] = self._fold(
                    tree, columns[:, lo:hi], values[:, lo:hi], drafted[:, lo:hi], owner[mine], length[mine] - lo, positions[mine])
            if done == R:
                break
            use = drafted[:, lo:hi]
            if bool(use.any()):
                row = torch.arange(A, device=self.device).unsqueeze(1).expand_as(use)[use]
                self._pin_tree(tree, row, columns[:, lo:hi][use], values[:, lo:hi][use])
        return OracleAnswer(self._laws(alpha, w, rows.pins_at(positions)), lambda: self._feasible(whole))

    def _pin_tree(self, tree: torch.Tensor, row: torch.Tensor, positions: torch.Tensor, values: torch.Tensor) -> None:
        """Pin coordinates positions [m] of rows row [m] (distinct pairs) to values [m] in tree, in place: the
        leaves, then their ancestors level by level (two pins of a row meet on up-to-date children)."""
        B, s, size = tree.shape[0], self.target.s, self._size
        node = positions + size
        tree[row, node] = self._leaves(values.unsqueeze(1)).squeeze(1)
        pairs = tree.view(B, size, 2, s, s)  # pairs[b, h] = children 2h, 2h + 1 of node h
        while size > 1:
            node = node >> 1
            kids = pairs[row, node]
            tree[row, node] = _rescaled(kids[:, 0] @ kids[:, 1])
            size //= 2

    def _fold(self, tree, columns, values, drafted, owner, length, positions):
        """alpha, w at positions [R, k] and the whole product [R, s, s] for rows owner [R] of tree with the
        drafted slots m < length [R] of columns / values / drafted [A, K] pinned on top of the tree's pins.

        Per tree row, the drafted columns sorted c_0 < .. < c_{K-1} (undrafted slots: n) cut [0, n) into
        blocks G_m = M_{c_{m-1}+1}..M_{c_m - 1} (range products of the tree).  Row r's leaf at c_m is X_m
        (pinned if its slot is below the row's length, else the tree's leaf, T: drafted columns are free).
        The prefix up to an asked i with a cuts left of it is G_0 X_0 .. G_{a-1} X_{a-1} (a scan over m)
        times the range product from c_{a-1} + 1 to i; the suffix likewise."""
        A, K = columns.shape
        n, s = self.n, self.target.s
        R, k = positions.shape
        cut, slot = torch.where(drafted, columns, torch.full_like(columns, n)).sort(dim=1)  # [A, K]
        bounds = torch.cat([cut.new_full((A, 1), -1), cut, cut.new_full((A, 1), n)], dim=1)  # c_{-1} = -1 .. c_K = n
        cut_r = cut[owner].unsqueeze(1)  # [R, 1, K]
        before = (cut_r < positions.unsqueeze(-1)).sum(-1)  # [R, k]: cuts left of i
        upto = (cut_r <= positions.unsqueeze(-1)).sum(-1)  # cuts at or left of i
        bounds_r = bounds[owner]
        # the blocks G_m of the rows' owners [R, K+1]; the pieces an asked i splits off its block are the blocks
        # next to it where i is a cut (the usual prefix row: it asks its next drafted column), else range products
        used, inverse = torch.unique(owner, return_inverse=True)
        U = used.shape[0]
        split = torch.nonzero(before == upto)  # [m, 2]: (row, j) of asked positions that are not cuts
        r_, j_ = split[:, 0], split[:, 1]
        p_ = positions[r_, j_]
        ranges = self._ranges(
            tree,
            torch.cat([used.repeat_interleave(K + 1), owner[r_], owner[r_]]),
            torch.cat([(bounds[used, :-1] + 1).clamp(max=n).reshape(-1), bounds_r[r_, before[r_, j_]] + 1, p_ + 1]),
            torch.cat([bounds[used, 1:].reshape(-1), p_, bounds_r[r_, upto[r_, j_] + 1]]))
        blocks = ranges[:U * (K + 1)].view(U, K + 1, s, s)[inverse]  # [R, K+1, s, s]
        index = torch.arange(R, device=self.device).unsqueeze(1)
        head, tail = blocks[index, before], blocks[index, upto.clamp(max=K)]  # [R, k, s, s]
        m = r_.shape[0]
        head[r_, j_] = ranges[U * (K + 1):U * (K + 1) + m]
        tail[r_, j_] = ranges[U * (K + 1) + m:]
        # the cut leaves of each row: pinned before its length, T where drafted later, identity where undrafted
        eye = torch.eye(s, dtype=torch.float64, device=self.device)
        is_cut = drafted.gather(1, slot)[owner]  # [R, K]
        pinned = is_cut & (slot[owner] < length.unsqueeze(1))
        leaf = torch.where(pinned.view(R, K, 1, 1), self._leaves(values.gather(1, slot)[owner]),
                           torch.where(is_cut.view(R, K, 1, 1), self.transition, eye))
        ones = eye.expand(R, 1, s, s)
        prefix = torch.cat([ones, _scan(blocks[:, :K] @ leaf)], dim=1)  # [R, K+1]: M_0..M_{c_{m-1}}
        suffix = torch.cat([_scan(leaf @ blocks[:, 1:], reverse=True), ones], dim=1)  # [R, K+1]: M_{c_m}..M_{n-1}
        alpha = (self.initial @ (prefix[index, before] @ head)).view(R, k, s)
        w = (tail @ suffix[index, upto]).sum(-1)
        return alpha, w, prefix[:, K] @ blocks[:, K]

    def open_session(self, partial: torch.Tensor) -> "HMMSession":
        return HMMSession(self, partial.to(self.device))


class HMMSession(OracleSession):
    """Incremental state: each row's segment tree [B, 2 * size, s, s] (see ``HMMOracle``).  A pin rewrites
    its leaf and the log2 n nodes above it (one batched small product per level over the pinned rows);
    a round gathers the siblings of each asked coordinate's path: O(log n) work per row, never O(n)."""

    def __init__(self, oracle: HMMOracle, partial: torch.Tensor):
        super().__init__(oracle, partial)
        self.tree = oracle._build(self.x)
        self.rows = torch.arange(self.x.shape[0], device=self.x.device)

    def pin(self, rows, positions, values) -> None:
        super().pin(rows, positions, values)
        self.oracle._pin_tree(self.tree, self.rows if rows is None else rows, positions, values)

    def answer_at(self, positions: torch.Tensor) -> OracleAnswer:
        oracle, tree = self.oracle, self.tree
        alpha, w = oracle._messages(tree, self.rows, positions)
        roots = tree[:, 1].clone()
        return OracleAnswer(oracle._laws(alpha, w, self.x.gather(1, positions)), lambda: oracle._feasible(roots))
