"""One-sample goodness-of-fit tests of sampler output against a known discrete law.

Everything here works on counts: ``observed`` [K] (non-negative integers) and
the exact law ``probs`` [K] they should follow.  A sample in a cell of
probability zero is proof of inexactness: every test returns p = 0 for it.

Statistics
----------
* ``pearson`` / ``likelihood_ratio``: Pearson X^2 and the G statistic after
  *pooling*: cells whose expected count m p_i is below ``min_expected`` (5)
  are merged, smallest first, into one cell until that cell reaches
  ``min_expected`` (a lone leftover cell joins it too).  Pooling depends on
  (probs, m) only, never on the data.
* ``corrected_chisquare``: T = sum_i ((N_i - m p_i)^2 - N_i) / (m p_i) over all
  cells of positive probability, no pooling (the collision-based identity
  tester: keeps its power when most cells are tiny).  Its null moments are
  exact: E T = -1, Var T = 2 (k - 1)(1 - 1/m).
* marginal family: pooled Pearson on each exact statistic law (single and
  pair marginals, counts, user functions).
* ``auto``: pooled Pearson on the joint, the corrected statistic too when the
  table is sparse (m < 5 cells), and the marginal family when statistics are
  given, combined by a max-statistic (below).

How every pass/fail decision is calibrated: Monte Carlo under the exact null
-----------------------------------------------------------------------------
No decision uses an asymptotic law (chi-square, normal): Cochran's rule and
the normal law of the corrected statistic are for alpha near 0.05 and were
5x to 27x liberal at alpha 1e-4 on sparse, peaked tables.  Each decision is
a Monte Carlo test: the statistic S is simulated under H0 (multinomial(m,
probs) counts, the exact null of every statistic here) and
p = (1 + #{S_sim >= S}) / (B + 1), valid by construction (ties count as
exceedances: conservative).

* Resolution.  To reject at alpha, B + 1 = ceil(R / alpha) draws are made and
  the test rejects iff fewer than R of them reach S (R = ``MC_RESOLUTION``,
  10, reduced down to 1 when ``MC_WORK_BUDGET`` cannot afford it).  Its size
  is R / ceil(R / alpha) <= alpha exactly, for every table and sample size.
* Sequential stop (Besag and Clifford 1991).  Draws come in growing chunks and
  stop as soon as h = ``MC_STOP`` (2R) draws reach S: then the fixed-B test
  cannot reject either, so the decision is the same and only the work
  differs.  A correct sampler typically stops after ~h / p draws (tens to
  hundreds); only a rejection needs all B.  Reported p: Besag and Clifford's
  h / L when stopped at the L-th draw (the exact draw of the h-th
  exceedance), else (1 + exceedances) / (B + 1): a valid p-value at every
  level, not only at alpha (the calibration audit tests its uniformity).
* Seeds.  The null draws of a check with seed s come from
  ``numpy.random.default_rng([MC_SALT, s])``: a fresh, seed-dependent set for
  every check, so the false-fail rate over seeds is <= alpha exactly
  (unconditionally).  A critical value from one cached set of B draws would
  instead give a rate that, conditionally on that set, fluctuates around alpha
  by ~1/sqrt(B alpha) relative (30% at R = 10), and every seed of a CI suite
  would share that error.  What is cached is everything seed-independent: the
  pooling plan, the sampling plan, the statistic maps (``null_model``).
* Inconclusive.  When even R = 1 is unaffordable (1 / (B + 1) > alpha at the
  budget), no data can reject: a row whose statistic is reached by fewer than
  ``MC_RESOLUTION`` of the affordable draws is "inconclusive" (never an
  asymptotic guess); the others pass.
* Max-statistic (min-p) combinations.  ``auto`` and the marginal family on a
  joint table take S = the largest of the parts' standardised statistics
  (Wilson-Hilferty normal scores of each chi-square-like statistic, i.e. the
  smallest approximate p-value; in ``auto`` the marginal family enters with
  its Bonferroni-scaled score so each of Pearson / corrected / marginals
  weighs about the same as under the old Bonferroni over three parts).  The
  approximate scores only weight the parts: the joint law of all parts is
  simulated from the same multinomial draws, so the combination is exactly
  calibrated and pays nothing for dependence.  In particular single
  marginals, which are functions of the pair marginals, cost nothing extra on
  a joint table.
* Statistics path (no joint table).  The statistics' joint law is unknown, so
  each statistic is its own Monte Carlo test and the family is Holm
  (``statsmodels.stats.multitest.multipletests``) over them, valid under any
  dependence.  There a single marginal does count as one more member: its
  functional link to a pair marginal cannot be verified from an opaque
  statistic function, and grouping on an unverified link would break the
  null.

``scipy.stats.monte_carlo_test`` is not used: it draws a fixed number of
resamples (no sequential stop, so a passing check would cost the full
R / alpha draws instead of ~R / p), takes one statistic per call (the
max-statistic combination needs every part computed on the same draws), and
simulates through ``rvs`` of one data set, where we need the multinomial
count vector (and, for sparse tables, a two-stage draw that is 10x cheaper).

Interface used by verification.power
------------------------------------
``decide`` / ``rejects`` (joint counts) and ``decide_statistics`` /
``rejects_statistics`` (statistic counts) are the decision itself, vectorised
over rows: ``check_exact`` calls the same functions on its one row.

TV between the sampler's law and the target: ``tv_plug_in`` (biased upward),
``tv_bias_corrected`` (plug-in minus its exact expectation under H0, clipped
at 0), ``tv_upper_bound`` (distribution-free upper confidence bound on the
joint TV; meaningless for statistics).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

__all__ = [
    "GofResult", "Decisions", "MIN_EXPECTED", "TESTS", "JOINT_TESTS", "PASS", "FAIL", "INCONCLUSIVE",
    "pool_cells", "pearson", "likelihood_ratio", "corrected_chisquare", "corrected_statistic",
    "corrected_null_moments", "corrected_moments", "simulate_corrected_null", "marginal_tests", "auto_test",
    "choose_joint_test", "auto_parts", "decide", "rejects", "decide_statistics", "rejects_statistics", "null_model",
    "decision_model", "holm_adjusted",
    "mc_plan", "tv_plug_in", "expected_null_tv", "tv_bias_corrected", "tv_upper_bound",
]

MIN_EXPECTED = 5.0
TV_CONFIDENCE = 0.95
TESTS = ("pearson", "likelihood-ratio", "corrected", "marginals", "auto")
JOINT_TESTS = ("pearson", "likelihood-ratio", "corrected", "marginals", "auto")
PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"

MC_RESOLUTION = 10  # R: a rejection needs fewer than R of ceil(R / alpha) - 1 null draws to reach the statistic
MC_STOP = 2 * MC_RESOLUTION  # h of Besag-Clifford: a row stops once h null draws reach it (then it passes)
MC_WORK_BUDGET = 1e8  # most null-draw work per decision, in units of ~100 ns (one binomial draw): ~10 s
MC_FIRST_CHUNK = 64
MC_CHUNK_ELEMENTS = 2_000_000  # cap on chunk x cells held at once
MC_SALT = 0x5EED_6F0F  # separates the null draws' stream from anything else seeded by the same seed
MC_INTERVAL = 0.99  # level of the Clopper-Pearson interval reported for a Monte Carlo p-value
_DRAW_OVERHEAD = 5.0  # fixed work of one null draw (units of ~100 ns), whatever the table
_TIE = 1e-9  # relative tolerance: a simulated statistic this close to the observed one counts as reaching it


@dataclass
class GofResult:
    test: str
    statistic: float
    p_value: float
    dof: int
    num_samples: int
    cells: int
    details: dict = field(default_factory=dict)
    verdict: str | None = None  # pass / fail / inconclusive when an alpha was given


def _as_counts(observed, probs):
    observed = np.asarray(observed, dtype=np.float64).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    if observed.shape != probs.shape:
        raise ValueError(f"observed counts {observed.shape} and probs {probs.shape} must have the same number of cells")
    if (observed < 0).any() or (probs < 0).any():
        raise ValueError("observed counts and probs must be non-negative")
    total = probs.sum()
    if not abs(total - 1.0) < 1e-6:
        raise ValueError(f"probs must sum to 1 (got {total:.9g})")
    return observed, probs / total


def _check_alpha(alpha):
    if not isinstance(alpha, (float, np.floating)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a float in (0, 1), got {alpha!r}")
    return float(alpha)


# ---------------------------------------------------------------- pooling
def _pooling_plan(probs: np.ndarray, m: float, min_expected: float = MIN_EXPECTED):
    """(kept cells [H] in pooled order, merged cells [L]) of the positive cells; see ``pool_cells``."""
    positive = np.flatnonzero(probs > 0)
    expected = probs[positive] * m
    order = np.argsort(expected, kind="stable")
    small = int(np.searchsorted(expected[order], min_expected))  # cells below the threshold
    if small > 0:
        cumulative = np.cumsum(expected[order])
        small = max(small, int(np.searchsorted(cumulative, min_expected)) + 1)
    small = min(small, len(order))
    if small == len(order) - 1:
        small = len(order)  # a lone remaining cell would leave no degrees of freedom
    if small <= 1:  # one small cell alone is not pooled with anything; keep it as is
        return positive[order], positive[:0]
    return positive[order[small:]], positive[order[:small]]


def pool_cells(observed, probs, num_samples: int | None = None, min_expected: float = MIN_EXPECTED):
    """Merge cells of small expected count.  Returns (observed [K'], probs [K'], info).

    Cells of probability zero are dropped (a count there is handled by the
    tests).  The cells with m p_i < ``min_expected`` are merged smallest first
    into a single pooled cell (last); if its expected count is still below
    ``min_expected`` (or only one other cell remains) the next smallest cells
    join it.  ``info``: pooled_cells (how many were merged), pooled_mass
    (their total probability, the TV the pooled test cannot see).
    """
    observed = np.asarray(observed, dtype=np.float64).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    m = float(observed.sum()) if num_samples is None else float(num_samples)
    kept, merged = _pooling_plan(probs, m, min_expected)
    if len(merged) == 0:
        return observed[kept], probs[kept], {"pooled_cells": 0, "pooled_mass": 0.0}
    obs = np.concatenate([observed[kept], [observed[merged].sum()]])
    prb = np.concatenate([probs[kept], [probs[merged].sum()]])
    return obs, prb, {"pooled_cells": int(len(merged)), "pooled_mass": float(probs[merged].sum())}


# ---------------------------------------------------------------- statistics on rows of counts
def _pooled(counts: np.ndarray, kept: np.ndarray, merged: np.ndarray) -> np.ndarray:
    """Rows of counts [R, K] -> pooled counts [R, H (+1)] (the merged cells summed into the last column)."""
    if len(merged) == 0:
        return counts[:, kept]
    return np.concatenate([counts[:, kept], counts[:, merged].sum(1, keepdims=True)], axis=1)


def _pearson_rows(pooled: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """X^2 = sum (N - e)^2 / e over rows [R, K'] -> [R]."""
    return ((pooled - expected) ** 2 / expected).sum(1)


def _g_rows(pooled: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """G = 2 sum N log(N / e) (0 log 0 = 0) over rows [R, K'] -> [R]."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(pooled > 0, pooled * np.log(pooled / expected), 0.0)
    return 2.0 * terms.sum(1)


def corrected_statistic(counts: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """T = sum ((N - m p)^2 - N) / (m p) for counts [..., k] (positive-probability cells only)."""
    counts = np.asarray(counts, dtype=np.float64)
    m = counts.sum(-1, keepdims=True)
    return (counts * (counts - 1) / probs).sum(-1) / m[..., 0] - m[..., 0]


def corrected_null_moments(k: int, m: int) -> tuple[float, float]:
    """Exact (mean, variance) of T under H0 with k positive cells and m samples: (-1, 2 (k-1)(1-1/m))."""
    return -1.0, 2.0 * (k - 1) * (1.0 - 1.0 / m) if m > 0 else 0.0


def corrected_moments(p0, p1, m: int) -> tuple[float, float]:
    """Exact (mean, variance) of T when the samples follow p1 and the test uses p0 (same support).

    With U = sum N_i (N_i - 1) / p0_i and falling factorials m^(r):
    E U = m^(2) S1, Var U = (m^(4) - m^(2)^2) S1^2 + 4 m^(3) S3 + 2 m^(2) S2,
    S1 = sum p1^2/p0, S2 = sum p1^2/p0^2, S3 = sum p1^3/p0^2; T = U/m - m.
    """
    p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
    s1 = float((p1**2 / p0).sum())
    s2 = float((p1**2 / p0**2).sum())
    s3 = float((p1**3 / p0**2).sum())
    f2, f3, f4 = m * (m - 1.0), m * (m - 1.0) * (m - 2.0), m * (m - 1.0) * (m - 2.0) * (m - 3.0)
    mean_u = f2 * s1
    var_u = (f4 - f2 * f2) * s1 * s1 + 4 * f3 * s3 + 2 * f2 * s2
    return mean_u / m - m, max(var_u, 0.0) / (m * m)


def _wilson_hilferty(x: np.ndarray, df: int) -> np.ndarray:
    """Normal score of a chi-square(df)-like statistic (Wilson-Hilferty cube root): monotone in x.  Used only to put
    the parts of a max-statistic on one scale; the combination itself is calibrated by simulation."""
    c = 2.0 / (9.0 * df)
    return (np.cbrt(np.maximum(x, 0.0) / df) - (1.0 - c)) / math.sqrt(c)


# ---------------------------------------------------------------- the null model (seed-independent, cached)
class _Part:
    """One statistic of a decision: ``score(sample) -> [R]`` (standardised, for max-statistics) and ``raw``."""

    def __init__(self, name: str, score, dof: int, raw):
        self.name, self.score, self.dof, self.raw = name, score, dof, raw


@dataclass
class _Split:
    """Rows of multinomial counts in split form: ``head`` [R, D] the counts of the dense cells (m p >= 2), and the
    samples that fell in the light cells, one entry per sample: ``rows`` [S] (which row), ``cells`` [S] (which
    light cell).  For sparse, peaked tables (thousands of cells of expected count << 1) every statistic here is
    computed from this at a cost ~ D + S per row instead of ~ k."""

    head: np.ndarray
    rows: np.ndarray
    cells: np.ndarray

    def __len__(self) -> int:
        return len(self.head)


class NullModel:
    """Everything about one (test, probs, m, statistics) that does not depend on data or seed.

    ``draw(generator, size)`` -> ``size`` null rows, multinomial(m, probs) (pearson / likelihood-ratio: counts of the
    pooled cells [size, k'], the same law for their statistic; the others: a ``_Split``), ``reduce(counts [R, K])``
    the observed rows into the same form, ``statistic(rows) -> [R]`` the decision's statistic (large rejects),
    ``cost`` the work of one draw (units of ~100 ns).
    """

    def __init__(self, test: str, probs: np.ndarray, m: int, cell_maps=None):
        self.test, self.m = test, int(m)
        self.positive = np.flatnonzero(probs > 0)
        p = probs[self.positive]
        self.k = len(p)
        kept, merged = _pooling_plan(probs, m)
        self.pooled_cells = len(kept) + (1 if len(merged) else 0)
        self.pooled_mass = float(probs[merged].sum())
        self.parts: list[_Part] = []
        self.family: list[_Part] = []
        if test in ("pearson", "likelihood-ratio"):
            # draw straight in the pooled space: the pooled counts are multinomial(m, pooled probs)
            self._pooled_space = True
            self.kept, self.merged = kept, merged
            self.probs = np.concatenate([probs[kept], [probs[merged].sum()]]) if len(merged) else probs[kept]
            self._head = self.probs
            expected = self.probs * m
            raw = _pearson_rows if test == "pearson" else _g_rows
            self.parts = [_Part(test, None, self.pooled_cells - 1, lambda rows, e=expected, f=raw: f(rows, e))]
            self.cost = float(len(self.probs)) + _DRAW_OVERHEAD
            return
        self._pooled_space = False
        self.probs = p
        self._plan_split(p)
        local = np.full(len(probs), -1)
        local[self.positive] = np.arange(self.k)
        head_of = np.full(self.k, -1)
        head_of[self._dense] = np.arange(len(self._dense))
        cost = len(self._dense) + 1.5 * self._light_samples + _DRAW_OVERHEAD
        if test == "auto":
            kept_h, merged_h = head_of[local[kept]], head_of[local[merged]]
            merged_h = merged_h[merged_h >= 0]  # light cells are all merged (m p < 2 < 5): counted through rows
            expected = (np.concatenate([p[local[kept]], [p[local[merged]].sum()]]) if len(merged) else
                        p[local[kept]]) * m
            dof = self.pooled_cells - 1
            if dof >= 1:
                pool = bool(len(merged))
                raw = lambda x, kh=kept_h, mh=merged_h, e=expected, pool=pool: _pearson_rows(  # noqa: E731
                    self._pooled(x, kh, mh, pool), e)
                self.parts.append(_Part("pearson", lambda x, r=raw, d=dof: _wilson_hilferty(r(x), d), dof, raw))
                cost += 0.05 * len(self._dense)
        if test == "corrected" or (test == "auto" and "corrected" in auto_parts(self.k, m, False)):
            if self.k >= 2 and m >= 2:
                scale, dof = math.sqrt(1.0 - 1.0 / m), self.k - 1
                self.parts.append(_Part("corrected", lambda x, s=scale, d=dof: _wilson_hilferty(
                    d + (self._corrected(x) + 1.0) / s, d), dof, self._corrected))
                cost += 0.05 * len(self._dense) + 0.5 * self._light_samples + 0.02 * len(self._light)
        if cell_maps:
            cost += self._plan_family(cell_maps, m, head_of)
        if test == "marginals" and not self.family:
            raise ValueError("the marginal family needs at least one statistic with two or more cells after pooling")
        self.cost = float(cost)

    # -- sampling
    def _plan_split(self, p: np.ndarray) -> None:
        """Dense cells (m p >= 2) by one multinomial, the rest through one light cell whose samples are placed by
        inverse-CDF lookup (the light cells hold few samples, so this is far cheaper than k binomials)."""
        dense = p * self.m >= 2.0
        if (~dense).sum() < 8:
            dense[:] = True
        self._dense, self._light = np.flatnonzero(dense), np.flatnonzero(~dense)
        light_mass = float(p[self._light].sum())
        self._head = np.append(p[self._dense], light_mass) if len(self._light) else p[self._dense]
        self._head = self._head / self._head.sum()
        self._light_cdf = np.cumsum(p[self._light]) / light_mass if len(self._light) else None
        self._light_samples = self.m * light_mass

    def draw(self, generator: np.random.Generator, size: int):
        """``size`` null rows (multinomial(m, probs)) in this model's form."""
        head = generator.multinomial(self.m, self._head, size=size)
        if self._pooled_space:
            return head
        if not len(self._light):
            return _Split(head, np.zeros(0, np.int64), np.zeros(0, np.int64))
        n_light = head[:, -1]
        cells = np.searchsorted(self._light_cdf, generator.random(int(n_light.sum())), side="right")
        return _Split(head[:, :-1], np.repeat(np.arange(size), n_light), np.minimum(cells, len(self._light) - 1))

    def reduce(self, counts: np.ndarray):
        """Observed rows [R, K] (all cells) -> rows in this model's form."""
        counts = np.asarray(counts)
        if not np.issubdtype(counts.dtype, np.integer):
            counts = np.rint(counts).astype(np.int64)
        if self._pooled_space:
            return _pooled(counts, self.kept, self.merged)
        counts = counts[:, self.positive]
        light = counts[:, self._light]
        rows, cells = np.nonzero(light)
        times = light[rows, cells]
        return _Split(counts[:, self._dense], np.repeat(rows, times), np.repeat(cells, times))

    # -- statistics on split rows
    def _light_counts(self, x: _Split) -> np.ndarray:
        return np.bincount(x.rows, minlength=len(x)).astype(np.float64)

    def _pooled(self, x: _Split, kept_h, merged_h, pool: bool) -> np.ndarray:
        head = x.head.astype(np.float64)
        if not pool:
            return head[:, kept_h]
        last = head[:, merged_h].sum(1) + self._light_counts(x)
        return np.concatenate([head[:, kept_h], last[:, None]], axis=1)

    def _corrected(self, x: _Split) -> np.ndarray:
        """T = sum N (N - 1) / (m p) - m: dense cells directly, light cells through their collisions."""
        head = x.head.astype(np.float64)
        u = (head * (head - 1.0) / self.probs[self._dense]).sum(1)
        if len(x.rows):
            width = len(self._light)
            counts = np.bincount(x.rows * width + x.cells, minlength=len(x) * width)
            keys = np.flatnonzero(counts >= 2)
            times = counts[keys].astype(np.float64)
            u += np.bincount(keys // width, minlength=len(x), weights=times * (times - 1.0) / self.probs[self._light][keys % width])
        return u / self.m - self.m

    def _plan_family(self, cell_maps, m: int, head_of: np.ndarray) -> float:
        """The marginal family: every statistic's counts [R, sum K_s] side by side, from the dense cells through one
        0/1 matrix and from the light samples through their statistic values.  Returns the cost per draw."""
        offsets, blocks, offset = [], [], 0
        for name, cell_value, law in cell_maps:
            offsets.append(cell_value[self.positive] + offset)
            blocks.append((name, law, offset))
            offset += len(law)
        values = np.stack(offsets, axis=1)  # [k, statistics]: the column of every cell in every statistic
        self._width = offset
        dense_values = values[self._dense]
        fold = sparse.csr_matrix((np.ones(dense_values.size), (np.repeat(np.arange(len(self._dense)), values.shape[1]),
                                                               dense_values.ravel())), shape=(len(self._dense), offset))
        self._fold = fold.toarray() if fold.shape[0] * offset <= 400_000 else fold
        self._light_values = values[self._light].astype(np.int32)  # [light cells, statistics]
        for name, law, start in blocks:
            fk, fm = _pooling_plan(law, m)
            expected = (np.concatenate([law[fk], [law[fm].sum()]]) if len(fm) else law[fk]) * m
            dof = len(fk) + (1 if len(fm) else 0) - 1
            if dof < 1:
                continue  # everything pooled: this statistic cannot reject at this sample size
            fk, fm = fk + start, fm + start
            raw = lambda folded, fk=fk, fm=fm, e=expected: _pearson_rows(_pooled(folded, fk, fm), e)  # noqa: E731
            self.family.append(_Part(name, lambda folded, r=raw, d=dof: _wilson_hilferty(r(folded), d), dof, raw))
        matmul = 0.005 * len(self._dense) * offset if isinstance(self._fold, np.ndarray) else 0.1 * len(self._dense) * values.shape[1]
        return matmul + 0.15 * values.shape[1] * self._light_samples + 0.05 * offset

    def _folded(self, x: _Split) -> np.ndarray:
        """Joint rows -> every statistic's counts side by side [R, sum K_s]."""
        head = x.head.astype(np.float64)
        folded = head @ self._fold if isinstance(self._fold, np.ndarray) else (sparse.csr_matrix(head) @ self._fold).toarray()
        if len(x.rows):
            index = (x.rows.astype(np.int32)[:, None] * np.int32(self._width) + self._light_values[x.cells]).ravel()
            folded += np.bincount(index, minlength=len(x) * self._width).reshape(len(x), self._width)
        return folded

    def statistic(self, rows) -> np.ndarray:
        """The decision's statistic [R] (large is evidence against H0)."""
        if self._pooled_space:
            return self.parts[0].raw(np.asarray(rows, dtype=np.float64))
        if self.test == "corrected":
            return self._corrected(rows)
        if self.family:
            folded = self._folded(rows)
            family = np.max([part.score(folded) for part in self.family], axis=0)
        if self.test == "marginals":
            return family
        # auto: -log of each part's approximate p-value; the family's min-p is Bonferroni-scaled by its size
        logp = [stats.norm.logsf(part.score(rows)) for part in self.parts]
        if self.family:
            logp.append(np.minimum(0.0, math.log(len(self.family)) + stats.norm.logsf(family)))
        if not logp:
            return np.zeros(len(rows))
        return -np.min(logp, axis=0)

    def part_statistics(self, rows) -> dict:
        """Raw statistic of every part [R] (for the report)."""
        out = {part.name: part.raw(rows) for part in self.parts}
        if self.family:
            folded = self._folded(rows)
            out.update({part.name: part.raw(folded) for part in self.family})
        return out

    @property
    def row_elements(self) -> float:
        """Numbers held per null row while it is scored (sets the chunk size)."""
        if self._pooled_space:
            return float(len(self.probs))
        light = self._light_samples * (1 + (self._light_values.shape[1] if self.family else 0))
        return len(self._head) + light + (self._width if self.family else 0)

    @property
    def degenerate(self) -> bool:
        """True when the statistic is constant under H0 (nothing to test: everything pooled, or one cell)."""
        if self.test in ("pearson", "likelihood-ratio"):
            return self.pooled_cells < 2
        return not self.parts and not self.family


_MODELS: OrderedDict = OrderedDict()
_MODEL_CACHE_SIZE = 64


def _cell_maps(statistics, probs: np.ndarray, table_shape) -> list:
    """(name, statistic value of every cell [K], exact law [K_s]) for statistics of an enumerable table."""
    import torch

    if not statistics:
        return []
    if table_shape is None:
        raise ValueError("statistics on a joint table need table_shape=(q,) * n (or probs shaped like the table)")
    n, q = len(table_shape), int(table_shape[0])
    if q**n != probs.size:
        raise ValueError(f"table_shape {tuple(table_shape)} does not match probs with {probs.size} cells")
    strides = q ** torch.arange(n - 1, -1, -1)
    cells = (torch.arange(q**n).unsqueeze(1) // strides) % q
    maps = []
    for stat in statistics:
        value = stat.function(cells).to(torch.long).reshape(-1).numpy()
        size = stat.probs.numel()
        if value.min() < 0 or value.max() >= size:
            raise ValueError(f"statistic {stat.name!r} maps a cell outside 0..{size - 1}")
        law = np.bincount(value, weights=probs, minlength=size)
        if np.abs(law - stat.probs.numpy()).max() > 1e-8:
            raise ValueError(f"statistic {stat.name!r}: its law is not the table's law of that statistic")
        maps.append((stat.name, value, law))
    return maps


def null_model(test: str, probs, num_samples: int, statistics=None, table_shape=None) -> NullModel:
    """The cached seed-independent part of a decision (see ``NullModel``)."""
    probs = np.asarray(probs, np.float64)
    if table_shape is None and probs.ndim > 1:
        table_shape = probs.shape
    probs = probs.reshape(-1)
    probs = probs / probs.sum()
    if test == "auto" and not statistics:
        statistics = None
    names = tuple(s.name for s in statistics) if statistics else ()
    digest = hashlib.sha1(probs.tobytes()).hexdigest()
    key = (test, digest, int(num_samples), names, tuple(table_shape) if statistics else None)
    if statistics:  # a statistic is identified by its name and by the value it gives every cell
        maps = _cell_maps(statistics, probs, table_shape)
        key += (hashlib.sha1(b"".join(v.tobytes() for _, v, _ in maps)).hexdigest(),)
    model = _MODELS.get(key)
    if model is None:
        model = NullModel(test, probs, int(num_samples), maps if statistics else None)
        _MODELS[key] = model
        while len(_MODELS) > _MODEL_CACHE_SIZE:
            _MODELS.popitem(last=False)
    else:
        _MODELS.move_to_end(key)
    return model


def decision_model(test: str, probs, num_samples: int, alpha: float, statistics=None, table_shape=None):
    """(model, note): the null model ``decide`` uses for ``test`` at level ``alpha``.  The same as ``null_model``,
    except that ``auto`` leaves the marginal family out when simulating it jointly would cost too much to resolve
    alpha with the full resolution R = MC_RESOLUTION while the joint parts alone can (sparse tables with many
    statistics: every sample must be folded into every statistic).  The choice depends on (probs, m, alpha,
    statistics) only, never on data, so each decision stays exactly calibrated; ``note`` says when it happened."""
    uses = test in ("auto", "marginals")
    model = null_model(test, probs, num_samples, statistics if uses else None, table_shape)
    if test == "auto" and statistics and mc_plan(model.cost, alpha)[0] < MC_RESOLUTION:
        joint = null_model(test, probs, num_samples, None, table_shape)
        r_full, _, full_resolves = mc_plan(model.cost, alpha)
        r_joint, _, joint_resolves = mc_plan(joint.cost, alpha)
        if joint_resolves and (not full_resolves or r_joint > r_full):
            return joint, (f"marginal family left out of auto: simulating it jointly costs {model.cost:.0f} units per "
                           f"draw, too much to resolve alpha = {alpha:g} with {MC_RESOLUTION} exceedances")
    return model, None


# ---------------------------------------------------------------- Monte Carlo decision
@dataclass
class Decisions:
    """Decisions on R rows.  ``verdict`` [R]: "pass" / "fail" / "inconclusive"; ``reject`` [R] is verdict == "fail"
    (p <= alpha, or a sample in a zero-probability cell); ``p_value`` [R] (Monte Carlo, see the module docstring);
    ``statistic`` [R]; ``draws`` / ``exceedances`` [R] of the null simulation; ``resolution`` R and ``max_draws``
    B the plan used; ``resolves_alpha``: whether the budget could reject at alpha at all."""

    verdict: np.ndarray
    reject: np.ndarray
    p_value: np.ndarray
    statistic: np.ndarray
    draws: np.ndarray
    exceedances: np.ndarray
    resolution: int
    max_draws: int
    resolves_alpha: bool
    impossible: np.ndarray

    @property
    def inconclusive(self) -> np.ndarray:
        return self.verdict == INCONCLUSIVE


def mc_plan(cost_per_draw: float, alpha: float) -> tuple[int, int, bool]:
    """(R, B, resolves): Monte Carlo plan for level alpha at this cost per draw.  Resolves: B + 1 = ceil(R / alpha)
    with R = MC_RESOLUTION, or the largest R >= 1 the budget affords; else B = the affordable draws, R =
    MC_RESOLUTION (a row then passes only when R draws reach it, and is inconclusive otherwise)."""
    affordable = int(MC_WORK_BUDGET / max(cost_per_draw, 1.0))
    r = min(MC_RESOLUTION, int(math.floor((affordable + 1) * alpha)))
    if r >= 1:
        return r, int(math.ceil(r / alpha)) - 1, True
    return MC_RESOLUTION, max(affordable, MC_RESOLUTION), False


def _chunk_sizes(model: NullModel):
    """The fixed chunk schedule of a null stream (64, 128, 256, ... up to a memory cap): independent of alpha, so
    every alpha reads a prefix of the same draws."""
    size = MC_FIRST_CHUNK
    cap = max(MC_FIRST_CHUNK, int(MC_CHUNK_ELEMENTS // max(model.row_elements, 1)))
    while True:
        yield min(size, cap)
        size *= 2


def _generator(seed: int) -> np.random.Generator:
    # seeds derived by int64 arithmetic (seed * prime + salt) may wrap negative; SeedSequence needs
    # non-negative words, and mod 2**64 keeps every non-negative seed's stream unchanged
    return np.random.default_rng([MC_SALT, int(seed) % 2**64])


class _NullStream:
    """The null statistics of one (model, seed) in draw order, drawn chunk by chunk on demand and kept (with a
    sorted copy per chunk), so that deciding many rows, or the same seed again at another alpha, draws nothing
    twice.  Caching changes no result: the stream is a deterministic function of (model, seed)."""

    def __init__(self, model: NullModel, seed: int):
        self.model, self.generator, self.sizes = model, _generator(seed), _chunk_sizes(model)
        self.chunks: list[tuple[np.ndarray, np.ndarray]] = []
        self.nbytes = 0

    def chunk(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        while len(self.chunks) <= i:
            values = self.model.statistic(self.model.draw(self.generator, next(self.sizes)))
            self.chunks.append((values, np.sort(values)))
            self.nbytes += 2 * values.nbytes
        return self.chunks[i]


_STREAMS: OrderedDict = OrderedDict()
_STREAM_CACHE_BYTES = 256 * 2**20


def _stream(model: NullModel, seed: int) -> _NullStream:
    key = (id(model), int(seed))
    stream = _STREAMS.get(key)
    if stream is None or stream.model is not model:
        stream = _STREAMS[key] = _NullStream(model, seed)
    _STREAMS.move_to_end(key)
    return stream


def _trim_streams() -> None:
    total = sum(s.nbytes for s in _STREAMS.values())
    while total > _STREAM_CACHE_BYTES and _STREAMS:
        total -= _STREAMS.popitem(last=False)[1].nbytes


def _monte_carlo(model: NullModel, observed: np.ndarray, alpha: float, seed: int):
    """Sequential Monte Carlo on one seed's null stream for every row of ``observed`` statistics [R]: draws until
    each row is reached by R null statistics (it passes) or B draws are spent.
    Returns (exceedances [R], draws [R], R, B, resolves)."""
    r, b, resolves = mc_plan(model.cost, alpha)
    rows = len(observed)
    exceed = np.zeros(rows, dtype=np.int64)
    draws = np.zeros(rows, dtype=np.int64)
    active = np.ones(rows, dtype=bool)
    threshold = observed - _TIE * np.maximum(1.0, np.abs(observed))
    stream = _stream(model, seed)
    drawn, i = 0, 0
    while drawn < b and active.any():
        values, ordered = stream.chunk(i)
        take = min(len(values), b - drawn)
        if take < len(values):
            ordered = np.sort(values[:take])
        drawn += take
        i += 1
        idx = np.flatnonzero(active)
        before = exceed[idx].copy()
        exceed[idx] += take - np.searchsorted(ordered, threshold[idx], side="left")
        draws[idx] = drawn
        crossing = idx[exceed[idx] >= MC_STOP]
        if len(crossing):  # Besag-Clifford: the exact draw at which the MC_STOP-th exceedance came
            need = MC_STOP - before[np.searchsorted(idx, crossing)]
            for group in np.array_split(np.arange(len(crossing)), max(1, len(crossing) * take // 10_000_000 + 1)):
                hits = np.cumsum(values[None, :take] >= threshold[crossing[group], None], axis=1)
                draws[crossing[group]] = drawn - take + np.argmax(hits >= need[group, None], axis=1) + 1
            exceed[crossing] = MC_STOP
            active[crossing] = False
    _trim_streams()
    return exceed, draws, r, b, resolves


def _decide_rows(model: NullModel, reduced: np.ndarray, impossible: np.ndarray, alpha: float, seeds) -> Decisions:
    rows = len(reduced)
    statistic = model.statistic(reduced) if rows else np.zeros(0)
    exceed = np.zeros(rows, dtype=np.int64)
    draws = np.zeros(rows, dtype=np.int64)
    r, b, resolves = mc_plan(model.cost, alpha)
    if not model.degenerate:
        seeds = np.broadcast_to(np.asarray(seeds, dtype=np.int64), (rows,))
        todo = ~impossible
        for seed in np.unique(seeds[todo]):
            idx = np.flatnonzero(todo & (seeds == seed))
            e, d, r, b, resolves = _monte_carlo(model, statistic[idx], alpha, int(seed))
            exceed[idx], draws[idx] = e, d
    stopped = exceed >= MC_STOP
    if model.degenerate:
        p = np.ones(rows)
        verdict = np.full(rows, PASS, dtype=object)
    else:
        p = np.where(stopped, exceed / np.maximum(draws, 1), (exceed + 1.0) / (b + 1.0))
        verdict = np.where(exceed >= r, PASS, FAIL if resolves else INCONCLUSIVE).astype(object)
        p = np.minimum(p, 1.0)
    verdict[impossible] = FAIL
    p = np.where(impossible, 0.0, p)
    verdict = verdict.astype(str)
    return Decisions(verdict, verdict == FAIL, p, np.where(impossible, np.inf, statistic), draws, exceed, r, b,
                     resolves, impossible)


def _as_rows(counts, probs) -> tuple[np.ndarray, np.ndarray, int]:
    probs = np.asarray(probs, np.float64).reshape(-1)
    counts = np.asarray(counts)
    if counts.ndim == 1:
        counts = counts[None]
    if counts.ndim != 2 or counts.shape[1] != probs.size:
        raise ValueError(f"counts must be [R, K] with K = {probs.size} cells, got shape {counts.shape}")
    if (counts < 0).any() or (probs < 0).any() or abs(probs.sum() - 1) > 1e-6:
        raise ValueError("counts must be non-negative and probs a law (non-negative, summing to 1)")
    totals = counts.sum(1)
    if len(totals) and (totals != totals[0]).any():
        raise ValueError("every row of counts must have the same number of samples")
    m = int(totals[0]) if len(totals) else 0
    if m < 1:
        raise ValueError("counts must hold at least one sample per row")
    return counts, probs / probs.sum(), m


def decide(test: str, counts, probs, alpha: float, *, seed=0, statistics=None, table_shape=None) -> Decisions:
    """The pass/fail/inconclusive decision of ``test`` on rows of joint counts, exactly as ``check_exact`` makes it.

    test: "pearson" | "likelihood-ratio" | "corrected" | "auto" | "marginals" ("auto" includes the marginal family
    when ``statistics`` are given, as check_exact does; "marginals" needs them).
    counts: int [R, K] (or [K]), every row the same number of samples m; probs: [K] flattened table (or the table
    itself, shape (q,) * n); alpha: level of each row's test.  seed: int (every row uses that seed's null draws:
    what check_exact(seed=seed) decides on each row) or int array [R] (row r uses seeds[r]).  statistics: list of
    ExactStatistic of the table (values of every cell are computed through ``table_shape`` = (q,) * n).
    Inconclusive rows: only when the Monte Carlo budget cannot resolve alpha (``resolves_alpha`` False), never on
    power grounds (that is ``check_exact``'s business: it depends on no data).
    """
    if test not in JOINT_TESTS:
        raise ValueError(f"test must be one of {JOINT_TESTS}, got {test!r}")
    alpha = _check_alpha(alpha)
    shape = np.shape(probs) if np.ndim(probs) > 1 else table_shape
    counts, p, m = _as_rows(counts, probs)
    if test == "marginals" and not statistics:
        raise ValueError("test 'marginals' needs statistics")
    model, _ = decision_model(test, p, m, alpha, statistics, shape)
    impossible = counts[:, p <= 0].sum(1) > 0
    return _decide_rows(model, model.reduce(counts), impossible, alpha, seed)


def rejects(test: str, counts, probs, alpha: float, *, seed=0, statistics=None, table_shape=None) -> np.ndarray:
    """bool [R]: rows whose verdict is "fail" (see ``decide``; inconclusive rows are not rejections)."""
    return decide(test, counts, probs, alpha, seed=seed, statistics=statistics, table_shape=table_shape).reject


def decide_statistics(statistic_counts, statistics, alpha: float, *, seed=0) -> tuple[Decisions, list[Decisions]]:
    """The statistics-path decision (no joint table): each statistic's pooled Pearson is a Monte Carlo test on its
    own exact law at alpha / M, and the family is Holm over the M statistics (global p = smallest Holm-adjusted p).

    statistic_counts: list of M int arrays [R, K_j] (or [K_j]): counts of each statistic's categories per row;
    statistics: the M ExactStatistic (their ``probs`` are the null laws).  Returns (family decisions [R], the M
    per-statistic decisions at alpha / M).  The family fails when some statistic fails; it is inconclusive when
    none fails and some statistic is inconclusive.
    """
    alpha = _check_alpha(alpha)
    if not statistics or len(statistic_counts) != len(statistics):
        raise ValueError("decide_statistics needs one counts array per statistic (and at least one statistic)")
    size = len(statistics)
    parts = []
    for counts, stat in zip(statistic_counts, statistics):
        counts, p, m = _as_rows(counts, stat.probs.numpy())
        model = null_model("pearson", p, m)
        impossible = counts[:, p <= 0].sum(1) > 0
        salt = int(hashlib.sha1(stat.name.encode()).hexdigest()[:7], 16)  # independent streams per statistic
        seeds = np.asarray(seed, dtype=np.int64) * 1_000_003 + salt
        parts.append(_decide_rows(model, model.reduce(counts), impossible, alpha / size, seeds))
    p_values = np.stack([d.p_value for d in parts], axis=1)  # [R, M]
    adjusted = holm_adjusted(p_values)
    fail = np.any([d.reject for d in parts], axis=0)
    unresolved = np.any([d.inconclusive for d in parts], axis=0)
    verdict = np.where(fail, FAIL, np.where(unresolved, INCONCLUSIVE, PASS)).astype(str)
    worst = np.argmin(adjusted, axis=1)
    rows = np.arange(len(verdict))
    family = Decisions(verdict, fail, adjusted.min(1), np.stack([d.statistic for d in parts], 1)[rows, worst],
                       np.sum([d.draws for d in parts], axis=0), np.stack([d.exceedances for d in parts], 1)[rows, worst],
                       MC_RESOLUTION, max(d.max_draws for d in parts), all(d.resolves_alpha for d in parts),
                       np.any([d.impossible for d in parts], axis=0))
    return family, parts


def holm_adjusted(p_values: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values of every row [R, M] at once.  statsmodels' ``multipletests`` (used for the one-row
    report in ``marginal_tests``, and checked equal to this in tests/test_gof.py) takes one family per call, which
    is too slow for the 10^5 rows of a null simulation: step-down max of (M - i) p_(i), clipped at 1."""
    p_values = np.asarray(p_values, np.float64)
    size = p_values.shape[1]
    order = np.argsort(p_values, axis=1, kind="stable")
    ordered = np.take_along_axis(p_values, order, axis=1)
    stepped = np.minimum(1.0, np.maximum.accumulate(ordered * (size - np.arange(size)), axis=1))
    out = np.empty_like(stepped)
    np.put_along_axis(out, order, stepped, axis=1)
    return out


def rejects_statistics(statistic_counts, statistics, alpha: float, *, seed=0) -> np.ndarray:
    """bool [R]: rows whose statistics-path verdict is "fail" (see ``decide_statistics``)."""
    return decide_statistics(statistic_counts, statistics, alpha, seed=seed)[0].reject


# ---------------------------------------------------------------- single-sample tests (one row)
def _mc_details(d: Decisions, alpha: float) -> dict:
    draws, exceed = int(d.draws[0]), int(d.exceedances[0])
    details = {"calibration": "monte-carlo", "mc_draws": draws, "mc_exceedances": exceed,
               "mc_resolution": d.resolution, "mc_max_draws": d.max_draws, "mc_resolves_alpha": d.resolves_alpha,
               "alpha": alpha}
    if draws > 0:
        low, high = proportion_confint(exceed, draws, alpha=1 - MC_INTERVAL, method="beta")
        details["mc_p_interval"] = [float(low), float(high)]
        details["mc_interval_level"] = MC_INTERVAL
    return details


def _single(test: str, observed, probs, alpha, seed, statistics=None, table_shape=None, parts: bool = False) -> GofResult:
    """One row through ``_decide_rows`` (the function ``decide`` uses), with the evidence for a report."""
    observed, probs_flat = _as_counts(observed, probs)
    m = int(round(observed.sum()))
    cells = int((probs_flat > 0).sum())
    name = {"marginals": "marginals-maxstat"}.get(test, test)
    if m == 0:
        return GofResult(name, 0.0, 1.0, 0, 0, cells, {}, PASS if alpha is not None else None)
    level = 1e-3 if alpha is None else alpha  # without an alpha: p-values resolved down to ~1e-3
    shape = np.shape(probs) if np.ndim(probs) > 1 else table_shape
    level = _check_alpha(level)
    counts = observed.astype(np.int64)[None]
    model, note = decision_model(test, probs_flat, m, level, statistics, shape)
    reduced = model.reduce(counts)
    d = _decide_rows(model, reduced, counts[:, probs_flat <= 0].sum(1) > 0, level, seed)
    details = _mc_details(d, level)
    if note:
        details["note"] = note
    if parts:
        details["parts"] = {name: float(v[0]) for name, v in model.part_statistics(reduced).items()}
    if d.impossible[0]:
        details["impossible_cell_observed"] = True
    details.update(pooled_cells=model.pooled_cells, pooled_mass=model.pooled_mass)
    dof = model.pooled_cells - 1 if test in ("pearson", "likelihood-ratio") else cells - 1
    if test in ("pearson", "likelihood-ratio") and not d.impossible[0] and model.pooled_cells >= 2:
        details["asymptotic_p_value"] = float(stats.chi2.sf(d.statistic[0], dof))  # display only, never decides
    return GofResult(name, float(d.statistic[0]), float(d.p_value[0]), dof, m, cells, details,
                     str(d.verdict[0]) if alpha is not None else None)


def pearson(observed, probs, min_expected: float = MIN_EXPECTED, *, alpha: float | None = None,
            seed: int = 0) -> GofResult:
    """Pooled Pearson X^2 with a Monte Carlo p-value resolved at ``alpha`` (default: down to ~1e-3)."""
    if min_expected != MIN_EXPECTED:
        raise ValueError(f"min_expected is fixed at {MIN_EXPECTED} (the decision's pooling)")
    return _single("pearson", observed, probs, alpha, seed)


def likelihood_ratio(observed, probs, min_expected: float = MIN_EXPECTED, *, alpha: float | None = None,
                     seed: int = 0) -> GofResult:
    """Pooled likelihood-ratio (G) statistic with a Monte Carlo p-value (as ``pearson``)."""
    if min_expected != MIN_EXPECTED:
        raise ValueError(f"min_expected is fixed at {MIN_EXPECTED} (the decision's pooling)")
    return _single("likelihood-ratio", observed, probs, alpha, seed)


def corrected_chisquare(observed, probs, alpha: float | None = None, seed: int = 0) -> GofResult:
    """Variance-corrected chi-square, one-sided (large T rejects), Monte Carlo p-value resolved at ``alpha``."""
    result = _single("corrected", observed, probs, alpha, seed)
    k, m = result.cells, result.num_samples
    if m:
        mean, var = corrected_null_moments(k, m)
        result.details.update(null_mean=mean, null_variance=var,
                              z=(result.statistic - mean) / math.sqrt(var) if var > 0 else 0.0)
    return result


def simulate_corrected_null(probs, m: int, num_simulations: int, seed: int = 0) -> np.ndarray:
    """num_simulations draws of T under H0 (multinomial(m, probs) over positive cells), seeded."""
    model = null_model("corrected", np.asarray(probs, np.float64), m)
    generator = np.random.default_rng(seed)
    out, drawn = [], 0
    for size in _chunk_sizes(model):
        if drawn >= num_simulations:
            break
        out.append(model.statistic(model.draw(generator, min(size, num_simulations - drawn))))
        drawn += len(out[-1])
    return np.concatenate(out) if out else np.zeros(0)


def marginal_tests(values, statistics, method: str = "holm", *, alpha: float | None = None, seed: int = 0) -> GofResult:
    """The statistics-path family: pooled Pearson on each exact statistic law (Monte Carlo p-value), adjusted by
    ``method`` (Holm) over the family; the family's p-value is the smallest adjusted one.

    values: samples [N, n] (torch or numpy); statistics: list of ExactStatistic.
    """
    if not statistics:
        raise ValueError("marginal_tests needs at least one exact statistic")
    if method != "holm":
        raise ValueError("marginal_tests decides by Holm (the decision's rule); other methods are not offered")
    level = 1e-3 if alpha is None else _check_alpha(alpha)
    counts = [stat.counts(values).numpy() for stat in statistics]
    family, parts = decide_statistics(counts, statistics, level, seed=seed)
    rows, p_values = [], []
    for stat, observed, d in zip(statistics, counts, parts):
        probs = stat.probs.numpy()
        m = max(observed.sum(), 1)
        model = null_model("pearson", probs, int(observed.sum())) if observed.sum() else None
        rows.append({"statistic": stat.name, "chi2": float(d.statistic[0]), "p_value": float(d.p_value[0]),
                     "dof": (model.pooled_cells - 1) if model else 0, "verdict_at_alpha_over_M": str(d.verdict[0]),
                     "tv": 0.5 * float(np.abs(observed / m - probs).sum()), "cells": len(probs),
                     "pooled_mass": model.pooled_mass if model else 0.0, "mc_draws": int(d.draws[0])})
        p_values.append(float(d.p_value[0]))
    adjusted = multipletests(p_values, method="holm")[1]
    for row, adj in zip(rows, adjusted):
        row["p_adjusted"] = float(adj)
    worst = int(np.argmin(adjusted))
    num = int(counts[0].sum())
    details = {"statistics": rows, "correction": "holm", "worst": rows[worst]["statistic"], "alpha": level,
               "calibration": "monte-carlo per statistic at alpha / M", "mc_resolves_alpha": bool(family.resolves_alpha)}
    return GofResult("marginals-holm", rows[worst]["chi2"], float(family.p_value[0]), rows[worst]["dof"], num,
                     len(statistics), details, str(family.verdict[0]) if alpha is not None else None)


# ---------------------------------------------------------------- auto
def choose_joint_test(cells: int, num_samples: int) -> str:
    """The joint component of ``auto``: "pearson" when the table is dense (m >= 5 cells: pooling is mild),
    "pearson+corrected" when it is sparse (pooling can hide a deviation the corrected statistic sees)."""
    return "pearson" if num_samples >= 5 * cells else "pearson+corrected"


def auto_parts(cells: int, num_samples: int, with_marginals: bool) -> list[str]:
    parts = choose_joint_test(cells, num_samples).split("+")
    return parts + (["marginals"] if with_marginals else [])


def auto_test(observed, probs, values=None, statistics=None, alpha: float | None = None, seed: int = 0,
              table_shape=None) -> GofResult:
    """Max-statistic combination of pooled Pearson, the corrected statistic (sparse tables) and the marginal family
    (when statistics are given), calibrated jointly by Monte Carlo (see the module docstring).  ``values`` is not
    needed (the statistics are read off the joint counts) and kept for compatibility."""
    observed_arr, probs_arr = _as_counts(observed, probs)
    m, cells = int(round(observed_arr.sum())), int((probs_arr > 0).sum())
    parts = auto_parts(cells, m, bool(statistics))
    shape = np.shape(probs) if np.ndim(probs) > 1 else table_shape
    if statistics and shape is None and values is not None:
        n = np.shape(values)[1]
        q = int(round(len(probs_arr) ** (1.0 / n)))
        shape = (q,) * n
    result = _single("auto", observed_arr, probs_arr, alpha, seed, statistics or None, shape, parts=True)
    result.test = f"auto({'+'.join(parts)})"
    if m:
        result.details["combination"] = (f"max-statistic over {parts} (marginal family Bonferroni-scaled inside), "
                                         "calibrated jointly by Monte Carlo")
    return result


# ---------------------------------------------------------------- TV
def tv_plug_in(observed, probs) -> float:
    """0.5 sum |N_i / m - p_i|: biased upward (about 0.5 sqrt(2 (k-1) / (pi m)) under H0)."""
    observed, probs = _as_counts(observed, probs)
    m = observed.sum()
    return 0.0 if m == 0 else 0.5 * float(np.abs(observed / m - probs).sum())


def expected_null_tv(probs, m: int) -> float:
    """Exact E[TV(empirical, p)] under H0: 0.5 sum_i E|N_i/m - p_i|, by De Moivre's
    mean absolute deviation of the binomial: E|N - mp| = 2 v (1 - p) C(m, v) p^v (1-p)^(m-v), v = floor(mp) + 1."""
    probs = np.asarray(probs, np.float64).reshape(-1)
    probs = probs[(probs > 0) & (probs < 1)]
    if m <= 0 or len(probs) == 0:
        return 0.0
    v = np.floor(m * probs) + 1
    mad = 2 * v * (1 - probs) * stats.binom.pmf(v, m, probs)
    return 0.5 * float(mad.sum()) / m


def tv_bias_corrected(observed, probs) -> float:
    """Plug-in TV minus its exact expectation under H0, clipped at 0.

    Unbiased (up to the clip) at H0, and removes most of the upward bias for
    deviations smaller than the sampling noise; a point estimate, not a bound.
    """
    observed, probs = _as_counts(observed, probs)
    m = int(round(observed.sum()))
    return max(0.0, tv_plug_in(observed, probs) - expected_null_tv(probs, m))


def tv_upper_bound(tv_plug: float, cells: int, num_samples: int, confidence: float = TV_CONFIDENCE) -> float:
    """Upper confidence bound (level ``confidence``) on TV(sampler law, target), distribution-free.

    TV(sampler, target) <= TV(empirical, target) + TV(empirical, sampler); the
    last term has mean at most 0.5 sqrt((cells - 1) / N) (Cauchy-Schwarz) and
    exceeds its mean by more than sqrt(log(1 / delta) / (2 N)) with
    probability at most delta = 1 - confidence (McDiarmid: one sample moves it
    by at most 1 / N).
    """
    if num_samples == 0:
        return 1.0
    delta = 1.0 - confidence
    bound = tv_plug + 0.5 * math.sqrt(max(cells - 1, 0) / num_samples) + math.sqrt(math.log(1 / delta) / (2 * num_samples))
    return min(1.0, bound)
