"""Inclusion conditionals of projection DPPs at large n, and L-ensembles as eigenvector mixtures.

A projection DPP with features V [n, r] (orthonormal columns) has marginal
kernel K = V V^T.  Given included items A (and nothing excluded),

    P(i in Y | A in Y) = K_ii - K_iA K_AA^{-1} K_Ai,

computed with one Cholesky factor of K_AA per query row: O(|A| r n) per row,
against the O(r^3 + n r^2) of the general oracle in ``autospec.targets.dpp``
(which also handles excluded items; rows with exclusions are sent there).
A is feasible iff K_AA is non-singular (the included features are independent).

L-ensembles (L = B B^T) are mixtures of projection DPPs: with L's eigenpairs
(lam_m, v_m), include eigenvector m independently with probability
lam_m / (1 + lam_m) and draw the projection DPP spanned by the chosen ones.
``SpectralDPPTarget`` makes the mixture labels coordinates of the target:
coordinates 0..r-1 are the labels c_m, coordinates r..r+n-1 the items, and

    P(c, Y) = prod_m Bernoulli(c_m; lam_m / (1 + lam_m)) * det(V_{Y, c})^2  (|Y| = |c|),

whose item marginal is the L-ensemble (``item_law``).  Its oracle answers the
two pinnings a mixture sampler needs in closed form (everything free; every
label pinned with items only included) and any other pinning from the table
when n + r <= 14.
"""

from __future__ import annotations

import torch

from autospec.oracles import ConditionalOracle, OracleAnswer, placeholder_marginals
from autospec.targets.dpp import DPPOracle, DPPTarget
from autospec.targets.structured import StructuredTarget, all_cells

__all__ = ["projection_inclusion", "ProjectionDPPOracle", "SpectralDPPTarget", "SpectralDPPOracle"]

_PIVOT_TOL = 1e-10


def _schur_inclusion(kernel_rows, diag: torch.Tensor, included: torch.Tensor, limit: torch.Tensor):
    """P(i in Y | included) for a DPP given by its kernel rows: p_i = K_ii - K_iA K_AA^-1 K_Ai.

    kernel_rows(index [B, w], valid [B, w]) -> K[index] [B, w, n] (zero on padding); diag [B, n] = K_ii;
    included [B, n] bool; limit [B]: the largest feasible |A| (the kernel's rank).
    Returns (p [B, n] (1 on included items), feasible [B]).
    """
    B, n = included.shape
    size = included.sum(1)
    width = max(int(size.max()) if B else 0, 1)
    order = torch.argsort((~included).to(torch.int8), dim=1, stable=True)[:, :width]  # included items first
    valid = torch.arange(width, device=included.device).unsqueeze(0) < size.unsqueeze(1)  # [B, width]
    rows = kernel_rows(order, valid)  # K_A [B, width, n]
    gram = rows.gather(2, order.unsqueeze(1).expand(B, width, width)) * valid.unsqueeze(1) + torch.diag_embed((~valid).to(rows.dtype))
    chol, info = torch.linalg.cholesky_ex(gram)
    pivots = chol.diagonal(dim1=1, dim2=2) ** 2
    feasible = (info == 0) & (pivots > _PIVOT_TOL).all(1) & (size <= limit)
    chol = torch.where(feasible.view(B, 1, 1), chol, torch.eye(width, dtype=rows.dtype, device=rows.device))
    solved = torch.linalg.solve_triangular(chol, rows, upper=False)  # L^-1 K_A
    p = (diag - (solved**2).sum(1)).clamp(0.0, 1.0)
    return torch.where(included, torch.ones_like(p), p), feasible


def projection_inclusion(features: torch.Tensor, included: torch.Tensor, columns: torch.Tensor | None = None):
    """P(i in Y | included in Y) for the projection DPP spanned by the chosen feature columns.

    features [n, r]; included [B, n] bool; columns [B, r] bool (which columns span each row's DPP; all if None).
    Returns (p [B, n] float64 (1 on included items), feasible [B] bool).

    Rows of one batch usually share most of their included items (the prefixes of one sampler
    round): the shared set C is factored once, and each row only conditions the kernel given C,
    K_|C = K - K_.C K_CC^-1 K_C., on its own few extra items (Schur complements compose).
    """
    B, n = included.shape
    r = features.shape[1]
    if columns is None:
        columns = torch.ones(B, r, dtype=torch.bool, device=features.device)
    same_columns = bool((columns == columns[:1]).all()) if B else True
    # each row's chosen columns [B or 1, n, r] (one copy when every row spans the same DPP)
    masked = features.unsqueeze(0) * (columns[:1] if same_columns else columns).to(features.dtype).unsqueeze(1)
    diag = (masked**2).sum(-1).expand(B, n)  # K_ii [B, n]
    limit = columns.sum(1)

    def rows_of_kernel(index, valid):
        source = masked.expand(index.shape[0], n, r)
        picked = source.gather(1, index.unsqueeze(-1).expand(-1, -1, r)) * valid.unsqueeze(-1)
        return picked @ source.transpose(1, 2)

    shared = included.all(0) if B > 1 else torch.zeros(n, dtype=torch.bool, device=included.device)
    if int(shared.sum()) < 8 or not same_columns:
        return _schur_inclusion(rows_of_kernel, diag, included, limit)
    # factor the shared set once, then condition each row's own extra items on K given the shared set
    C = torch.nonzero(shared).squeeze(-1)
    base = masked[0]  # [n, r]
    chol, info = torch.linalg.cholesky_ex(base[C] @ base[C].T)
    if int(info) != 0 or bool((chol.diagonal() ** 2 <= _PIVOT_TOL).any()) or C.numel() > int(limit.min()):
        return _schur_inclusion(rows_of_kernel, diag, included, limit)  # the shared set is itself impossible
    X = torch.linalg.solve_triangular(chol, base[C] @ base.T, upper=False)  # [|C|, n]
    p_shared = (diag[0] - (X**2).sum(0)).clamp(0.0, 1.0)  # K_|C diagonal [n]

    def rows_given_shared(index, valid):
        picked = base[index] @ base.T - X[:, index].permute(1, 2, 0) @ X  # K_|C rows [B, w, n]
        return picked * valid.unsqueeze(-1)

    extra = included & ~shared
    p, feasible = _schur_inclusion(rows_given_shared, p_shared.expand(B, n), extra, limit - C.numel())
    return torch.where(included, torch.ones_like(p), p), feasible


class ProjectionDPPOracle(ConditionalOracle):
    """The oracle of a projection ``DPPTarget``, fast on pinnings with included items only."""

    def __init__(self, target: DPPTarget, device="cpu"):
        if target.kind != "projection":
            raise ValueError(f"ProjectionDPPOracle needs a projection DPPTarget, got kind {target.kind!r}")
        self.target = target
        self.n, self.q, self.name = target.n, 2, target.name
        self.device = torch.device(device)
        self.features = target.features.to(self.device)
        self.general = DPPOracle(target, device)

    def answer(self, partial: torch.Tensor) -> OracleAnswer:
        partial = partial.to(self.device)
        excluded = (partial == 0).any(1)
        p, feasible = projection_inclusion(self.features, partial == 1)
        marginals = torch.where((partial < 0).unsqueeze(-1), torch.stack([1 - p, p], -1), placeholder_marginals(partial, 2))
        marginals = torch.where(feasible.view(-1, 1, 1), marginals, placeholder_marginals(partial, 2))
        if bool(excluded.any()):
            general = self.general.answer(partial[excluded])
            marginals[excluded] = general.marginals
            feasible = feasible.clone()
            feasible[excluded] = general.feasible
        return OracleAnswer(marginals, feasible)


class SpectralDPPTarget(StructuredTarget):
    """An L-ensemble (L = B B^T, B [n, r]) with its eigenvector labels as r extra leading coordinates."""

    def __init__(self, features, name: str | None = None):
        self.ensemble = DPPTarget(features, "L")
        B = self.ensemble.features
        lam, W = torch.linalg.eigh(B.T @ B)  # L's non-zero eigenvalues; eigenvectors B W / sqrt(lam)
        if bool((lam <= 1e-12 * max(float(lam.max()), 1.0)).any()):
            raise ValueError("SpectralDPPTarget needs features of full column rank (every eigenvalue of B^T B > 0)")
        self.eigenvalues = lam
        self.vectors = B @ W / lam.sqrt()  # [n, r], orthonormal columns
        self.label_probs = lam / (1 + lam)
        self.items, self.r = B.shape[0], B.shape[1]
        self.n, self.q = self.r + self.items, 2
        self.name = name or f"dpp-L-spectral(n={self.items}, r={self.r})"

    @classmethod
    def random(cls, n: int, rank: int, seed: int = 0):
        return cls(DPPTarget.random(n, rank, "L", seed).features, name=f"dpp-L-spectral-random(n={n}, r={rank}, seed={seed})")

    def probability(self, values: torch.Tensor) -> torch.Tensor:
        labels, items = values[:, : self.r].to(torch.bool), values[:, self.r :].to(torch.bool)
        prior = torch.where(labels, self.label_probs, 1 - self.label_probs).prod(1)
        out = torch.zeros(values.shape[0], dtype=torch.float64)
        for row in range(values.shape[0]):
            Y, c = torch.nonzero(items[row]).squeeze(-1), torch.nonzero(labels[row]).squeeze(-1)
            if Y.numel() == c.numel():
                out[row] = prior[row] * (torch.linalg.det(self.vectors[Y][:, c]) ** 2 if Y.numel() else 1.0)
        return out

    def item_law(self) -> torch.Tensor:
        """The L-ensemble's table [2]*n (items only)."""
        cells = all_cells(self.items, 2)
        return self.ensemble.probability(cells).reshape((2,) * self.items)

    def oracle(self, device="cpu") -> "SpectralDPPOracle":
        return SpectralDPPOracle(self, device)

    def exact_statistics(self):
        return []


class SpectralDPPOracle(ConditionalOracle):
    def __init__(self, target: SpectralDPPTarget, device="cpu"):
        self.target = target
        self.n, self.q, self.name = target.n, 2, target.name
        self.device = torch.device(device)
        self.vectors = target.vectors.to(self.device)
        self._table = None

    def answer(self, partial: torch.Tensor) -> OracleAnswer:
        partial = partial.to(self.device)
        r = self.target.r
        labels, items = partial[:, :r], partial[:, r:]
        all_free = (partial < 0).all(1)
        mixture = (labels >= 0).all(1) & (items != 0).all(1)
        if not bool((all_free | mixture).all()):
            return self._tabular().answer(partial)
        p, feasible = projection_inclusion(self.vectors, items == 1, labels == 1)
        p_free = torch.cat([self.target.label_probs.to(self.device), self.target.ensemble.kernel.diagonal().to(self.device)])
        p = torch.where(all_free.unsqueeze(1), p_free.expand(partial.shape[0], -1), torch.cat([labels.clamp(min=0).to(torch.float64), p], 1))
        feasible = feasible | all_free
        law = torch.stack([1 - p, p], -1)
        marginals = torch.where((partial < 0).unsqueeze(-1), law, placeholder_marginals(partial, 2))
        return OracleAnswer(torch.where(feasible.view(-1, 1, 1), marginals, placeholder_marginals(partial, 2)), feasible)

    def _tabular(self):
        if self._table is None:
            if self.n > 14:
                raise ValueError(f"SpectralDPPOracle answers general pinnings only for n + r <= 14 (got {self.n}); "
                                 "pin every label and include items only")
            self._table = self.target.to_tabular().oracle(self.device)
        return self._table
