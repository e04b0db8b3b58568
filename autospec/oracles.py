"""Oracle protocols and the counting wrapper that measures parallel depth.

Any-order autoregressive setting: a target on [q]^n is reached only through
``marginals(partial)``: ``partial`` is a LongTensor [B, n] with -1 for free
coordinates, the answer a float64 tensor [B, n, q] holding the law of every
coordinate given the pinned ones (a pinned coordinate answers its one-hot).
A pinning of probability zero is a normal event (a draft can be impossible):
the oracle answers a finite placeholder and marks the row infeasible.

Positions: ``marginals(partial, positions=P)`` with P a LongTensor [B, k]
asks only for the laws of coordinates P[b, :] of row b and answers
[B, k, q] (entry [b, j] is the law of coordinate P[b, j]).  A sampler that
uses a few coordinates per row asks for those; the structured oracles answer
in time proportional to what is asked.  Oracles that only implement the dense
``marginals(partial)`` keep working: the counting wrapper slices their answer.

Sessions: a sampler whose rows only gain pins (Sequential: one pin per row
per round) opens ``oracle.open_session(partial)`` and then alternates
``session.marginals(positions)`` (one round) with ``session.pin(...)`` (no
round: it says which value was drawn, the oracle learns nothing it could not
read from the next query's row).  The oracle keeps incremental state (counts,
nearest pins, a rank-one-updated kernel) instead of reading [B, n] each
round; the default session keeps x and asks ``answer_at``.

Depth accounting: one call of the oracle is one parallel round.  The counting
wrapper charges each sample one round for every call it takes part in and one
query for every row it owns, whatever positions the row asks for (a query is
a row of conditionals, as in the counting-oracle model; asking for fewer
positions makes it cheaper to compute, not a smaller query); sampler code
reports nothing but which sample a row belongs to (``sample_ids``).
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import torch

__all__ = [
    "OracleAnswer",
    "MarginalOracle",
    "ConditionalOracle",
    "OracleError",
    "RoundCounter",
    "CountingOracle",
    "check_partial",
    "check_positions",
    "placeholder_marginals",
    "at_positions",
    "PrefixRows",
    "OracleSession",
    "CountedSession",
]


class OracleError(RuntimeError):
    """An oracle returned an answer that breaks the protocol."""


class OracleAnswer:
    """marginals [B, n, q] (or [B, k, q] at asked positions) float64; feasible [B] bool (False: the
    pinning has probability 0).

    ``feasible`` may be given as a function computing it on first use: samplers never read it, and
    for some families it costs more than the asked laws.
    """

    def __init__(self, marginals: torch.Tensor, feasible: torch.Tensor | Callable[[], torch.Tensor]):
        self.marginals = marginals
        self._feasible = feasible

    @property
    def feasible(self) -> torch.Tensor:
        if callable(self._feasible):
            self._feasible = self._feasible()
        return self._feasible

    @feasible.setter
    def feasible(self, value: torch.Tensor) -> None:
        self._feasible = value

    def __repr__(self) -> str:
        return f"OracleAnswer(marginals={list(self.marginals.shape)}, feasible={self.feasible.tolist()})"


@runtime_checkable
class MarginalOracle(Protocol):
    """What a sampler may use: ``n``, ``q`` and ``marginals``."""

    n: int
    q: int

    def marginals(self, partial: torch.Tensor, sample_ids: torch.Tensor | None = None) -> torch.Tensor:
        """partial [B, n] -> [B, n, q] (``positions`` [B, k] -> [B, k, q] where the oracle supports it)."""
        ...


def check_partial(partial: object, n: int, q: int, name: str = "partial") -> torch.Tensor:
    """Validate a batch of partial assignments: LongTensor [B, n] with values in -1..q-1."""
    if not isinstance(partial, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [B, {n}], got {type(partial).__name__}")
    if partial.dtype.is_floating_point or partial.dtype == torch.bool or partial.is_complex():
        raise TypeError(f"{name} must be an integer tensor (-1 for free coordinates), got dtype {partial.dtype}")
    if partial.dim() != 2 or partial.shape[1] != n:
        raise ValueError(f"{name} must have shape [B, {n}], got {list(partial.shape)}")
    if partial.numel() and not -1 <= int((extremes := torch.aminmax(partial)).min) <= int(extremes.max) < q:
        raise ValueError(
            f"{name} values must be -1 (free) or in [0, {q - 1}], got values in "
            f"[{int(partial.min())}, {int(partial.max())}]"
        )
    return partial.to(torch.long)


def check_positions(positions: object, batch: int, n: int) -> torch.Tensor:
    """Validate the positions a query asks for: LongTensor [B, k] with values in 0..n-1."""
    if not isinstance(positions, torch.Tensor):
        raise TypeError(f"positions must be a torch.Tensor of shape [{batch}, k], got {type(positions).__name__}")
    if positions.dtype.is_floating_point or positions.dtype == torch.bool or positions.is_complex():
        raise TypeError(f"positions must be an integer tensor of coordinates, got dtype {positions.dtype}")
    if positions.dim() != 2 or positions.shape[0] != batch:
        raise ValueError(f"positions must have shape [{batch}, k] (one row per query row), got {list(positions.shape)}")
    if positions.numel() and bool(((positions < 0) | (positions >= n)).any()):
        raise ValueError(f"positions must lie in [0, {n - 1}], got values in [{int(positions.min())}, {int(positions.max())}]")
    return positions.to(torch.long)


def at_positions(marginals: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Dense answer [B, n, q] -> the laws at positions [B, k]: [B, k, q]."""
    return marginals.gather(1, positions.unsqueeze(-1).expand(*positions.shape, marginals.shape[-1]))


def placeholder_marginals(partial: torch.Tensor, q: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Uniform law on free coordinates, one-hot on pinned ones: [B, n, q].

    The finite answer oracles give at infeasible pinnings; samplers multiply it
    by zero (it must never be NaN).
    """
    out = torch.full((*partial.shape, q), 1.0 / q, dtype=dtype, device=partial.device)
    pinned = partial >= 0
    if bool(pinned.any()):
        one_hot = torch.nn.functional.one_hot(partial.clamp(min=0), q).to(dtype)
        out = torch.where(pinned.unsqueeze(-1), one_hot, out)
    return out


class PrefixRows:
    """Query rows given as prefixes of drafts, without writing them out ([R, n] each round).

    base [A, n] (partial assignments), columns / values / drafted [A, K] (drafted: which slots are
    real), owner [R] in 0..A-1 and length [R] in 0..K: row r is base[owner[r]] with
    columns[owner[r], m] pinned to values[owner[r], m] for every drafted slot m < length[r].  Drafted
    columns must be free in base and distinct within a row (the counting wrapper checks).
    ``materialise()`` writes the rows out; structured oracles answer from base and the deltas instead.

    Rows made by ``CountedSession.prefix_rows`` also carry ``session`` (the inner oracle's own
    ``OracleSession``, or None) and ``session_rows`` [A]: base[a] is row session_rows[a] of the session,
    so an oracle may read the session's incremental state instead of recomputing it from base.
    """

    def __init__(self, base: torch.Tensor, columns: torch.Tensor, values: torch.Tensor, drafted: torch.Tensor,
                 owner: torch.Tensor, length: torch.Tensor):
        self.base, self.columns, self.values, self.drafted = base, columns, values, drafted
        self.owner, self.length = owner, length
        self.session_rows: torch.Tensor | None = None
        self._issued: tuple | None = None  # (counted session, its version, base's version) when made by one
        self._slots: torch.Tensor | None = None
        self._of_base: dict = {}  # per-base work shared with subsets (the same round's reread)

    @property
    def session(self) -> "OracleSession | None":
        """The inner oracle's own session these rows were made from (None: none, or not made by a session)."""
        return None if self._issued is None else self._issued[0].inner_state

    @property
    def num_rows(self) -> int:
        return int(self.owner.shape[0])

    @property
    def n(self) -> int:
        return int(self.base.shape[1])

    def active(self) -> torch.Tensor:
        """[R, K]: which slots row r pins (drafted and before its length)."""
        K = self.columns.shape[1]
        steps = torch.arange(K, device=self.columns.device)
        return self.drafted[self.owner] & (steps.unsqueeze(0) < self.length.unsqueeze(1))

    def slots(self) -> torch.Tensor:
        """[A, n]: the drafted slot of each column (K where none)."""
        if self._slots is None:
            A, K = self.columns.shape
            n = self.n
            out = torch.full((A, n + 1), K, dtype=torch.long, device=self.base.device)
            target = torch.where(self.drafted, self.columns, torch.full_like(self.columns, n))
            out.scatter_(1, target, torch.arange(K, device=self.base.device).expand(A, K).contiguous())
            self._slots = out[:, :n]
        return self._slots

    def pins_at(self, positions: torch.Tensor) -> torch.Tensor:
        """positions [R, k] (values in 0..n-1) -> each row's pinned value there, -1 where free: [R, k]."""
        owner = self.owner.unsqueeze(1).expand_as(positions)
        base_pin = self.base[owner, positions]
        K = self.columns.shape[1]
        if K == 0:
            return base_pin
        slot = self.slots()[owner, positions]
        from_draft = self.values[owner, slot.clamp(max=K - 1)]
        pinned_here = (slot < self.length.unsqueeze(1)) & (base_pin < 0)
        return torch.where(pinned_here, from_draft, base_pin)

    def materialise(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The rows written out ([R, n], or [len(rows), n] for the listed rows)."""
        owner = self.owner if rows is None else self.owner[rows]
        length = self.length if rows is None else self.length[rows]
        K = self.columns.shape[1]
        x = self.base[owner]
        if K == 0:
            return x
        mask = self.drafted[owner] & (torch.arange(K, device=x.device).unsqueeze(0) < length.unsqueeze(1))
        n = x.shape[1]
        padded = torch.cat([x, x.new_full((x.shape[0], 1), -1)], dim=1)
        padded.scatter_(1, torch.where(mask, self.columns[owner], torch.full_like(mask, n, dtype=torch.long)), self.values[owner])
        return padded[:, :n]

    def of_base(self, name: str, compute):
        """compute(base), done once for these rows and every subset of them (a reread of the same round)
        while base is unchanged: an oracle's per-sample work on x (counts, scans) is not repeated."""
        key = (name, self.base._version)
        if key not in self._of_base:
            self._of_base[key] = compute(self.base)
        return self._of_base[key]

    def subset(self, rows: torch.Tensor) -> "PrefixRows":
        out = PrefixRows(self.base, self.columns, self.values, self.drafted, self.owner[rows], self.length[rows])
        out._slots, out._of_base = self._slots, self._of_base
        out.session_rows, out._issued = self.session_rows, self._issued
        return out


def check_prefix_rows(rows: object, n: int, q: int) -> PrefixRows:
    """Validate a PrefixRows query (shapes, ranges, drafted columns free in base and distinct per row)."""
    if not isinstance(rows, PrefixRows):
        raise TypeError(f"rows must be a PrefixRows, got {type(rows).__name__}")
    base = check_partial(rows.base, n, q, "rows.base")
    A = base.shape[0]
    for name in ("columns", "values", "owner", "length"):
        value = getattr(rows, name)
        if not isinstance(value, torch.Tensor) or value.dtype.is_floating_point or value.dtype == torch.bool:
            raise TypeError(f"rows.{name} must be an integer tensor")
    if not isinstance(rows.drafted, torch.Tensor) or rows.drafted.dtype != torch.bool:
        raise TypeError("rows.drafted must be a bool tensor [A, K]")
    if rows.columns.dim() != 2 or rows.columns.shape[0] != A or rows.values.shape != rows.columns.shape or \
            rows.drafted.shape != rows.columns.shape:
        raise ValueError(f"rows.columns, rows.values and rows.drafted must all have shape [{A}, K], got "
                         f"{list(rows.columns.shape)}, {list(rows.values.shape)}, {list(rows.drafted.shape)}")
    K = rows.columns.shape[1]
    if rows.owner.dim() != 1 or rows.length.shape != rows.owner.shape:
        raise ValueError(f"rows.owner and rows.length must have shape [R], got {list(rows.owner.shape)}, {list(rows.length.shape)}")
    if rows.owner.numel() and bool(((rows.owner < 0) | (rows.owner >= A)).any()):
        raise ValueError(f"rows.owner must lie in [0, {A - 1}]")
    if rows.length.numel() and bool(((rows.length < 0) | (rows.length > K)).any()):
        raise ValueError(f"rows.length must lie in [0, {K}]")
    if K and bool(rows.drafted.any()):
        cols, vals = rows.columns[rows.drafted], rows.values[rows.drafted]
        if bool(((cols < 0) | (cols >= n)).any()) or bool(((vals < 0) | (vals >= q)).any()):
            raise ValueError(f"drafted rows.columns must lie in [0, {n - 1}] and rows.values in [0, {q - 1}]")
        if bool((base.gather(1, rows.columns.clamp(0, n - 1))[rows.drafted] >= 0).any()):
            raise ValueError("a drafted column is already pinned in rows.base (drafted columns must be free)")
        # repeats within a row: sort each row's drafted columns (undrafted slots get distinct values past n)
        spare = n + torch.arange(K, device=base.device)
        ordered = torch.where(rows.drafted, rows.columns, spare).sort(1).values  # O(A K log K), not O(A n)
        if K > 1 and bool((ordered[:, 1:] == ordered[:, :-1]).any()):
            raise ValueError("rows.columns repeats a drafted column within a row")
    rows.base = base
    return rows


class OracleSession:
    """Rows that only gain pins, asked round after round; the oracle may keep incremental state.

    ``x`` [B, n] holds the rows' pins (read it, never write it).  ``pin(rows, positions, values)`` pins
    coordinate positions[j] of row rows[j] to values[j] (rows None: every row in order, one pin each);
    the coordinate must be free.  ``answer_at(positions [B, k])`` answers every row at its asked
    coordinates exactly as ``oracle.answer_at(x, positions)`` would.  This default keeps x and asks
    ``answer_at``; structured oracles subclass it with state updated by each pin.
    """

    def __init__(self, oracle: "ConditionalOracle", partial: torch.Tensor):
        self.oracle = oracle
        self.x = partial.clone()
        self.version = 0  # pins so far: an answer's lazy feasibility is read against the pins it answered

    def feasible_now(self, compute: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
        """A lazy ``feasible`` for an answer of this session: computed from the session's state when read,
        which must be before the next pin (the state is not copied every round for a flag samplers never read)."""
        version = self.version

        def feasible() -> torch.Tensor:
            if self.version != version:
                raise RuntimeError("the feasibility of a session's answer must be read before the session's next pin")
            return compute()

        return feasible

    def pin(self, rows: torch.Tensor | None, positions: torch.Tensor, values: torch.Tensor) -> None:
        self.version += 1
        if rows is None:
            self.x.scatter_(1, positions.unsqueeze(1), values.unsqueeze(1))
        else:
            self.x[rows, positions] = values

    def answer_at(self, positions: torch.Tensor) -> OracleAnswer:
        return self.oracle.answer_at(self.x, positions)


def _own_session(oracle: object) -> bool:
    """Whether the oracle's session is written for its own answers: the class that defines
    ``open_session`` must also be (a subclass of) the one that defines ``answer`` and ``answer_at``, so
    a wrapper overriding the answers of a structured oracle is never bypassed by the parent's state."""
    if not isinstance(oracle, ConditionalOracle):
        return False
    mro = type(oracle).__mro__

    def owner(name: str) -> type:
        return next(c for c in mro if name in vars(c))

    session_owner = owner("open_session")
    return session_owner is not ConditionalOracle and all(
        issubclass(session_owner, owner(name)) for name in ("answer", "answer_at"))


class ConditionalOracle:
    """Base class for exact oracles: implement ``answer(partial) -> OracleAnswer``.

    ``answer_at(partial, positions)`` answers only the asked positions
    ([B, k, q]); by default it slices the dense answer, and oracles that can
    do better override it.
    """

    n: int
    q: int
    name: str = "oracle"
    # True where answer_prefixes reads a PrefixRows' session (its own incremental state): the speculative
    # samplers then keep such a session across rounds; otherwise their session only holds x.
    prefixes_from_session: bool = False

    def answer(self, partial: torch.Tensor) -> OracleAnswer:
        raise NotImplementedError

    def answer_at(self, partial: torch.Tensor, positions: torch.Tensor) -> OracleAnswer:
        dense = self.answer(partial)
        return OracleAnswer(at_positions(dense.marginals, positions.to(dense.marginals.device)), dense.feasible)

    def answer_prefixes(self, rows: PrefixRows, positions: torch.Tensor) -> OracleAnswer:
        """Laws at positions [R, k] of the rows a PrefixRows describes: [R, k, q].  By default the rows
        are written out and ``answer_at`` answers them; structured oracles answer from base and deltas."""
        return self.answer_at(rows.materialise(), positions)

    def open_session(self, partial: torch.Tensor) -> OracleSession:
        """Incremental state for rows that only gain pins (see ``OracleSession``)."""
        return OracleSession(self, partial)

    def query(self, partial: torch.Tensor, sample_ids: torch.Tensor | None = None,
              positions: torch.Tensor | None = None) -> OracleAnswer:
        partial = check_partial(partial, self.n, self.q)
        if positions is None:
            return self.answer(partial)
        return self.answer_at(partial, check_positions(positions, partial.shape[0], self.n))

    def marginals(self, partial: torch.Tensor, sample_ids: torch.Tensor | None = None,
                  positions: torch.Tensor | None = None) -> torch.Tensor:
        return self.query(partial, sample_ids, positions).marginals

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n={self.n}, q={self.q})"


class RoundCounter:
    """Per-sample rounds and queries for ``num_samples`` samples.

    ``charge(batch_size, sample_ids)`` records one oracle call: every sample
    owning a row gets one round and one query per row.  Without ``sample_ids``
    the call is charged to every sample (a lock-step batch) and its rows are
    spread as evenly as integers allow, so totals stay exact.
    """

    def __init__(self, num_samples: int, device: torch.device | str = "cpu"):
        self.num_samples = num_samples
        self.rounds = torch.zeros(num_samples, dtype=torch.long, device=device)
        self.queries = torch.zeros(num_samples, dtype=torch.long, device=device)
        self.calls = 0
        self.total_queries = 0

    def charge(self, batch_size: int, sample_ids: torch.Tensor | None) -> None:
        self.calls += 1
        self.total_queries += batch_size
        if self.num_samples == 0:
            return
        if sample_ids is None:
            self.rounds += 1
            share, rest = divmod(batch_size, self.num_samples)
            self.queries += share
            if rest:
                self.queries[:rest] += 1
            return
        ids = sample_ids.to(device=self.rounds.device, dtype=torch.long)
        if ids.shape != (batch_size,):
            raise ValueError(f"sample_ids must have shape [{batch_size}] (one per query row), got {list(ids.shape)}")
        if batch_size and bool(((ids < 0) | (ids >= self.num_samples)).any()):
            raise ValueError(f"sample_ids must lie in [0, {self.num_samples - 1}]")
        counts = torch.bincount(ids, minlength=self.num_samples)
        self.queries += counts
        self.rounds += (counts > 0).to(torch.long)


class CountingOracle(ConditionalOracle):
    """Wraps any oracle: validates every query and answer, counts rounds and queries.

    One query is one row of the answer, the conditionals of all n coordinates
    ([n, q]): n * q counting queries in the counting-oracle model, which is
    the unit to use when comparing ``queries`` with theory.

    ``tolerance`` bounds how far an answer's rows may be from summing to 1 (and
    how negative an entry may be).  An invalid answer raises ``OracleError``
    naming the oracle, the row and what was expected.
    """

    def __init__(self, oracle: MarginalOracle, num_samples: int, tolerance: float = 1e-9, device=None):
        for attribute in ("n", "q", "marginals"):
            if not hasattr(oracle, attribute):
                raise TypeError(f"oracle {oracle!r} has no attribute {attribute!r}; expected n, q and marginals()")
        self.inner = oracle
        self.n = int(oracle.n)
        self.q = int(oracle.q)
        self.name = getattr(oracle, "name", type(oracle).__name__)
        self.tolerance = tolerance
        self.counter = RoundCounter(num_samples, device=device or "cpu")
        self._last: torch.Tensor | None = None  # the last call's partial assignments (for reread)
        self._last_dense: torch.Tensor | None = None  # a dense-only oracle's last full answer

    @property
    def rounds(self) -> torch.Tensor:
        return self.counter.rounds

    @property
    def queries(self) -> torch.Tensor:
        return self.counter.queries

    def query(self, partial: torch.Tensor, sample_ids: torch.Tensor | None = None,
              positions: torch.Tensor | None = None) -> OracleAnswer:
        """One round.  positions [B, k] (optional): answer [B, k, q] for those coordinates only."""
        partial = check_partial(partial, self.n, self.q)
        if positions is not None:
            positions = check_positions(positions, partial.shape[0], self.n)
        self.counter.charge(partial.shape[0], sample_ids)
        self._last, self._last_dense = partial, None
        answer = self._answer(partial, sample_ids, positions)
        answer.marginals = self._validated(answer.marginals, partial, positions)
        return answer

    def _answer(self, partial: torch.Tensor, sample_ids: torch.Tensor | None,
                positions: torch.Tensor | None) -> OracleAnswer:
        """The inner oracle's answer to validated rows (not yet validated itself, no round charged here)."""
        if isinstance(self.inner, ConditionalOracle) and type(self.inner).query is not ConditionalOracle.query:
            answer = self.inner.query(partial, sample_ids, positions)  # e.g. a counting oracle inside: it counts too
        elif isinstance(self.inner, ConditionalOracle) and positions is not None and \
                type(self.inner).answer_at is ConditionalOracle.answer_at:
            # no positional answer of its own: keep the dense one, a reread of this call slices it again
            dense = self.inner.answer(partial)
            self._last_dense = dense.marginals
            answer = OracleAnswer(at_positions(dense.marginals, positions.to(dense.marginals.device)), dense.feasible)
        elif isinstance(self.inner, ConditionalOracle):  # validated above: straight to the answer
            answer = self.inner.answer(partial) if positions is None else self.inner.answer_at(partial, positions)
        else:  # a dense-only oracle: answer every position, validate and keep the asked ones
            marginals = self.inner.marginals(partial)
            answer = OracleAnswer(marginals, torch.ones(partial.shape[0], dtype=torch.bool, device=partial.device))
            if positions is not None:
                self._check_shape(marginals, (partial.shape[0], self.n, self.q))
                self._last_dense = marginals
                answer.marginals = at_positions(marginals, positions.to(marginals.device))
        return answer

    def open_session(self, partial: torch.Tensor, sample_ids: torch.Tensor | None = None,
                     for_prefixes: bool = False) -> "CountedSession":
        """A session over rows ``partial`` [B, n] (see ``OracleSession``): every ``marginals`` call is one
        round charged to ``sample_ids`` (None: a lock-step batch, as in ``query``), every answer validated.
        for_prefixes: the session is for ``prefix_rows`` rounds (the speculative samplers); the inner
        oracle's own state is kept only if its answer_prefixes reads it."""
        return CountedSession(self, check_partial(partial, self.n, self.q), sample_ids, for_prefixes)

    def query_prefixes(self, rows: PrefixRows, sample_ids: torch.Tensor | None = None,
                       positions: torch.Tensor | None = None) -> torch.Tensor:
        """One round asking the rows a ``PrefixRows`` describes (R rows, R queries, as ``query`` on them
        written out) at positions [R, k]: -> [R, k, q].  An oracle with its own ``answer_prefixes``
        answers from base and deltas; any other gets the rows written out."""
        rows = check_prefix_rows(rows, self.n, self.q)
        if positions is None:
            raise ValueError("query_prefixes needs positions [R, k]")
        self._check_issued(rows)
        positions = check_positions(positions, rows.num_rows, self.n)
        inner = self.inner
        if not (isinstance(inner, ConditionalOracle) and type(inner).query is ConditionalOracle.query
                and type(inner).answer_prefixes is not ConditionalOracle.answer_prefixes):
            return self.query(rows.materialise(), sample_ids, positions).marginals
        self.counter.charge(rows.num_rows, sample_ids)
        self._last, self._last_dense = rows, None
        marginals = inner.answer_prefixes(rows, positions).marginals
        return self._validated(marginals, rows, positions, pins=rows.pins_at(positions))

    def reread(self, rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """More positions of rows the last call asked: rows [R] (indices into that call's batch),
        positions [R, k] -> [R, k, q].  No round is charged: a query answers its whole row of
        conditionals, the caller had only read part of it."""
        if self._last is None:
            raise RuntimeError("reread() reads the answer of the last call; no call has been made")
        if isinstance(self._last, PrefixRows):  # the last call was query_prefixes on an oracle answering them
            self._check_issued(self._last, "reread")
            rows = rows.to(device=self._last.base.device, dtype=torch.long)
            subset = self._last.subset(rows)
            positions = check_positions(positions, subset.num_rows, self.n)
            marginals = self.inner.answer_prefixes(subset, positions).marginals
            return self._validated(marginals, subset, positions, pins=subset.pins_at(positions))
        rows = rows.to(device=self._last.device, dtype=torch.long)
        partial = self._last[rows]
        positions = check_positions(positions, partial.shape[0], self.n)
        if self._last_dense is not None:
            marginals = at_positions(self._last_dense[rows.to(self._last_dense.device)], positions.to(self._last_dense.device))
        elif isinstance(self.inner, ConditionalOracle) and type(self.inner).query is not ConditionalOracle.query:
            marginals = self.inner.marginals(partial, positions=positions)  # its own counting, if any, charges it
        elif isinstance(self.inner, ConditionalOracle):
            marginals = self.inner.answer_at(partial, positions).marginals
        else:
            marginals = at_positions(self.inner.marginals(partial), positions.to(partial.device))
        return self._validated(marginals, partial, positions)

    def _check_issued(self, rows: PrefixRows, what: str = "query_prefixes") -> None:
        """Rows that carry a session must come from this oracle's session, unchanged since: base written
        and the session pinned by nobody in between (an oracle reads the session's state as base's)."""
        issued = rows._issued
        if issued is None:
            return
        if issued[0].counting is not self:
            raise ValueError(f"{what}: rows.session must come from this oracle's CountedSession.prefix_rows")
        if issued[0].version != issued[1] or rows.base._version != issued[2]:
            raise ValueError(f"{what}: the rows' session was pinned (or their base written) after prefix_rows made "
                             "them; ask, and reread, before pinning")

    def _check_shape(self, marginals: object, expected: tuple[int, ...]) -> None:
        who = f"oracle {self.name!r}"
        if not isinstance(marginals, torch.Tensor):
            raise OracleError(f"{who} returned {type(marginals).__name__}, expected a tensor of shape {list(expected)}")
        if tuple(marginals.shape) != expected:
            raise OracleError(f"{who} returned shape {list(marginals.shape)}, expected {list(expected)} ([B, n, q])")

    def _validated(self, marginals: object, partial, positions: torch.Tensor | None = None,
                   pins: torch.Tensor | None = None) -> torch.Tensor:
        """The answer, checked: finite, non-negative laws summing to 1, one-hot at pinned coordinates.
        partial: [B, n], or a PrefixRows with pins (its values at positions) given."""
        who = f"oracle {self.name!r}"
        if pins is not None:
            if not isinstance(marginals, torch.Tensor) or tuple(marginals.shape) != (*positions.shape, self.q):
                shape = list(marginals.shape) if isinstance(marginals, torch.Tensor) else type(marginals).__name__
                raise OracleError(f"{who} returned {shape} for positions {list(positions.shape)}, expected "
                                  f"{[*positions.shape, self.q]} ([R, k, q])")
        elif positions is None:
            self._check_shape(marginals, (partial.shape[0], self.n, self.q))
            pins = partial
        else:
            if not isinstance(marginals, torch.Tensor) or tuple(marginals.shape) != (*positions.shape, self.q):
                shape = list(marginals.shape) if isinstance(marginals, torch.Tensor) else type(marginals).__name__
                raise OracleError(f"{who} returned {shape} for positions {list(positions.shape)}, expected "
                                  f"{[*positions.shape, self.q]} ([B, k, q])")
            pins = partial.gather(1, positions.to(partial.device))
        if not marginals.is_floating_point():
            raise OracleError(f"{who} returned dtype {marginals.dtype}, expected floating probabilities")
        marginals = marginals.to(torch.float64)
        if marginals.numel() == 0:
            return marginals
        # every check at once, one synchronisation (NaN fails every comparison; no pinned coordinate asked is
        # the common case, a pinned one is checked below); the checks below name the fault
        lowest, off, pinned_asked = torch.stack([marginals.amin(), (marginals.sum(-1) - 1).abs().amax(),
                                                 pins.amax().to(marginals.dtype)]).tolist()
        if lowest >= -self.tolerance and off <= self.tolerance and pinned_asked < 0:
            return marginals.clamp(min=0.0)  # a fresh tensor: the caller may write into it, never the oracle's own

        def coordinate(row: int, j: int) -> int:
            return j if positions is None else int(positions[row, j])

        finite = torch.isfinite(marginals).all(-1)
        if not bool(finite.all()):
            row, coord = torch.nonzero(~finite)[0].tolist()
            coord = coordinate(row, coord)
            raise OracleError(
                f"{who} returned a non-finite law for coordinate {coord} of query row {row} "
                f"(pinning {_row(partial, row)}); infeasible pinnings must get a finite placeholder"
            )
        if bool((marginals < -self.tolerance).any()):
            row, j, value = torch.nonzero(marginals < -self.tolerance)[0].tolist()
            raise OracleError(
                f"{who} returned a negative probability {marginals[row, j, value].item():.3g} "
                f"at row {row}, coordinate {coordinate(row, j)}, value {value}"
            )
        sums = marginals.sum(-1)
        off = (sums - 1).abs() > self.tolerance
        if bool(off.any()):
            row, j = torch.nonzero(off)[0].tolist()
            raise OracleError(
                f"{who} returned a law summing to {sums[row, j].item():.12g} (expected 1 within "
                f"{self.tolerance:g}) for coordinate {coordinate(row, j)} of query row {row}"
            )
        pinned = pins >= 0
        if bool(pinned.any()):
            mass_on_pin = marginals.gather(-1, pins.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            wrong = pinned & (mass_on_pin < 1 - self.tolerance)
            if bool(wrong.any()):
                row, j = torch.nonzero(wrong)[0].tolist()
                raise OracleError(
                    f"{who} gave pinned coordinate {coordinate(row, j)} (value {int(pins[row, j])}) of query row "
                    f"{row} mass {mass_on_pin[row, j].item():.6g} on its pinned value, expected 1"
                )
        return marginals.clamp(min=0.0)


class CountedSession(OracleSession):
    """A counting oracle's session: each ``marginals(positions)`` / ``answer_at`` is one round, charged and
    validated as ``query`` would; ``pin`` is checked (coordinates in range and free, values in [0, q))
    and is no round (it only says which value the sampler drew)."""

    def __init__(self, counting: CountingOracle, partial: torch.Tensor, sample_ids: torch.Tensor | None,
                 for_prefixes: bool = False):
        self.counting, self.sample_ids = counting, sample_ids
        inner = counting.inner
        self.inner_state: OracleSession | None = None  # the inner oracle's own session, if it keeps one
        if isinstance(inner, CountingOracle):
            self.state: OracleSession = inner.open_session(partial, sample_ids, for_prefixes)  # it counts too
        elif _own_session(inner) and (not for_prefixes or inner.prefixes_from_session):
            self.state = self.inner_state = inner.open_session(partial)
        else:
            self.state = _QueriedSession(counting, partial, sample_ids)
        counting._last, counting._last_dense = None, None

    @property
    def x(self) -> torch.Tensor:
        return self.state.x

    @property
    def version(self) -> int:  # pins so far (the state's count)
        return self.state.version

    def pin(self, rows: torch.Tensor | None, positions: torch.Tensor, values: torch.Tensor) -> None:
        x = self.state.x
        B, n = x.shape
        for name, value in (("positions", positions), ("values", values)) + ((("rows", rows),) if rows is not None else ()):
            if not isinstance(value, torch.Tensor) or value.dtype.is_floating_point or value.dtype == torch.bool:
                raise TypeError(f"pin: {name} must be an integer tensor, got "
                                f"{value.dtype if isinstance(value, torch.Tensor) else type(value).__name__}")
        expected = [B] if rows is None else list(rows.shape)
        if (rows is not None and rows.dim() != 1) or list(positions.shape) != expected or list(values.shape) != expected:
            raise ValueError(f"pin: rows, positions and values must be 1-D of one length ({'one per row, ' if rows is None else ''}"
                             f"{expected}), got positions {list(positions.shape)}, values {list(values.shape)}")
        if not positions.numel():
            return
        positions, values = positions.to(device=x.device, dtype=torch.long), values.to(device=x.device, dtype=torch.long)
        if rows is None:  # the common case (a Sequential round): range and freeness in one synchronisation
            at = positions.clamp(0, n - 1)
            bad = (at != positions) | (values.clamp(0, self.counting.q - 1) != values) | (x.gather(1, at.unsqueeze(1)).squeeze(1) >= 0)
            row_index = None
        else:
            row_index = rows.to(device=x.device, dtype=torch.long)
            bad = (positions < 0) | (positions >= n) | (values < 0) | (values >= self.counting.q) | (row_index < 0) | (row_index >= B)
            if not bool(bad.any()):
                bad = x[row_index, positions] >= 0
        if bool(bad.any()):
            j = int(torch.nonzero(bad)[0])
            row_index = torch.arange(B, device=x.device) if row_index is None else row_index
            raise ValueError(f"pin: row {int(row_index[j])} coordinate {int(positions[j])} value {int(values[j])}: expected a free "
                             f"coordinate in [0, {n - 1}], a row in [0, {B - 1}] and a value in [0, {self.counting.q - 1}]")
        if row_index is not None and row_index.numel() > 1 and \
                torch.unique(row_index * n + positions).numel() < row_index.numel():
            raise ValueError("pin: the same coordinate of a row is pinned twice in one call")
        self.state.pin(row_index, positions, values)

    def answer_at(self, positions: torch.Tensor) -> OracleAnswer:
        x = self.state.x
        positions = check_positions(positions, x.shape[0], self.counting.n).to(x.device)
        self.counting.counter.charge(x.shape[0], self.sample_ids)
        self.counting._last, self.counting._last_dense = None, None  # reread() reads query calls only
        answer = self.state.answer_at(positions)
        answer.marginals = self.counting._validated(answer.marginals, x, positions)
        return answer

    def marginals(self, positions: torch.Tensor) -> torch.Tensor:
        """One round: the laws at positions [B, k] of every row: [B, k, q]."""
        return self.answer_at(positions).marginals

    def prefix_rows(self, rows: torch.Tensor, columns: torch.Tensor, values: torch.Tensor, drafted: torch.Tensor,
                    owner: torch.Tensor, length: torch.Tensor) -> PrefixRows:
        """A ``PrefixRows`` over the session's rows ``rows`` [A] (base = x[rows]) for the counting oracle's
        ``query_prefixes``; the inner oracle may answer from this session's state.  Ask (and reread) before
        the next pin: a pin in between makes the query raise."""
        base = self.state.x[rows]
        out = PrefixRows(base, columns, values, drafted, owner, length)
        out.session_rows = rows
        out._issued = (self, self.version, base._version)
        return out


class _QueriedSession(OracleSession):
    """An oracle without a session of its own: each round answers x as ``query`` would (uncharged here)."""

    def __init__(self, counting: CountingOracle, partial: torch.Tensor, sample_ids: torch.Tensor | None):
        super().__init__(counting, partial)
        self.sample_ids = sample_ids

    def answer_at(self, positions: torch.Tensor) -> OracleAnswer:
        return self.oracle._answer(self.x, self.sample_ids, positions)


def _row(partial, row: int) -> list[int]:
    if isinstance(partial, PrefixRows):
        return partial.materialise(torch.tensor([row], device=partial.owner.device))[0].tolist()
    return partial[row].tolist()
