"""Determinantal point processes on {0, 1}^n (x_i = 1: item i is in the set Y).

Two kinds, both given by item features (rows) in R^r, r small:

* L-ensemble, L = B B^T:        P(Y) = det(L_Y) / det(I + L);
* projection DPP, K = V V^T (V with orthonormal columns): |Y| = r always and
  P(Y) = det(V_Y)^2.

Conditionals given included items A and excluded items E, by Schur
complements carried out in the r-dimensional feature space (so a query costs
O(n r^2), never O(n^3)):  conditioning on A ⊂ Y projects every feature onto
the orthogonal complement of span{b_a : a in A} (Pi = I - projector), and
excluding E just drops those items.  With G_F = sum over free items of b b^T:

* L-ensemble: P(i in Y | A, E) = b_i^T Pi (Pi G_F Pi + I)^-1 Pi b_i;
* projection: P(i in Y | A, E) = b_i^T Pi (Pi G_F Pi + I - Pi)^-1 Pi b_i.

Feasible iff the included features are independent (det L_A > 0) and, for a
projection DPP, the free items can complete the set to r items (Pi G_F Pi has
full rank on the range of Pi).  Infeasible pinnings (too many or too few
ones for a projection DPP, dependent items) answer the placeholder.  Ranks are
decided from eigenvalues with a relative tolerance of 1e-10.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import poisson_binom

from autospec.oracles import ConditionalOracle, OracleAnswer, OracleSession, placeholder_marginals
from autospec.targets.statistics import ExactStatistic
from autospec.targets.structured import (
    StructuredTarget,
    check_n_q,
    count_statistics,
    pair_statistic,
    pooled_statistic,
    single_statistic,
)

__all__ = ["DPPTarget", "DPPOracle", "fourier_features"]

_RANK_TOL = 1e-10
_PIN_TOL = 1e-10  # a pin of conditional probability at most this is treated as impossible (session updates)


def fourier_features(n: int, rank: int) -> torch.Tensor:
    """[n, rank] orthonormal columns: the constant and the lowest cos/sin modes on n grid points
    (rank must be odd and < n).  The projection DPP they span repels neighbouring items."""
    if rank % 2 == 0 or rank >= n:
        raise ValueError(f"fourier_features needs an odd rank < n, got rank={rank}, n={n}")
    t = torch.arange(n, dtype=torch.float64)
    cols = [torch.full((n,), 1 / math.sqrt(n), dtype=torch.float64)]
    for k in range(1, (rank - 1) // 2 + 1):
        cols.append(torch.cos(2 * math.pi * k * t / n) * math.sqrt(2 / n))
        cols.append(torch.sin(2 * math.pi * k * t / n) * math.sqrt(2 / n))
    return torch.stack(cols, 1)


def _poisson_binomial(p: torch.Tensor) -> torch.Tensor:
    """Law [len(p) + 1] of a sum of independent Bernoulli(p) (p clamped into [0, 1] against rounding)."""
    p = p.clamp(0.0, 1.0).numpy()
    return torch.as_tensor(poisson_binom(p).pmf(np.arange(p.size + 1)), dtype=torch.float64)


class DPPTarget(StructuredTarget):
    """kind = "projection" (features orthonormal columns, K = V V^T) or "L" (L = B B^T)."""

    def __init__(self, features, kind: str = "L", name: str | None = None):
        features = torch.as_tensor(np.asarray(features, dtype=np.float64))
        if features.dim() != 2:
            raise ValueError(f"features must be [n, r], got shape {list(features.shape)}")
        n, r = features.shape
        check_n_q(n, 2, "DPPTarget")
        if kind not in ("L", "projection"):
            raise ValueError(f"kind must be 'L' or 'projection', got {kind!r}")
        if kind == "projection":
            gram = features.T @ features
            if (gram - torch.eye(r, dtype=torch.float64)).abs().max() > 1e-9:
                raise ValueError("projection DPP features must have orthonormal columns (V^T V = I)")
        self.n, self.q, self.r, self.kind = n, 2, r, kind
        self.features = features
        self.name = name or f"dpp-{kind}(n={n}, r={r})"
        if kind == "projection":
            self.kernel = features @ features.T  # marginal kernel K [n, n]
            self.cardinality_law = torch.zeros(n + 1, dtype=torch.float64)
            self.cardinality_law[r] = 1.0
        else:
            gram = features.T @ features
            self.kernel = features @ torch.linalg.solve(gram + torch.eye(r, dtype=torch.float64), features.T)
            lam = torch.linalg.eigvalsh(gram).clamp(min=0)
            self.cardinality_law = torch.zeros(n + 1, dtype=torch.float64)  # Poisson-binomial over K's eigenvalues
            self.cardinality_law[:r + 1] = _poisson_binomial(lam / (1 + lam))

    @classmethod
    def fourier_projection(cls, n: int, rank: int = 9):
        return cls(fourier_features(n, rank), "projection", name=f"dpp-projection(n={n}, r={rank})")

    @classmethod
    def fourier_l_ensemble(cls, n: int, rank: int = 9, scale: float = 2.0):
        """L = B B^T with B the Fourier features scaled so mode k has eigenvalue scale * n / (1 + k)."""
        V = fourier_features(n, rank)
        lam = scale * n / (1.0 + torch.arange(rank, dtype=torch.float64)) / n * (1 + rank) / 2
        return cls(V * lam.sqrt(), "L", name=f"dpp-L(n={n}, r={rank})")

    @classmethod
    def random(cls, n: int, rank: int, kind: str = "L", seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        F = torch.randn((n, rank), generator=g, dtype=torch.float64)
        if kind == "projection":
            F = torch.linalg.qr(F).Q
        return cls(F, kind, name=f"dpp-{kind}-random(n={n}, r={rank}, seed={seed})")

    def oracle(self, device="cpu") -> "DPPOracle":
        return DPPOracle(self, device)

    def probability(self, values: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(values.shape[0], dtype=torch.float64)
        for row, x in enumerate(values.to(torch.bool)):
            Y = torch.nonzero(x).squeeze(-1)
            if self.kind == "projection":
                out[row] = torch.linalg.det(self.features[Y] @ self.features[Y].T) if Y.numel() == self.r else 0.0
            else:
                if Y.numel() > self.r:  # rank L <= r: exactly zero, not a rounding residue
                    continue
                L = self.features @ self.features.T
                sub = L[Y][:, Y]
                out[row] = (torch.linalg.det(sub) if Y.numel() else 1.0) / torch.linalg.det(torch.eye(self.n, dtype=torch.float64) + L)
        return out.clamp(min=0)

    def window_count_law(self, lo: int, hi: int) -> torch.Tensor:
        """Exact law of |Y ∩ [lo, hi)| on 0..hi - lo: the count of a DPP in a set is a sum of independent
        Bernoullis whose probabilities are the eigenvalues of K restricted to the set (Hough, Krishnapur,
        Peres and Virag 2006)."""
        return _poisson_binomial(torch.linalg.eigvalsh(self.kernel[lo:hi, lo:hi]))

    def windows(self) -> list[tuple[int, int]]:
        """The windows whose counts are tested: the first two quarters and a short window from n // 3 (the
        counts see the repulsion between neighbouring items that single items and far pairs miss)."""
        n = self.n
        quarter, short = max(2, n // 4), max(2, n // 32)
        out = [(0, quarter), (quarter, min(n, 2 * quarter)), (n // 3, min(n, n // 3 + short))]
        return [(lo, hi) for lo, hi in dict.fromkeys(out) if hi - lo >= 2]

    def pair_marginal(self, i: int, j: int) -> torch.Tensor:
        K = self.kernel
        p11 = K[i, i] * K[j, j] - K[i, j] ** 2
        p10, p01 = K[i, i] - p11, K[j, j] - p11
        return torch.stack([torch.stack([1 - p10 - p01 - p11, p01]), torch.stack([p10, p11])]).clamp(min=0)

    def exact_statistics(self) -> list[ExactStatistic]:
        n = self.n
        if self.kind == "projection":
            r = self.r  # |Y| = r surely: category 0 is "|Y| = r", 1 is anything else (probability 0)
            stats = [ExactStatistic("number of ones (= r)", torch.tensor([1.0, 0.0], dtype=torch.float64),
                                    lambda v, r=r: (v.sum(-1) != r).to(torch.long), labels=[f"{r}", f"!= {r}"])]
        else:
            stats = count_statistics("number of ones", self.cardinality_law, lambda v: v.sum(-1))
        for lo, hi in self.windows():
            stats.append(pooled_statistic(f"items in [{lo}, {hi})", self.window_count_law(lo, hi),
                                          lambda v, lo=lo, hi=hi: v[:, lo:hi].sum(-1)))
        for i in sorted({0, n // 2}):
            k = float(self.kernel[i, i])
            stats.append(single_statistic(f"x[{i}]", i, torch.tensor([1 - k, k], dtype=torch.float64)))
        for i, j in sorted({(0, 1), (0, n // 2), (n // 3, n // 3 + 2)}):
            if i < j < n:
                stats.append(pair_statistic(f"(x[{i}], x[{j}])", i, j, self.pair_marginal(i, j)))
        return stats


class DPPOracle(ConditionalOracle):
    def __init__(self, target: DPPTarget, device="cpu"):
        self.target = target
        self.n, self.q, self.name = target.n, 2, target.name
        self.device = torch.device(device)
        self.features = target.features.to(self.device)  # [n, r]
        r = target.r
        self.outer = (self.features.unsqueeze(2) * self.features.unsqueeze(1)).reshape(self.n, r * r)  # [n, r^2]
        self.scale = float(self.outer.reshape(self.n, r, r).diagonal(dim1=1, dim2=2).sum())  # trace of the full Gram
        self._prefix_cache = None  # (key, the keyed tensors, W table, feasible table) of the last prefix rows

    def _kernel(self, partial: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Q [B, r, r] (P(i in Y | pins) = b_i^T Q b_i for free i) and feasible [B]: O(B n r^2), then O(B r^3)."""
        included = (partial == 1).to(torch.float64)
        free = partial < 0
        return self._kernel_from(included @ self.outer, free.to(torch.float64) @ self.outer, included.sum(1).to(torch.long))

    def _kernel_from(self, gram_a: torch.Tensor, gram_f: torch.Tensor, num_included: torch.Tensor):
        """Q and feasible from the Gram sums over included and over free items ([B, r^2] each)."""
        Pi, M, feasible = self._schur(gram_a, gram_f, num_included)
        return Pi @ torch.linalg.inv(M) @ Pi, feasible  # [B, r, r]

    def _factor(self, partial: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """W [B, r, r] with Q = W W^T (P(i in Y | pins) = |W^T b_i|^2 for free i) and feasible [B]:
        W = Pi V D^-1/2 from M = V D V^T (so a direction Pi removes stays removed to rounding of Pi)."""
        included = (partial == 1).to(torch.float64)
        free = (partial < 0).to(torch.float64)
        Pi, M, feasible = self._schur(included @ self.outer, free @ self.outer, included.sum(1).to(torch.long))
        mu, V = torch.linalg.eigh(M)
        return Pi @ (V * mu.clamp(min=1e-300).rsqrt().unsqueeze(1)), feasible

    def _schur(self, gram_a: torch.Tensor, gram_f: torch.Tensor, num_included: torch.Tensor):
        """(Pi, M, feasible) with Q = Pi M^-1 Pi, from the Gram sums ([B, r^2] each); M = I where infeasible."""
        B = gram_a.shape[0]
        r = self.target.r
        eye = torch.eye(r, dtype=torch.float64, device=self.device)
        tol = _RANK_TOL * max(self.scale, 1e-300)
        gram_a, gram_f = gram_a.reshape(B, r, r), gram_f.reshape(B, r, r)
        lam, U = torch.linalg.eigh(gram_a)
        spanned = lam > tol
        feasible = spanned.sum(1) == num_included
        keep = (~spanned).to(torch.float64)
        Pi = (U * keep.unsqueeze(1)) @ U.transpose(1, 2)  # projector off the span of the included features
        H = Pi @ gram_f @ Pi
        if self.target.kind == "projection":
            M = H + (eye - Pi)
            mu = torch.linalg.eigvalsh(M)
            feasible = feasible & (mu[:, 0] > tol)
        else:
            M = H + eye
        M = torch.where(feasible.view(B, 1, 1), M, eye.expand(B, r, r))
        return Pi, M, feasible

    def answer(self, partial: torch.Tensor) -> OracleAnswer:
        partial = partial.to(self.device)
        B, n = partial.shape
        r = self.target.r
        Q, feasible = self._kernel(partial)
        p1 = Q.reshape(B, r * r) @ self.outer.T  # [B, n]: b_i^T Q b_i
        answer = placeholder_marginals(partial, 2)
        good = (partial < 0) & feasible.unsqueeze(1)
        return OracleAnswer(torch.where(good.unsqueeze(-1), _law(p1), answer), feasible)

    def answer_at(self, partial: torch.Tensor, positions: torch.Tensor) -> OracleAnswer:
        """Laws at positions [B, k] only: the same Q as ``answer`` (the Gram sums over the pins, O(B n r^2)),
        then b_i^T Q b_i at the k asked items (O(B k r^2) instead of O(B n r^2) and no [B, n, 2] answer)."""
        partial, positions = partial.to(self.device), positions.to(self.device)
        Q, feasible = self._kernel(partial)
        return self._laws_at(Q, feasible, positions, partial.gather(1, positions))

    def open_session(self, partial: torch.Tensor) -> "DPPSession":
        return DPPSession(self, partial.to(self.device))

    def _laws_at(self, Q: torch.Tensor, feasible: torch.Tensor, positions: torch.Tensor, pins: torch.Tensor) -> OracleAnswer:
        b = self.features[positions]  # [B, k, r]
        p1 = ((b @ Q) * b).sum(-1)  # [B, k]: b_i^T Q b_i
        return _answer_or_placeholder(p1, feasible, pins)

    def answer_prefixes(self, rows, positions: torch.Tensor) -> OracleAnswer:
        """Prefix rows (``PrefixRows``): each sample's draft walked by rank-one steps, no [R, n] row.

        x's kernel is computed once a sample, as a factor Q = W W^T (``_factor``: O(A n r^2) and two
        eigendecompositions a sample); then the K drafted slots are walked in order, each pin a rank-one
        step of W (the square root of ``condition_kernel``'s update, O(A r^2) a slot), keeping W after
        every slot ([K+1, A, r, r]); a row reads W at (owner, length): P(i in Y) = |W^T b_i|^2, and a row
        asked at its own next drafted item (what the samplers ask) reads the p the walk computed there.
        A pin of probability <= 1e-10 makes that prefix and every longer one infeasible (placeholder).
        The table is kept for other subsets of the same rows (the counting wrapper's ``reread`` of the
        same round): a reread is a gather, not a second walk.  Memory: 8 r^2 (K+1) A bytes.
        """
        positions = positions.to(self.device)
        Ws, feasible, slot_p = self._prefix_factors(rows)
        owner, length = rows.owner.to(self.device), rows.length.to(self.device)
        K = slot_p.shape[0]
        p1 = torch.zeros(positions.shape, dtype=torch.float64, device=self.device)
        if K:  # a row asked at its own next drafted slot: that law is the walk's p (no W gathered)
            slot = length.clamp(max=K - 1)
            own = ((length < K) & rows.drafted.to(self.device)[owner, slot]).unsqueeze(1) & \
                (positions == rows.columns.to(self.device)[owner, slot].unsqueeze(1))
            p1 = torch.where(own, slot_p[slot, owner].unsqueeze(1), p1)
            other = torch.nonzero(~own.all(1)).squeeze(1)
        else:
            other = torch.arange(positions.shape[0], device=self.device)
        if other.numel():
            c = self.features[positions[other]] @ Ws[length[other], owner[other]]  # [R', k, r]: W^T b_i
            p1[other] = torch.where(own[other], p1[other], (c * c).sum(-1)) if K else (c * c).sum(-1)
        return _answer_or_placeholder(p1, feasible[owner, length], rows.pins_at(positions).to(self.device))

    def _prefix_factors(self, rows) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """W [K+1, A, r, r] (slot-major: each step writes a contiguous block), feasible [A, K+1] and the
        walk's p at each drafted item [K, A], for every prefix of every sample's draft (cached by the
        identity and version of rows' base, columns, values and drafted: an in-place change recomputes).

        Pinning item i (c = W^T b_i, p = |c|^2 = K_ii) is W <- W (I + s c c^T): including it, s = -1/p
        (W projected off c: Q - Q b b^T Q / p); excluding it, s = 1 / (sqrt(1-p) (1 + sqrt(1-p))), so that
        (I + s c c^T)^2 = I + c c^T / (1 - p) (Q + Q b b^T Q / (1 - p)).  A probability that should be 0
        comes out as a square of rounding errors."""
        key = tuple((id(t), t._version) for t in (rows.base, rows.columns, rows.values, rows.drafted))
        cached = self._prefix_cache
        if cached is not None and cached[0] == key:
            return cached[2:]
        base = rows.base.to(self.device)
        A, K = rows.columns.shape
        r = self.target.r
        Ws = torch.empty((K + 1, A, r, r), dtype=torch.float64, device=self.device)
        W0, feasible0 = self._factor(base)
        Ws[0] = W0
        if K:
            drafted = rows.drafted.to(self.device)
            include = (rows.values.to(self.device) == 1) & drafted

            def slot_major(t: torch.Tensor) -> torch.Tensor:  # [A, K] -> [K, A, 1, 1], contiguous per slot
                return t.to(torch.float64).T.reshape(K, A, 1, 1).contiguous()

            b = self.features[rows.columns.to(self.device).T].unsqueeze(2)  # [K, A, 1, r]
            # chance t of the pin = off + sign * p; s = step / (t + excluded * sqrt(t)): -1/p including,
            # 1/(sqrt(1-p) (1 + sqrt(1-p))) excluding, 0 for an undrafted slot (W kept)
            off, sign = slot_major(~include), slot_major(torch.where(include, 1.0, -1.0))
            excluded = slot_major(drafted & ~include)
            step = slot_major(torch.where(drafted, torch.where(include, -1.0, 1.0), 0.0))
            possible = torch.empty((K, A, 1, 1), dtype=torch.bool, device=self.device)
            slot_p = torch.empty((K, A, 1, 1), dtype=torch.float64, device=self.device)
            if self.device.type == "cpu" and not _TORCH_WALK:  # numpy: the same loop, a third of torch's cost a small op
                _walk(*(t.numpy() for t in (Ws, b, off, sign, excluded, step, possible, slot_p)))
            else:
                _walk(Ws, b, off, sign, excluded, step, possible, slot_p)
            slot_p = slot_p.reshape(K, A)
            possible = possible.reshape(K, A).T
            blocked = (drafted & ~possible).cumsum(1) > 0  # [A, K]: some pin up to slot j impossible
            feasible = torch.cat([feasible0.unsqueeze(1), feasible0.unsqueeze(1) & ~blocked], 1)
        else:
            feasible = feasible0.unsqueeze(1)
            slot_p = torch.zeros((0, A), dtype=torch.float64, device=self.device)
        self._prefix_cache = (key, (rows.base, rows.columns, rows.values, rows.drafted), Ws, feasible, slot_p)
        return Ws, feasible, slot_p


_TORCH_WALK = False  # tests set it to run the walk on torch tensors (the path a non-CPU device takes)


def _walk(Ws, b, off, sign, excluded, step, possible, slot_p) -> None:
    """The slot loop of ``DPPOracle._prefix_factors`` on numpy arrays or torch tensors alike: Ws [K+1, A, r, r]
    (Ws[0] given, the rest written), b [K, A, 1, r], off / sign / excluded / step [K, A, 1, 1] float,
    possible [K, A, 1, 1] bool and slot_p [K, A, 1, 1] float (written: the pin's chance > 1e-10, and
    P(the slot's item in Y) given the slots before it)."""
    xp = np if isinstance(Ws, np.ndarray) else torch
    with np.errstate(invalid="ignore", divide="ignore"):  # chance <= 0: its step is discarded by where
        for j in range(b.shape[0]):
            W = Ws[j]
            c = b[j] @ W  # [A, 1, r]: (W^T b)^T
            cT = c.swapaxes(1, 2)
            p = slot_p[j] = c @ cT  # [A, 1, 1]
            chance = off[j] + sign[j] * p
            ok = chance > _PIN_TOL
            possible[j] = ok
            s = xp.where(ok, step[j] / (chance + excluded[j] * xp.sqrt(chance)), 0.0)
            xp.add(W, ((W @ cT) * s) @ c, out=Ws[j + 1])


def _law(p1: torch.Tensor) -> torch.Tensor:
    """[..., 2] laws from P(item in Y): clamped to [0, 1] and snapped to exactly 0 or 1 within 1e-10 (the
    pin tolerance: a value the next query would call impossible is never offered, and a structural zero
    or one does not depend on rounding, so exact enumeration sees the same outcomes on every replay)."""
    p1 = p1.clamp(0.0, 1.0)
    p1 = torch.where(p1 <= _PIN_TOL, 0.0, torch.where(p1 >= 1 - _PIN_TOL, 1.0, p1))
    return torch.stack([1 - p1, p1], -1)


def _answer_or_placeholder(p1: torch.Tensor, feasible: torch.Tensor, pins: torch.Tensor) -> OracleAnswer:
    """Laws from P(item in Y) [B, k] where the row is feasible and the item free, the placeholder elsewhere."""
    good = (pins < 0) & feasible.unsqueeze(1)
    return OracleAnswer(torch.where(good.unsqueeze(-1), _law(p1), placeholder_marginals(pins, 2)), feasible)


def condition_kernel(Q: torch.Tensor, b: torch.Tensor, included: torch.Tensor, feasible: torch.Tensor):
    """Pin one item per row of a DPP whose marginal kernel is K = F Q F^T: Q [B, r, r], the item's
    features b [B, r], included [B] bool, feasible [B] -> (Q', feasible').

    Conditioning a DPP on i in Y gives kernel K - K_.i K_i. / K_ii, on i not in Y gives
    K + K_.i K_i. / (1 - K_ii); with K_.i = F Q b both are rank-one updates of Q (O(r^2) a pin, no
    eigendecomposition).  A pin of probability <= 1e-10 makes the row infeasible (Q left unchanged)."""
    v = (Q @ b.unsqueeze(-1)).squeeze(-1)  # [B, r]
    return _rank_one(Q, v, (v * b).sum(-1), included, feasible)


def _rank_one(Q, v, p, included, feasible):
    """condition_kernel's update given v = Q b and p = b^T Q b (K_ii)."""
    chance = torch.where(included, p, 1 - p)
    possible = feasible & (chance > _PIN_TOL)
    scale = torch.where(possible, torch.where(included, -1.0, 1.0) / torch.where(possible, chance, 1.0), 0.0)
    # broadcast products, not bmm: batched r x r products of this size are several times faster elementwise
    return torch.addcmul(Q, (scale.unsqueeze(-1) * v).unsqueeze(-1), v.unsqueeze(-2)), possible


class DPPSession(OracleSession):
    """Incremental state: Q [B, r, r] with P(i in Y | pins) = b_i^T Q b_i, computed once from the pins
    it starts with (Schur complements, as ``answer``) and then updated by one rank-one step per pin
    (``condition_kernel``): a round costs O(B k r^2) instead of O(B n r^2) plus an eigendecomposition."""

    def __init__(self, oracle: DPPOracle, partial: torch.Tensor):
        super().__init__(oracle, partial)
        self.Q, self.feasible = oracle._kernel(partial)

    def pin(self, rows, positions, values) -> None:
        super().pin(rows, positions, values)
        if rows is not None and torch.unique(rows).numel() < rows.numel():  # several pins in a row: one at a time
            for j in range(rows.numel()):
                self._one(rows[j:j + 1], positions[j:j + 1], values[j:j + 1])
            return
        self._one(rows, positions, values)

    def _one(self, rows, positions, values) -> None:
        asked, self._asked = self._asked, None
        if rows is None and asked is not None and torch.equal(asked[0], positions):
            # Sequential pins the coordinate it just asked: Q b and b^T Q b are the answer's, reuse them
            self.Q, self.feasible = _rank_one(self.Q, asked[1], asked[2], values == 1, self.feasible)
            return
        b = self.oracle.features[positions]
        if rows is None:
            self.Q, self.feasible = condition_kernel(self.Q, b, values == 1, self.feasible)
        else:
            self.Q[rows], self.feasible[rows] = condition_kernel(self.Q[rows], b, values == 1, self.feasible[rows])

    _asked: tuple | None = None  # (positions [B], Q b [B, r], b^T Q b [B]) of the last one-position answer

    def answer_at(self, positions: torch.Tensor) -> OracleAnswer:
        if positions.shape[1] != 1:
            self._asked = None
            return self.oracle._laws_at(self.Q, self.feasible, positions, self.x.gather(1, positions))
        b = self.oracle.features[positions[:, 0]]  # [B, r]
        v = (self.Q * b.unsqueeze(-2)).sum(-1)  # Q b (Q symmetric), by broadcasting (see _rank_one)
        p1 = (v * b).sum(-1)
        self._asked = (positions[:, 0], v, p1)
        return _answer_or_placeholder(p1.unsqueeze(1), self.feasible, self.x.gather(1, positions))
