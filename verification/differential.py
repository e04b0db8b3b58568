"""Differential checks: the law of one sample must not depend on how it was drawn.

A sampler is asked for ``num_samples`` samples at once; each sample must be
an independent draw from the target whatever the batch around it.  These
checks compare a sampler with itself, so they need no reference law and catch
bugs that a one-sample proof cannot see (``exact_law`` runs num_samples = 1):

* batch: the law of row r in a batch of B samples, for several B and r,
  equals the law at B = 1; the rows of one batch are independent (their joint
  law is the product of their laws, so no row's law depends on the other
  rows' states);
* dtype: for a sampler that offers a dtype, the law at each dtype equals the
  same-dtype reference (plain sampling at that dtype), and how far each dtype
  moves the law from float64 is reported;
* device: the laws on cpu and cuda agree (skipped, not passed, without cuda).

Exact by enumeration where the instance is small: ``BatchRow`` and
``BatchJoint`` are contract samplers that run the sampler under test at
batch B and return one row (or all rows as one sample on [q]^(B n)), so
``exact_law`` enumerates every random choice of the whole batch.  Otherwise a
two-sample chi-square test (scipy's contingency test) of rows drawn at batch B
against rows drawn at batch 1, with an explicit alpha.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from scipy import stats

from autospec import Randomness
from autospec.randomness import NotRowwiseError, RandomSource
from verification.exact import exact_law
from verification.running import output_values, sampler_name

__all__ = [
    "BatchRow", "BatchJoint", "ProductTarget", "DifferentialResult", "check_batch_invariance",
    "check_batch_independence", "check_dtype_invariance", "check_device_invariance", "EXACT_TOLERANCE",
    "BatchDependentControl", "register_audit",
]

EXACT_TOLERANCE = 1e-9  # an exact-law TV above this is a real difference, not float64 rounding


def _tv(a: torch.Tensor, b: torch.Tensor) -> float:
    return 0.5 * float((a.to(torch.float64) - b.to(torch.float64)).abs().sum())


class BatchRow:
    """Contract sampler: each sample is row ``row`` of a fresh batch of ``batch_size`` samples of ``inner``.

    Under ``exact_law`` (num_samples = 1) the whole batch's random choices are
    enumerated, so the result is the exact law of that row at that batch size.
    """

    def __init__(self, inner, batch_size: int, row: int | None = None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        row = batch_size - 1 if row is None else row
        if not isinstance(row, int) or not 0 <= row < batch_size:
            raise ValueError(f"row must be an int in [0, {batch_size}), got {row!r}")
        self.inner, self.batch_size, self.row = inner, batch_size, row
        self.exact = getattr(inner, "exact", True)
        self.name = f"{sampler_name(inner)} [row {row} of a batch of {batch_size}]"

    def sample(self, oracle, num_samples: int, rng):
        rng = _whole_batches(rng, num_samples)
        rows = [output_values(self.inner.sample(oracle, self.batch_size, rng))[self.row] for _ in range(num_samples)]
        return torch.stack(rows).to(torch.long) if rows else torch.zeros((0, oracle.n), dtype=torch.long)


class _WholeBatchSource(RandomSource):
    """The rng the inner sampler sees: every call is one node for the wrapper's one sample, whatever rows the inner
    sampler says it draws for (its ``for_rows`` is itself), so a whole inner batch is one path of the enumeration."""

    def __init__(self, rng: RandomSource):
        self.rng, self.device = rng, rng.device

    def categorical(self, probs):
        return self.rng.categorical(probs)

    def bernoulli(self, p):
        return self.rng.bernoulli(p)

    def permutation(self, batch, n):
        return self.rng.permutation(batch, n)

    def normal(self, shape, dtype=torch.float64):
        return self.rng.normal(shape, dtype)

    def for_rows(self, samples):
        return self


def _whole_batches(rng: RandomSource, num_samples: int) -> RandomSource:
    # A batched enumerator replays one path per sample; a wrapper sample is a whole inner batch, so ask for one path
    # per run (the enumerator's documented fallback for samplers whose calls are not one entry per sample).
    if num_samples > 1 and getattr(rng, "num_rows", 1) > 1:
        raise NotRowwiseError("a batch wrapper draws a whole inner batch per sample: enumerate one path per run")
    return _WholeBatchSource(rng)


class ProductTarget:
    """B independent copies of ``target``: probs on [q]^(B n) (row-major: row 0's n coordinates first).

    ``oracle()`` is the single target's oracle: what ``BatchJoint`` hands its inner sampler.
    """

    def __init__(self, target, copies: int):
        self.target, self.copies = target, copies
        self.n, self.q = target.n * copies, target.q
        probs = target.probs.to(torch.float64).reshape(-1)
        joint = probs
        for _ in range(copies - 1):
            joint = torch.outer(joint, probs).reshape(-1)
        self.probs = joint.reshape((self.q,) * self.n)
        self.name = f"{copies} x {getattr(target, 'name', 'target')}"

    def oracle(self, device="cpu"):
        return self.target.oracle(device) if device != "cpu" else self.target.oracle()


class BatchJoint:
    """Contract sampler on [q]^(B n): one batch of ``batch_size`` samples of ``inner``, its rows concatenated."""

    def __init__(self, inner, batch_size: int):
        self.inner, self.batch_size = inner, batch_size
        self.name = f"{sampler_name(inner)} [a batch of {batch_size}, rows joined]"

    def sample(self, oracle, num_samples: int, rng):
        rng = _whole_batches(rng, num_samples)
        rows = [output_values(self.inner.sample(oracle, self.batch_size, rng)).reshape(-1) for _ in range(num_samples)]
        return torch.stack(rows).to(torch.long)


@dataclass
class DifferentialResult:
    """status: "pass", "fail" or "skipped" (a skipped check is not a pass); passed is None when skipped."""

    check: str
    sampler: str
    status: str
    max_tv: float | None
    method: str
    rows: list[dict] = field(default_factory=list)
    alpha: float | None = None
    p_value: float | None = None
    reason: str = ""

    @property
    def passed(self) -> bool | None:
        return None if self.status == "skipped" else self.status == "pass"

    def summary(self) -> str:
        worst = "" if self.max_tv is None else f", largest TV {self.max_tv:.3g}"
        p = "" if self.p_value is None else f", p = {self.p_value:.3g} (alpha {self.alpha:g})"
        return f"{self.check} [{self.method}]: {self.status}{worst}{p}{' - ' + self.reason if self.reason else ''}"


def check_batch_invariance(make: Callable[[], Any], target, batch_sizes=(2, 3), method: str = "auto",
                           alpha: float = 1e-6, num_batches: int = 2000, seed: int = 0,
                           max_cells: int = 3**8, tolerance: float = EXACT_TOLERANCE,
                           rows: tuple[int, ...] | None = None) -> DifferentialResult:
    """The law of every row at every batch size equals the law at batch size 1.

    make: builds the sampler under test (a fresh one per run).  method:
    "exact" (enumeration of whole batches), "two-sample" (rows of
    ``num_batches`` batches against as many batch-1 draws, chi-square
    contingency test, Bonferroni over the (B, row) pairs at level alpha), or
    "auto" (exact when q^n <= max_cells).  rows: which rows to check (default
    all; enumerating a batch costs the product of its rows' trees, so checking
    one late row, e.g. rows=(2,), is the cheap way to catch a bug that needs
    more than two sequences).
    """
    if method not in ("auto", "exact", "two-sample"):
        raise ValueError(f"method must be 'auto', 'exact' or 'two-sample', got {method!r}")
    if not batch_sizes or any(not isinstance(b, int) or b < 1 for b in batch_sizes):
        raise ValueError(f"batch_sizes must be ints >= 1, got {batch_sizes!r}")
    name = sampler_name(make())
    if method == "auto":
        method = "exact" if int(target.q) ** int(target.n) <= max_cells else "two-sample"
    if method == "exact":
        reference = exact_law(make(), target).probs
        out = []
        for B in batch_sizes:
            for r in (range(B) if rows is None else [r for r in rows if r < B]):
                law = exact_law(BatchRow(make(), B, r), target)
                out.append({"batch_size": B, "row": r, "tv_to_batch_1": _tv(law.probs, reference),
                            "tv_to_target": law.tv, "unexplored_mass": law.unexplored_mass})
        worst = max(row["tv_to_batch_1"] + row["unexplored_mass"] for row in out)
        return DifferentialResult("batch invariance", name, "pass" if worst <= tolerance else "fail", worst, "exact", out)
    return _two_sample_batch(make, target, batch_sizes, alpha, num_batches, seed, name)


def _cells(values: torch.Tensor, q: int) -> np.ndarray:
    values = values.to(torch.long).cpu().numpy()
    return (values * (q ** np.arange(values.shape[1] - 1, -1, -1))).sum(1)


def _two_sample_batch(make, target, batch_sizes, alpha, num_batches, seed, name) -> DifferentialResult:
    oracle, q = target.oracle(), int(target.q)
    single = BatchRow(make(), 1, 0).sample(oracle, num_batches, Randomness(seed))
    base = _cells(single, q)
    pairs = [(B, r) for B in batch_sizes if B > 1 for r in range(B)]
    rows, p_values = [], []
    rng = Randomness(seed + 1)
    for B in sorted({B for B, _ in pairs}):
        batches = [output_values(make().sample(oracle, B, rng)) for _ in range(num_batches)]
        for r in range(B):
            cells = _cells(torch.stack([b[r] for b in batches]), q)
            p = _contingency_p(base, cells)
            p_values.append(p)
            rows.append({"batch_size": B, "row": r, "p_value": p, "num_samples": num_batches})
    corrected = min(1.0, min(p_values) * len(p_values)) if p_values else 1.0
    status = "pass" if corrected > alpha else "fail"
    return DifferentialResult("batch invariance", name, status, None, "two-sample chi-square", rows, alpha, corrected)


def _contingency_p(a: np.ndarray, b: np.ndarray) -> float:
    labels = np.union1d(a, b)
    table = np.stack([(a[:, None] == labels).sum(0), (b[:, None] == labels).sum(0)])
    if table.shape[1] < 2:
        return 1.0
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def check_batch_independence(make: Callable[[], Any], target, batch_size: int = 2,
                             tolerance: float = EXACT_TOLERANCE) -> DifferentialResult:
    """Exact: the joint law of the rows of one batch equals the product of the rows' own laws.

    (With batch invariance this says each row is an independent draw whatever
    the other rows' states.)  The TV to the product of copies of the target is
    reported too.
    """
    joint_target = ProductTarget(target, batch_size)
    joint = exact_law(BatchJoint(make(), batch_size), joint_target)
    n, q = int(target.n), int(target.q)
    table = joint.probs.reshape((q**n,) * batch_size)
    marginals = [table.sum(dim=tuple(j for j in range(batch_size) if j != i)) for i in range(batch_size)]
    product = marginals[0]
    for m in marginals[1:]:
        product = torch.outer(product.reshape(-1), m).reshape(-1)
    tv = _tv(table.reshape(-1), product.reshape(-1))
    row = {"batch_size": batch_size, "tv_joint_to_product_of_rows": tv, "tv_joint_to_target_product": joint.tv,
           "unexplored_mass": joint.unexplored_mass}
    worst = tv + joint.unexplored_mass
    return DifferentialResult("batch independence", sampler_name(make()), "pass" if worst <= tolerance else "fail",
                              worst, "exact", [row])


def check_dtype_invariance(make: Callable[[torch.dtype], Any], reference: Callable[[torch.dtype], Any] | Any,
                           dtypes=(torch.float64, torch.float32, torch.bfloat16),
                           tolerance: float = EXACT_TOLERANCE) -> DifferentialResult:
    """Exact: at each dtype the sampler's law equals the same-dtype reference law.

    make(dtype): the sampler computing in that dtype.  reference(dtype): the
    target it must then sample (plain sampling at that dtype), or one target
    for all dtypes.  A consistent low-precision pipeline samples its own
    rounded law exactly (that shift from float64 is reported as
    ``tv_to_float64``, information, not a failure); a pipeline that mixes
    dtypes (draws through one, verifies with another) does not.
    """
    rows, laws = [], {}
    for dtype in dtypes:
        target = reference(dtype) if callable(reference) and not hasattr(reference, "probs") else reference
        law = exact_law(make(dtype), target)
        laws[dtype] = law.probs
        rows.append({"dtype": str(dtype).removeprefix("torch."), "tv_to_same_dtype_reference": law.tv,
                     "unexplored_mass": law.unexplored_mass})
    base = laws.get(torch.float64)
    for row, dtype in zip(rows, dtypes):
        row["tv_to_float64"] = None if base is None else _tv(laws[dtype], base)
    worst = max(r["tv_to_same_dtype_reference"] + r["unexplored_mass"] for r in rows)
    return DifferentialResult("dtype invariance", sampler_name(make(dtypes[0])), "pass" if worst <= tolerance else "fail",
                              worst, "exact", rows)


class _OnDevice:
    """A target whose oracle answers on ``device`` (its table stays on the cpu for the comparison)."""

    def __init__(self, target, device):
        self.target, self.device = target, device
        self.n, self.q, self.probs = target.n, target.q, target.probs
        self.name = getattr(target, "name", "target")

    def oracle(self, device=None):
        return self.target.oracle(self.device)


def check_device_invariance(make: Callable[[str], Any], target, devices=("cpu", "cuda"),
                            tolerance: float = EXACT_TOLERANCE) -> DifferentialResult:
    """Exact: the sampler's law is the same on every device (make(device) builds it there).

    A device that is not present makes the check "skipped" (never "pass").
    """
    missing = [d for d in devices if d != "cpu" and not (d.startswith("cuda") and torch.cuda.is_available())]
    name = sampler_name(make("cpu"))
    if missing:
        return DifferentialResult("device invariance", name, "skipped", None, "exact",
                                  reason=f"device(s) {missing} not available on this machine")
    rows, laws = [], []
    for device in devices:
        law = exact_law(make(device), _OnDevice(target, device))
        laws.append(law.probs)
        rows.append({"device": device, "tv_to_target": law.tv, "unexplored_mass": law.unexplored_mass})
    worst = max(_tv(law, laws[0]) for law in laws) + max(r["unexplored_mass"] for r in rows)
    for row, law in zip(rows, laws):
        row["tv_to_" + devices[0]] = _tv(law, laws[0])
    return DifferentialResult("device invariance", name, "pass" if worst <= tolerance else "fail", worst, "exact", rows)


# ---------------------------------------------------------------- a negative control and the audit stage

class BatchDependentControl:
    """Deliberately wrong (a negative control): left-to-right sampling in which every row after the first draws from
    a law flattened halfway to uniform on its support whenever the batch holds two or more samples.  Exact at one
    sample per run, so only a batch check can see it."""

    exact = False
    name = "batch-dependent control"

    def sample(self, oracle, num_samples: int, rng):
        x = torch.full((num_samples, oracle.n), -1, dtype=torch.long)
        late = (torch.arange(num_samples) >= 1).unsqueeze(1)
        for i in range(oracle.n):
            law = oracle.marginals(x)[:, i]
            support = (law > 0).to(torch.float64)
            flat = 0.5 * law + 0.5 * support / support.sum(-1, keepdim=True)
            x[:, i] = rng.categorical(torch.where(late, flat, law))
        return x


def _audit_target():
    from autospec.targets import TabularTarget

    return TabularTarget.random(n=2, q=2, seed=3, zero_fraction=0.25, name="tab-n2q2-zeros")


def _audit_samplers(quick: bool) -> dict[str, Callable[[], Any]]:
    from autospec.samplers import DraftSpeculative, SequenceSpeculative, Sequential, TokenSpeculative
    from autospec.targets import TabularTarget

    draft = TabularTarget.random(n=2, q=2, seed=4, name="draft")
    makers = {"Sequential": Sequential, "TokenSpeculative(2)": lambda: TokenSpeculative(2),
              "SequenceSpeculative(2)": lambda: SequenceSpeculative(2),
              "DraftSpeculative(token, 1)": lambda: DraftSpeculative(draft, 1, "token")}
    if not quick:
        makers.update({"DraftSpeculative(block, 2)": lambda: DraftSpeculative(draft, 2, "block"),
                       "DraftSpeculative(multi, 1)": lambda: DraftSpeculative(draft, 1, "multi")})
    makers["batch-dependent control"] = BatchDependentControl
    return makers


def plan_differential(config) -> list[dict]:
    quick = config.mode == "quick"
    cells = [{"id": f"differential/{name}/batch", "stage": "differential", "sampler": name, "sampler_ref": name,
              "claims_exact": name != "batch-dependent control", "mutant": False, "target": "tab-n2q2-zeros",
              "check": "exact batch invariance + independence" + (" (B = 2)" if quick else " (B = 2, 3)"),
              "params": {"kind": "batch", "name": name, "quick": quick}}
             for name in _audit_samplers(quick)]
    cells.append({"id": "differential/Sequential/device", "stage": "differential", "sampler": "Sequential",
                  "sampler_ref": "Sequential", "claims_exact": True, "mutant": False, "target": "tab-n2q2-zeros",
                  "check": "exact device invariance (cpu vs cuda)", "params": {"kind": "device", "name": "Sequential"}})
    return cells


def run_differential(spec: dict, seed: int) -> dict:
    params = spec["params"]
    target = _audit_target()
    if params["kind"] == "device":
        from autospec.samplers import Sequential

        result = check_device_invariance(lambda device: Sequential(device=device), target)
        verdict = {"pass": "pass", "fail": "fail"}.get(result.status, "skip")
        return {"verdict": verdict, "evidence": {"summary": result.summary(), "rows": result.rows, "reason": result.reason}}
    make = _audit_samplers(params["quick"])[params["name"]]
    invariance = check_batch_invariance(make, target, batch_sizes=(2,) if params["quick"] else (2, 3))
    independence = check_batch_independence(make, target, batch_size=2)
    rejected = invariance.status == "fail" or independence.status == "fail"
    control = params["name"] == "batch-dependent control"
    verdict = ("flagged" if rejected else "undetected") if control else ("fail" if rejected else "pass")
    return {"verdict": verdict, "evidence": {
        "negative_control": control, "summary": [invariance.summary(), independence.summary()],
        "invariance_rows": invariance.rows, "independence_rows": independence.rows}}


def register_audit(registry) -> None:
    registry.register_stage(registry.Stage("differential", plan_differential, run_differential,
                                           "Differential checks (batch, device)", order=66))
