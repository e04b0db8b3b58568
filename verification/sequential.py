"""Anytime-valid sequential checks: draw samples in batches, stop as soon as the evidence suffices.

Valid under optional stopping: the sample size is decided by the data, and both
error rates still hold.

Fail ("not exact"): a test martingale.  For each finite table p0 (the joint law
of a small target, or an exact statistic's law) and each prior strength c, the
predictive plug-in likelihood ratio

    E_t = prod_{s <= t} q_{s-1}(x_s) / p0(x_s),   q_{s-1}(k) = (N_{s-1}(k) + c p0(k)) / (s - 1 + c),

uses only the samples before x_s (N_{s-1} counts them), so under H0
E[q_{s-1}(x_s) / p0(x_s) | past] = sum_k q_{s-1}(k) = 1: a nonnegative
martingale starting at 1 (it is the Bayes factor of a Dirichlet(c p0) mixture
against p0).  The reported e-process is the average of these martingales over
tables and prior strengths, again a martingale.  Ville's inequality,
P(sup_t E_t >= 1 / alpha) <= alpha, bounds the false-fail rate whatever the
stopping rule; a sample in a cell of probability 0 fails outright (proof).

Pass ("TV < eps"): a time-uniform upper confidence sequence for the TV,
U_t = TV(p_hat_t, p0) + w_t.  If TV(r, p0) >= eps then r(A) - p0(A) >= eps for one
set A, and U_t < eps forces r(A) - p_hat_t(A) > w_t: the one binomial mean of A
has strayed below its boundary.  With w_t from Robbins' normal mixture for
1/4-sub-Gaussian increments (a Hoeffding-type mixture martingale),
P(exists t: r(A) - p_hat_t(A) >= w_t) <= delta, so a sampler at TV >= eps passes
with probability <= delta = false_pass_rate; no union over sets or tables is
needed (an intersection-union argument: "pass" needs every table below eps).
The boundary's one free parameter is tuned, before any sample, to the size at
which the fixed-size certified check would decide.

Inconclusive: the sample cap was reached first.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from autospec import Randomness
from verification.certified import MAX_JOINT_CELLS, min_num_samples
from verification.running import run_sampler, sampler_name

__all__ = ["SequentialTest", "SequentialResult", "check_exact_sequential", "confidence_radius", "tuned_rho",
           "PRIOR_STRENGTHS", "run_streams", "TablePlan"]

PRIOR_STRENGTHS = (0.5, 4.0, 32.0)  # prior strengths c, in units of the table's positive cells
MAX_DEFAULT_SAMPLES = 2_000_000


def confidence_radius(t, delta: float, rho: float) -> np.ndarray:
    """w_t with P(exists t: r(A) - p_hat_t(A) >= w_t) <= delta for any set A (t >= 1 samples).

    Robbins' normal mixture over exp(lambda S_t - lambda^2 V_t / 2), V_t = t / 4 (Hoeffding's lemma for a
    mean of indicators), mixing lambda ~ N(0, 1 / rho): crossing means
    S_t >= sqrt((V_t + rho) log((V_t + rho) / (rho delta^2))).
    """
    t = np.asarray(t, dtype=np.float64)
    v = t / 4.0
    return np.sqrt((v + rho) * (np.log((v + rho) / rho) - 2.0 * math.log(delta))) / t


def tuned_rho(samples: float, delta: float) -> float:
    """The rho minimising the radius at ``samples`` (fixed before the data, so any value is valid)."""
    best = minimize_scalar(lambda log_rho: float(confidence_radius(samples, delta, math.exp(log_rho))),
                           bounds=(-10.0, math.log(samples) + 5.0), method="bounded")
    return math.exp(best.x)


def _check_settings(alpha, tv, false_pass_rate) -> None:
    for name, value in (("alpha", alpha), ("false_pass_rate", false_pass_rate)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    if isinstance(tv, bool) or not isinstance(tv, (int, float)) or not 0 < tv <= 1:
        raise ValueError(f"tv must be a number in (0, 1], got {tv!r}")


def _ranks_within_rows(cells: np.ndarray) -> np.ndarray:
    """For cells [R, B]: how many earlier entries of the same row hold the same cell -> [R, B]."""
    r, b = cells.shape
    order = np.argsort(cells, axis=1, kind="stable")
    sorted_cells = np.take_along_axis(cells, order, 1)
    position = np.broadcast_to(np.arange(b), (r, b))
    new_group = np.ones((r, b), bool)
    new_group[:, 1:] = sorted_cells[:, 1:] != sorted_cells[:, :-1]
    group_start = np.maximum.accumulate(np.where(new_group, position, 0), axis=1)
    ranks = np.empty_like(cells)
    np.put_along_axis(ranks, order, position - group_start, 1)
    return ranks


class SequentialTest:
    """The e-process and the confidence sequence for R independent streams, updated batch by batch.

    tables: list of laws p0 [K_j] (numpy float64); the data arrive as one array of cell indices [R, B] per
    table.  accept_tables: indices of the tables whose TV must be below ``tv`` to pass (default all).
    weights: mixture weight of each table in the e-process (default equal), summing to 1.
    """

    def __init__(self, tables, alpha: float, tv: float, false_pass_rate: float, streams: int = 1,
                 accept_tables=None, weights=None, rho: float | None = None, tuning_samples: int | None = None):
        _check_settings(alpha, tv, false_pass_rate)
        self.tables = [np.asarray(p, dtype=np.float64).reshape(-1) for p in tables]
        if not self.tables:
            raise ValueError("SequentialTest needs at least one table")
        self.alpha, self.tv, self.delta = float(alpha), float(tv), float(false_pass_rate)
        self.accept_tables = list(range(len(self.tables))) if accept_tables is None else list(accept_tables)
        weights = np.full(len(self.tables), 1.0 / len(self.tables)) if weights is None else np.asarray(weights, float)
        if len(weights) != len(self.tables) or abs(weights.sum() - 1) > 1e-12 or (weights < 0).any():
            raise ValueError("weights must give one non-negative weight per table, summing to 1")
        if tuning_samples is None:
            tuning_samples = max(min_num_samples(self.tv, self.alpha, self.delta, probs=self.tables[j])
                                 for j in self.accept_tables)
        self.rho = tuned_rho(tuning_samples, self.delta) if rho is None else float(rho)
        self.streams = int(streams)
        # log of each martingale's mixture weight: table weight / number of prior strengths
        self.log_weights = [np.log(w / len(PRIOR_STRENGTHS)) if w > 0 else -np.inf for w in weights]
        self.strengths = [np.array(PRIOR_STRENGTHS) * max(int((p > 0).sum()), 1) for p in self.tables]
        self.counts = [np.zeros((self.streams, len(p)), np.int64) for p in self.tables]
        self.log_e = [np.zeros((len(PRIOR_STRENGTHS), self.streams)) for _ in self.tables]  # [C, R] per table
        self.t = 0
        self.verdict = np.full(self.streams, "", dtype=object)  # "fail", "pass" or "" (running)
        self.stopped_at = np.zeros(self.streams, np.int64)  # sample index at which the verdict was reached
        self.max_log_e = np.zeros(self.streams)
        self.tv_upper = np.ones(self.streams)

    @property
    def running(self) -> np.ndarray:
        return self.verdict == ""

    def log_e_value(self) -> np.ndarray:
        """log E_t [R]: the mixture over tables and prior strengths."""
        return _logsumexp0(np.concatenate([lw + le for lw, le in zip(self.log_weights, self.log_e)], 0))

    def update(self, cells) -> None:
        """Feed one batch: cells, one int array [R, B] per table (cell of each new sample in that table).

        Streams that already stopped are left as they are (their verdict is final)."""
        if len(cells) != len(self.tables):
            raise ValueError(f"update needs one cell array per table ({len(self.tables)}), got {len(cells)}")
        cells = [np.asarray(c, dtype=np.int64) for c in cells]
        b = cells[0].shape[1]
        for j, x in enumerate(cells):
            if x.shape != (self.streams, b):
                raise ValueError(f"table {j}: cells must have shape [{self.streams}, {b}], got {list(x.shape)}")
        rows = np.flatnonzero(self.running)
        paths = []  # log of each weighted martingale along the batch, [C, R', B] per table
        for j, (p0, x) in enumerate(zip(self.tables, cells)):
            x, counts = x[rows], self.counts[j][rows]
            before = np.take_along_axis(counts, x, 1) + _ranks_within_rows(x)  # N_{s-1}(x_s)
            elapsed = self.t + np.arange(b)  # s - 1
            prob = p0[x]
            c = self.strengths[j][:, None, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                step = np.log(before[None] + c * prob[None]) - np.log(elapsed[None, None] + c) - np.log(prob)[None]
            step = np.where(prob[None] > 0, step, np.inf)  # a sample of probability 0: proof of inexactness
            path = self.log_e[j][:, rows, None] + np.cumsum(step, -1)
            self.log_e[j][:, rows] = path[:, :, -1]
            paths.append(self.log_weights[j] + path)
            np.add.at(counts, (np.repeat(np.arange(len(rows)), b), x.reshape(-1)), 1)
            self.counts[j][rows] = counts
        path = _logsumexp0(np.concatenate(paths, 0))  # log E along the batch, [R', B]
        crossed = path >= math.log(1.0 / self.alpha)
        hit = crossed.any(1)
        self.stopped_at[rows[hit]] = self.t + crossed[hit].argmax(1) + 1
        self.max_log_e[rows] = np.maximum(self.max_log_e[rows], path.max(1))
        self.verdict[rows[hit]] = "fail"
        self.t += b
        # pass: the upper confidence sequence of every accept table's TV is below tv
        rows = rows[~hit]
        radius = float(confidence_radius(self.t, self.delta, self.rho))
        tv_hat = np.max([0.5 * np.abs(self.counts[j][rows] / self.t - self.tables[j]).sum(1)
                         for j in self.accept_tables], 0)
        self.tv_upper[rows] = np.minimum(1.0, tv_hat + radius)
        passed = rows[tv_hat + radius < self.tv]
        self.verdict[passed] = "pass"
        self.stopped_at[passed] = self.t


def _logsumexp0(x: np.ndarray) -> np.ndarray:
    """log sum exp over axis 0 (scipy's logsumexp, minus its array-API overhead on this hot path)."""
    top = x.max(0)
    finite = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(over="ignore", divide="ignore"):
        return finite + np.log(np.exp(x - finite).sum(0))


def run_streams(test: SequentialTest, draw, max_samples: int, batch_size: int, growth: float = 1.5) -> int:
    """Feed ``test`` batches from ``draw(size) -> list of cells [R, size]`` until every stream stopped or
    ``max_samples`` were drawn.  Batches grow geometrically (each about ``growth - 1`` times what was drawn),
    so a gross deviation stops after a small batch while a long run needs few batches.  Returns samples drawn."""
    drawn = 0
    while test.running.any() and drawn < max_samples:
        size = min(max_samples - drawn, max(batch_size, int(math.ceil((growth - 1.0) * drawn))))
        test.update(draw(size))
        drawn += size
    return drawn


@dataclass
class SequentialResult:
    sampler: str
    target: str
    verdict: str  # "fail", "pass" or "inconclusive"
    num_samples: int  # samples drawn (whole batches)
    stopped_at: int  # the sample at which the verdict was reached (num_samples when inconclusive)
    e_value: float  # E_t at the end
    max_e_value: float  # sup_t E_t over the run (the quantity Ville's inequality bounds)
    tv_upper: float  # time-uniform (1 - false_pass_rate) upper confidence bound on the TV at the end
    alpha: float
    tv: float
    false_pass_rate: float
    max_samples: int
    tv_of: str
    guarantee: str
    mean_rounds: float | None = None
    details: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"{self.verdict.upper()} (sequential): {self.sampler} on {self.target} after {self.num_samples} samples "
                f"(verdict at sample {self.stopped_at}); e-value {self.e_value:.3g} (max {self.max_e_value:.3g}, "
                f"fail at {1 / self.alpha:.3g}); TV upper bound {self.tv_upper:.4f}\n  {self.guarantee}")


def _exp(x: float) -> float:
    return math.exp(x) if x < 700 else math.inf


@dataclass
class TablePlan:
    """What a target is tested on: the tables (joint law and/or exact statistics), their e-process weights, the
    tables whose TV decides "pass", and how samples [N, n] map to cells."""

    tables: list
    weights: list
    accept: list
    tv_of: str
    joint: bool
    statistics: list
    q: int

    @classmethod
    def of(cls, target, statistics=None) -> "TablePlan":
        """Small tables (<= MAX_JOINT_CELLS cells): the joint law (weight 1/2) and the exact statistics (1/2
        shared), "pass" on the joint; larger targets: the statistics only (equal weights), "pass" on each."""
        from autospec.targets.statistics import ExactStatistic, statistic_law

        probs = getattr(target, "probs", None)
        small = isinstance(probs, torch.Tensor) and probs.numel() <= MAX_JOINT_CELLS
        stats_ = list(target.exact_statistics()) if hasattr(target, "exact_statistics") else []
        stats_ += [s if isinstance(s, ExactStatistic) else statistic_law(target, s) for s in statistics or []]
        if not small and not stats_:
            raise ValueError(f"target {getattr(target, 'name', target)!r} has neither a probability table of at most "
                             f"{MAX_JOINT_CELLS} cells nor exact statistic laws; nothing to test against")
        laws = [s.probs.numpy() for s in stats_]
        if small:
            weights = [1.0] if not stats_ else [0.5] + [0.5 / len(stats_)] * len(stats_)
            return cls([probs.to(torch.float64).reshape(-1).cpu().numpy()] + laws, weights, [0],
                       "TV between the sampler's joint law and the target's", True, stats_, target.q)
        return cls(laws, [1.0 / len(laws)] * len(laws), list(range(len(laws))),
                   f"TV between the sampler's and the target's law of some tested statistic ({len(laws)} statistics; "
                   "not the joint law)", False, stats_, target.q)

    def cells(self, values: torch.Tensor) -> list:
        """values [N, n] -> one array of cell indices [N] per table."""
        values = values.cpu().to(torch.long)
        out = []
        if self.joint:
            strides = self.q ** torch.arange(values.shape[1] - 1, -1, -1)
            out.append((values * strides).sum(-1).numpy())
        return out + [s(values).to(torch.long).cpu().numpy() for s in self.statistics]


def check_exact_sequential(sampler, target, alpha: float = 1e-4, tv: float = 0.05, false_pass_rate: float = 1e-2,
                           batch_size: int = 128, max_samples: int | None = None, seed: int = 0,
                           device: str | torch.device = "cpu", statistics=None, growth: float = 1.5) -> SequentialResult:
    """Sequential, anytime-valid version of ``check_exact``.

    Small tables (<= MAX_JOINT_CELLS cells): the e-process mixes the joint law
    (weight 1/2) and the target's exact statistics (1/2, when it has any); "pass"
    bounds the TV of the joint law.  Larger targets: exact statistics only;
    "pass" bounds the TV of each statistic's law.  max_samples (default: 10 x the
    fixed-size certified budget for ``tv``, at most 2e6) caps the run; reaching it
    gives "inconclusive".
    """
    _check_settings(alpha, tv, false_pass_rate)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(growth, (int, float)) or growth < 1:
        raise ValueError(f"growth must be a number >= 1, got {growth!r}")
    plan = TablePlan.of(target, statistics)
    # the fixed-size certified budget for tv: tunes the confidence sequence and sets the default cap
    tuning = max(min_num_samples(tv, alpha, false_pass_rate, probs=plan.tables[j]) for j in plan.accept)
    test = SequentialTest(plan.tables, alpha, tv, false_pass_rate, accept_tables=plan.accept, weights=plan.weights,
                          tuning_samples=tuning)
    if max_samples is None:
        max_samples = int(min(10 * tuning, MAX_DEFAULT_SAMPLES))
    if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
        raise ValueError(f"max_samples must be a positive int, got {max_samples!r}")
    oracle, rng = target.oracle(device), Randomness(seed, device=device)
    rounds = []

    def draw(size: int):
        out = run_sampler(sampler, oracle, size, rng)
        rounds.append(out.rounds.double())
        return [c.reshape(1, -1) for c in plan.cells(out.values)]

    drawn = run_streams(test, draw, max_samples, batch_size, growth)
    verdict = str(test.verdict[0]) or "inconclusive"
    guarantee = (f"if the sampler is exact, this check fails with probability <= {alpha:g} whatever the stopping "
                 f"(Ville's inequality on a test martingale); if the {plan.tv_of} is >= {tv:g}, it passes with probability "
                 f"<= {false_pass_rate:g} (time-uniform confidence sequence); otherwise, or at the cap of "
                 f"{max_samples} samples, it may end inconclusive.")
    return SequentialResult(
        sampler=sampler_name(sampler), target=str(getattr(target, "name", type(target).__name__)), verdict=verdict,
        num_samples=drawn, stopped_at=int(test.stopped_at[0]) if verdict != "inconclusive" else drawn,
        e_value=_exp(float(test.log_e_value()[0])), max_e_value=_exp(float(test.max_log_e[0])),
        tv_upper=float(test.tv_upper[0]), alpha=alpha, tv=tv, false_pass_rate=false_pass_rate,
        max_samples=max_samples, tv_of=plan.tv_of, guarantee=guarantee,
        mean_rounds=float(torch.cat(rounds).mean()) if rounds else None,
        details={"tables": len(plan.tables), "rho": test.rho, "batches": len(rounds)})
