"""Adversarial alternatives: laws p1 at a given total variation eps from a target law p0.

A power claim ("every deviation of TV >= eps is rejected with probability >=
0.99") is only as good as the alternatives it was checked against.  The
chi-square family's power is not a function of TV alone, so the claim is made
and checked over this family of directions, each built to be hard for some
test:

* ``two-halves``            p0 (1 + eps / a) on the heaviest cells of mass a ~ 1/2, p0 (1 - eps / (1 - a))
                            on the rest: the smallest chi2(p1 || p0) of any law at TV eps (Cauchy-Schwarz).
* ``two-halves-reversed``   the same with the light cells going up.
* ``into-smallest-5%/-25%`` eps moved, in proportion, from the rest into the lightest cells holding 5% / 25%
                            of the mass (the corrected statistic's variance grows there).
* ``out-of-smallest``       eps taken out of the lightest cells (at least 25% of the mass, or eps).
* ``into-zero-cells``       (1 - eps) p0 + eps uniform on the cells p0 forbids (seen outright by every check).
* ``pooled-reshuffle``      mass moved inside the pooled cell (the cells of expected count < 5 at m samples,
                            which pooled Pearson / G merge and cannot see into), the rest of eps as two halves
                            on the unpooled cells.
* ``temper-hotter/-colder`` p0^beta normalised, beta solved for TV eps.
* ``spike`` / ``hole``      a single cell, the heaviest (the chi2-minimising spike), gains / loses the mass.
* ``parity``                p0 + d with d = +-c on the corners of 2^s sub-cubes of [q]^n (s = min(3, n)
                            coordinates): every marginal on fewer than s coordinates of p1 equals p0's, so the
                            single and pair marginal tests cannot see it; c is water-filled over the blocks to
                            minimise chi2 at the given TV.

Every builder returns p1 [K] (float64, sums to 1, TV(p1, p0) = eps to 1e-12)
or None when that shape cannot reach eps from this p0.  Zero cells of p0 stay
zero except in ``into-zero-cells``.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable

import numpy as np
from scipy import optimize

from verification import gof

__all__ = ["DIRECTIONS", "family", "build", "tv", "lift_statistic", "pooled_cells"]

TV_TOLERANCE = 1e-10


def tv(p, q) -> float:
    """Total variation 0.5 sum |p - q| of two laws [K]."""
    return 0.5 * float(np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64)).sum())


def _as_law(p0) -> np.ndarray:
    p0 = np.asarray(p0, np.float64).reshape(-1)
    if p0.size == 0 or not np.isfinite(p0).all() or (p0 < 0).any() or abs(p0.sum() - 1) > 1e-9:
        raise ValueError("p0 must be a non-empty law [K]: finite, non-negative, summing to 1")
    return p0 / p0.sum()


def _shift(p0: np.ndarray, up: np.ndarray, down: np.ndarray, eps: float) -> np.ndarray | None:
    """Move eps from the cells ``down`` to the cells ``up`` (disjoint boolean masks), in proportion to p0."""
    a, b = p0[up].sum(), p0[down].sum()
    if a <= 0 or b < eps or (up & down).any():
        return None
    p1 = p0.copy()
    p1[up] += eps * p0[up] / a
    p1[down] -= eps * p0[down] / b
    return np.clip(p1, 0.0, None)


def _heavy_half(p0: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Boolean mask of the heaviest of ``cells`` (indices) holding just under half of their mass."""
    order = cells[np.argsort(-p0[cells], kind="stable")]
    mass = np.cumsum(p0[order])
    heavy = np.zeros(len(p0), bool)
    heavy[order[mass - p0[order] < 0.5 * mass[-1]]] = True
    return heavy


def _lightest(p0: np.ndarray, mass: float, reach: bool) -> np.ndarray:
    """Boolean mask of the lightest positive cells: those whose running total stays <= ``mass``
    (reach=False), or up to the first whose running total reaches it (reach=True); at least one cell."""
    support = np.flatnonzero(p0 > 0)
    order = support[np.argsort(p0[support], kind="stable")]
    count = int(np.searchsorted(np.cumsum(p0[order]), mass, side="left" if reach else "right")) + int(reach)
    count = max(1, min(count, len(order)))
    light = np.zeros(len(p0), bool)
    light[order[:count]] = True
    return light


def two_halves(p0, eps, **_):
    support = p0 > 0
    heavy = _heavy_half(p0, np.flatnonzero(support))
    return _shift(p0, heavy, support & ~heavy, eps)


def two_halves_reversed(p0, eps, **_):
    support = p0 > 0
    heavy = _heavy_half(p0, np.flatnonzero(support))
    return _shift(p0, support & ~heavy, heavy, eps)


def _into_smallest(fraction):
    def build(p0, eps, **_):
        light = _lightest(p0, fraction, reach=False)
        return _shift(p0, light, (p0 > 0) & ~light, eps)
    return build


def out_of_smallest(p0, eps, **_):
    light = _lightest(p0, max(0.25, eps), reach=True)
    return _shift(p0, (p0 > 0) & ~light, light, eps)


def into_zero_cells(p0, eps, **_):
    zero = p0 <= 0
    if not zero.any():
        return None
    return (1 - eps) * p0 + eps * zero / zero.sum()


def pooled_cells(p0, num_samples: int) -> np.ndarray:
    """Boolean mask [K] of the cells that gof.pool_cells merges at this sample size (positive cells only)."""
    p0 = np.asarray(p0, np.float64).reshape(-1)
    _, _, info = gof.pool_cells(np.zeros_like(p0), p0, num_samples)
    support = np.flatnonzero(p0 > 0)
    order = support[np.argsort(p0[support] * num_samples, kind="stable")]  # pool_cells' own order
    pooled = np.zeros(len(p0), bool)
    pooled[order[:info["pooled_cells"]]] = True
    return pooled


def pooled_reshuffle(p0, eps, num_samples=None, **_):
    if num_samples is None:
        return None
    pooled = pooled_cells(p0, num_samples)
    if pooled.sum() < 2:
        return None
    heavy = _heavy_half(p0, np.flatnonzero(pooled))
    light = pooled & ~heavy
    inside = min(eps, float(p0[light].sum()))  # TV the pooled tests cannot see
    p1 = _shift(p0, heavy, light, inside)
    if p1 is None:
        return None
    if eps - inside > 0:
        rest = (p0 > 0) & ~pooled
        if rest.sum() < 2:
            return None
        up = _heavy_half(p0, np.flatnonzero(rest))
        p1 = _shift(p1, up, rest & ~up, eps - inside)
    return p1


def _tempered(p0, beta):
    support = p0 > 0
    logp = np.where(support, np.log(np.where(support, p0, 1.0)), -np.inf)
    w = np.exp(beta * (logp - logp[support].max()))
    return w / w.sum()


def _temper(colder: bool):
    def build(p0, eps, **_):
        f = lambda log_beta: tv(_tempered(p0, math.exp(log_beta)), p0) - eps  # noqa: E731
        if colder:
            high = 1.0
            while f(high) < 0:
                high *= 2
                if high > 64:
                    return None
            log_beta = optimize.brentq(f, 0.0, high, xtol=1e-14)
        else:
            low = -1.0
            while f(low) < 0:
                low *= 2
                if low < -64:
                    return None
            log_beta = optimize.brentq(f, low, 0.0, xtol=1e-14)
        return _tempered(p0, math.exp(log_beta))
    return build


def spike(p0, eps, **_):
    x = int(np.argmax(p0))
    if p0[x] >= 1 or eps / (1 - p0[x]) > 1:
        return None
    e = eps / (1 - p0[x])
    point = np.zeros_like(p0)
    point[x] = 1.0
    return (1 - e) * p0 + e * point


def hole(p0, eps, **_):
    x = int(np.argmax(p0))
    one = np.zeros(len(p0), bool)
    one[x] = True
    return _shift(p0, (p0 > 0) & ~one, one, eps)


def parity(p0, eps, shape=None, **_):
    """p0 + d, d = +-c_b on the 2^s corners of disjoint sub-cubes b (sign: parity of the corner)."""
    if shape is None or len(shape) < 2 or len(set(shape)) != 1 or shape[0] < 2:
        return None
    n = len(shape)
    s = min(3, n)
    table = p0.reshape(shape)
    best = None
    for S in itertools.combinations(range(n), s):
        blocks = _parity_blocks(table, S)
        capacity = blocks["capacity"].sum() * 2 ** (s - 1)
        if best is None or capacity > best[1]:
            best = (blocks, capacity)
    blocks, capacity = best
    if capacity < eps:
        return None
    cap, harm = blocks["capacity"], blocks["harmonic"]  # [B] each
    weight = 2 ** (s - 1)
    total = lambda lam: weight * np.minimum(cap, lam / harm).sum() - eps  # noqa: E731
    lam = optimize.brentq(total, 0.0, float((cap * harm).max()) * (1 + 1e-9), xtol=1e-300, rtol=1e-15)
    c = np.minimum(cap, lam / harm)
    d = np.zeros(len(p0))
    np.add.at(d, blocks["cells"].reshape(-1), (c[:, None] * blocks["signs"]).reshape(-1))
    return np.clip(p0 + d, 0.0, None)


def _parity_blocks(table: np.ndarray, S) -> dict:
    """Disjoint 2^s sub-cubes over the coordinates S: on each coordinate of S its values are paired,
    heaviest marginal values first; the other coordinates are fixed per block.
    Returns cells [B, 2^s] (flat indices), signs [B, 2^s] (+-1, chosen so the negative corners are the
    heavier ones), capacity [B] (largest c keeping p0 + d >= 0) and harmonic [B] (sum 1 / p0 over the corners)."""
    n, q = table.ndim, table.shape[0]
    pairs = []
    for i in S:
        marginal = table.sum(axis=tuple(a for a in range(n) if a != i))
        values = np.argsort(-marginal, kind="stable")
        pairs.append([(values[2 * j], values[2 * j + 1]) for j in range(q // 2)])
    rest = [i for i in range(n) if i not in S]
    s = len(S)
    strides = np.array([q ** (n - 1 - i) for i in range(n)])
    rest_offsets = (np.indices((q,) * len(rest)).reshape(len(rest), -1).T @ strides[rest]) if rest else np.zeros(1, int)
    cells = rest_offsets.reshape((1,) * s + (-1,) + (1,) * s)  # axes: pair choice per S coordinate, rest, corner bits
    for k, (i, coordinate_pairs) in enumerate(zip(S, pairs)):
        values = np.array(coordinate_pairs) * strides[i]  # [pairs, 2]
        shape = [1] * (2 * s + 1)
        shape[k], shape[s + 1 + k] = values.shape
        cells = cells + values.reshape(shape)
    corners = np.array(list(itertools.product((0, 1), repeat=s)))  # [2^s, s], C order of the bit axes
    parity_sign = np.where(corners.sum(1) % 2 == 0, 1.0, -1.0)
    cells = cells.reshape(-1, 2**s)  # [B, 2^s]
    p = table.reshape(-1)[cells]
    negative_even = np.where(parity_sign < 0, p, np.inf).min(1)  # capacity if the odd corners go down
    negative_odd = np.where(parity_sign > 0, p, np.inf).min(1)
    flip = negative_odd > negative_even  # put the minus signs where the capacity is larger
    signs = np.where(flip[:, None], -parity_sign[None, :], parity_sign[None, :])
    capacity = np.maximum(negative_even, negative_odd)
    capacity = np.where((p > 0).all(1), capacity, 0.0)  # never create mass in a forbidden cell
    with np.errstate(divide="ignore"):
        harmonic = np.where((p > 0).all(1), (1.0 / np.where(p > 0, p, 1.0)).sum(1), np.inf)
    keep = capacity > 0
    return {"cells": cells[keep], "signs": signs[keep], "capacity": capacity[keep], "harmonic": harmonic[keep]}


DIRECTIONS: dict[str, Callable] = {
    "two-halves": two_halves,
    "two-halves-reversed": two_halves_reversed,
    "into-smallest-5%": _into_smallest(0.05),
    "into-smallest-25%": _into_smallest(0.25),
    "out-of-smallest": out_of_smallest,
    "into-zero-cells": into_zero_cells,
    "pooled-reshuffle": pooled_reshuffle,
    "temper-hotter": _temper(colder=False),
    "temper-colder": _temper(colder=True),
    "spike": spike,
    "hole": hole,
    "parity": parity,
}


def build(name: str, p0, eps: float, num_samples: int | None = None, shape=None) -> np.ndarray | None:
    """The law [K] of direction ``name`` at TV eps from p0 [K], or None where it cannot reach eps.

    num_samples: the sample size (for ``pooled-reshuffle``); shape: (q,) * n when p0 is a table on [q]^n
    (for ``parity``)."""
    if name not in DIRECTIONS:
        raise ValueError(f"unknown direction {name!r}; expected one of {sorted(DIRECTIONS)}")
    if not 0 < eps < 1:
        raise ValueError(f"eps must be in (0, 1), got {eps!r}")
    p0 = _as_law(p0)
    if shape is not None and math.prod(shape) != p0.size:
        raise ValueError(f"shape {tuple(shape)} does not match {p0.size} cells")
    p1 = DIRECTIONS[name](p0, float(eps), num_samples=num_samples, shape=None if shape is None else tuple(shape))
    if p1 is None:
        return None
    p1 = p1 / p1.sum()
    if abs(tv(p1, p0) - eps) > TV_TOLERANCE * max(1.0, 1 / eps):
        raise AssertionError(f"direction {name} built TV {tv(p1, p0)!r}, not {eps!r}")  # a bug here, not bad input
    return p1


def family(p0, eps: float, num_samples: int | None = None, shape=None, names=None) -> dict[str, np.ndarray]:
    """{name: p1 [K]} for every direction that reaches TV eps from p0."""
    out = {}
    for name in names or DIRECTIONS:
        p1 = build(name, p0, eps, num_samples, shape)
        if p1 is not None:
            out[name] = p1
    return out


def lift_statistic(p0_joint, index, law0, law1) -> np.ndarray:
    """The joint law p0 reweighted so that a statistic's law becomes law1:
    p1(x) = p0(x) law1(s(x)) / law0(s(x)).

    p0_joint [K]; index [K]: the statistic's category s(x) of every cell; law0, law1 [C] (law0 the
    statistic's law under p0, law1 zero wherever law0 is).  TV of the joint = TV(law1, law0)."""
    p0_joint = _as_law(p0_joint)
    law0, law1 = np.asarray(law0, np.float64), np.asarray(law1, np.float64)
    if ((law1 > 0) & (law0 <= 0)).any():
        raise ValueError("law1 puts mass on a category of probability zero under law0: no reweighting reaches it")
    ratio = np.divide(law1, law0, out=np.zeros_like(law1), where=law0 > 0)
    p1 = p0_joint * ratio[np.asarray(index)]
    return p1 / p1.sum()
