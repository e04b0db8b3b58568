"""Registries the audit draws its matrix from: samplers, targets and stages.

A stage is a name and two functions: ``plan(config) -> [spec]`` lists the
stage's cells (cheap, deterministic), ``run(spec, seed) -> outcome`` computes
one cell (``{"verdict", "evidence", ...}``).  Specs and outcomes are plain
JSON-able dicts, so cells travel to worker processes and Dask workers.

Other modules plug in without editing this package: a module named in
``PLUGIN_MODULES`` that defines ``register_audit(registry)`` is imported
lazily and called with this module; it may call ``register_stage``,
``register_sampler`` or ``register_target``.  A stage whose module is absent
is recorded as "not available" and skipped.

Adding a stage (the whole recipe)::

    # in mypackage/wild.py, and "mypackage.wild" appended to PLUGIN_MODULES
    def plan(config):                      # cheap: list the cells, no computing
        return [{"id": f"wild/{name}/{target}/exact-law", "stage": "wild", "sampler": name,
                 "sampler_ref": name, "claims_exact": True, "mutant": False,
                 "target": target, "check": "exact-law", "params": {}} for name, target in ...]

    def run(spec, seed):                   # one cell, deterministic given seed
        ...
        return {"verdict": judge(spec, rejected=tv > 1e-9), "evidence": {"exact_tv": tv}}

    def register_audit(registry):
        registry.register_stage(registry.Stage("wild", plan, run, "Bugs found in the wild", order=70,
                                               how_to_read="One row per bug: caught means ..."))

``verification.audit.stages.judge`` turns "the check rejected exactness"
into the verdict (pass/fail, caught/missed, flagged/undetected).  The
report needs nothing more: every stage gets its verdict grid, its rows in
the evidence table (the evidence keys ``p_value``, ``alpha``,
``num_samples``, ``exact_tv``, ``tv_upper``, ``min_detectable_tv`` and
``mean_rounds`` fill the columns of the same names) and its
``how_to_read`` sentence; ``audit --only wild/`` runs it alone.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any, Callable

__all__ = [
    "Stage",
    "register_stage",
    "register_sampler",
    "register_target",
    "stages",
    "build_sampler",
    "build_target",
    "sampler_label",
    "load_plugins",
    "PLUGIN_MODULES",
]

# Modules that may define register_audit(registry); absent ones are skipped.
PLUGIN_MODULES = [
    "verification.gof",
    "verification.power",
    "verification.calibration",
    "verification.mutation",
    "verification.depth",
    "verification.two_sample",
    "verification.diffusion_check",
    "verification.chain_depth",
    "verification.audit.controls",
    "verification.audit.third_party",
    "verification.wild.audit",
    "verification.differential",
    "autospec.samplers",
]


@dataclass
class Stage:
    name: str
    plan: Callable[[Any], list[dict]]
    run: Callable[[dict, int], dict]
    title: str = ""
    # (available, reason): a stage whose module is absent says why here.
    available: Callable[[], tuple[bool, str]] = lambda: (True, "")
    order: int = 100
    # One sentence for the report: how to read this stage's verdicts.
    how_to_read: str = ""


class UnknownName(KeyError):
    """A sampler, mutant or target name the registry does not know (a usage error, not a broken stage)."""


_STAGES: dict[str, Stage] = {}
_SAMPLERS: dict[str, Callable[[], Any]] = {}
_TARGETS: dict[str, Callable[[], Any]] = {}
_PLUGINS_LOADED = False
# The run_audit(extra_samplers=...) objects of the cell being computed (set by the executor).
CURRENT_EXTRA: list[Any] = []


def register_stage(stage: Stage, replace: bool = True) -> Stage:
    """Add a stage (a plugin's stage replaces a built-in of the same name)."""
    if stage.name in _STAGES and not replace:
        raise ValueError(f"an audit stage named {stage.name!r} is already registered")
    _STAGES[stage.name] = stage
    return stage


def register_sampler(key: str, factory: Callable[[], Any]) -> None:
    _SAMPLERS[key] = factory


def register_target(key: str, factory: Callable[[], Any]) -> None:
    _TARGETS[key] = factory


def load_plugins() -> dict[str, str]:
    """Import the plugin modules once; returns {module: status} for the report."""
    global _PLUGINS_LOADED
    status = {}
    this = importlib.import_module(__name__)
    for module_name in PLUGIN_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and (module_name == error.name or module_name.startswith(error.name + ".")):
                status[module_name] = "absent"
                continue
            status[module_name] = f"import error: {error}"
            continue
        except Exception as error:  # a half-written module must not break the audit
            status[module_name] = f"import error: {type(error).__name__}: {error}"
            continue
        hook = getattr(module, "register_audit", None)
        if hook is None:
            status[module_name] = "present"
        elif not _PLUGINS_LOADED:
            try:
                hook(this)
                status[module_name] = "registered"
            except Exception as error:
                status[module_name] = f"register_audit failed: {type(error).__name__}: {error}"
        else:
            status[module_name] = "registered"
    _PLUGINS_LOADED = True
    return status


def stages() -> list[Stage]:
    from verification.audit import stages as builtin  # noqa: F401  (registers the built-in stages)

    load_plugins()
    return sorted(_STAGES.values(), key=lambda s: (s.order, s.name))


def get_stage(name: str) -> Stage:
    for stage in stages():
        if stage.name == name:
            return stage
    raise KeyError(f"no audit stage named {name!r}; known: {[s.name for s in stages()]}")


# ---------------------------------------------------------------- samplers

def _builtin_samplers() -> None:
    from autospec.samplers import SequenceSpeculative, Sequential, TokenSpeculative

    _SAMPLERS.setdefault("Sequential", Sequential)
    for k in (2, 3, 4):
        _SAMPLERS.setdefault(f"TokenSpeculative({k})", functools.partial(TokenSpeculative, k))
        _SAMPLERS.setdefault(f"SequenceSpeculative({k})", functools.partial(SequenceSpeculative, k))


def build_sampler(ref: str, extra: list[Any] | None = None) -> Any:
    """A sampler from its reference.

    ``key`` (registered), ``mutant:NAME`` (the mutant catalogue),
    ``extra:I`` (the I-th object passed to run_audit), or ``module:attr``
    (a sampler object, or a class/factory called with no arguments).
    """
    _builtin_samplers()
    if ref in _SAMPLERS:
        return _SAMPLERS[ref]()
    if ref.startswith("mutant:"):
        from verification.mutants import catalogue

        name = ref.split(":", 1)[1]
        for mutant in catalogue():
            if mutant.name == name:
                return mutant.make()
        raise UnknownName(f"no mutant named {name!r} in the catalogue")
    if ref.startswith("extra:"):
        extra = extra if extra is not None else CURRENT_EXTRA
        index = int(ref.split(":", 1)[1])
        if extra is None or index >= len(extra):
            raise KeyError(f"sampler {ref!r}: no such extra sampler")
        item = extra[index]
        return _load_reference(item) if isinstance(item, str) else item
    if ":" in ref:
        return _load_reference(ref)
    raise UnknownName(f"unknown sampler {ref!r}; known: {', '.join(sorted(_SAMPLERS))}, or module:attr")


def _load_reference(ref: str) -> Any:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ValueError(f"a user sampler is given as module:attr (e.g. mypkg.samplers:MySampler), got {ref!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not hasattr(obj, "sample") or isinstance(obj, type):
        obj = obj()  # a class or factory
    if not hasattr(obj, "sample"):
        raise TypeError(f"{ref} is not a sampler: it has no sample(oracle, num_samples, rng) method")
    return obj


def sampler_label(sampler: Any) -> str:
    from verification.running import sampler_name

    return sampler_name(sampler)


def claims_exact(sampler: Any) -> bool:
    return bool(getattr(sampler, "exact", True))


# ---------------------------------------------------------------- targets

def _builtin_targets() -> None:
    from autospec.targets import TabularTarget

    _TARGETS.setdefault("tab-n3q2-zeros", lambda: TabularTarget.random(3, 2, seed=11, zero_fraction=0.25, name="tab-n3q2-zeros"))
    _TARGETS.setdefault("tab-n3q3", lambda: TabularTarget.random(3, 3, seed=12, name="tab-n3q3"))
    _TARGETS.setdefault("tab-n4q2-zeros", lambda: TabularTarget.random(4, 2, seed=13, zero_fraction=0.25, name="tab-n4q2-zeros"))
    _TARGETS.setdefault("tab-n4q3-zeros", lambda: TabularTarget.random(4, 3, seed=14, zero_fraction=0.2, name="tab-n4q3-zeros"))
    _TARGETS.setdefault("tab-n6q2", lambda: TabularTarget.random(6, 2, seed=15, concentration=0.5, name="tab-n6q2"))

    def markov(n, q, seed):
        from autospec.targets.markov_chain import MarkovChainTarget

        return MarkovChainTarget.random(n, q, seed=seed, name=f"markov-n{n}q{q}")

    def sticky(n, q):
        from autospec.targets.markov_chain import MarkovChainTarget

        return MarkovChainTarget.sticky(n, q, stay=0.9, name=f"markov-sticky-n{n}q{q}")

    _TARGETS.setdefault("markov-n12q2", lambda: markov(12, 2, 16))
    _TARGETS.setdefault("markov-sticky-n24q2", lambda: sticky(24, 2))


def build_target(ref: str) -> Any:
    _builtin_targets()
    if ref not in _TARGETS:
        raise UnknownName(f"unknown audit target {ref!r}; known: {', '.join(sorted(_TARGETS))}")
    return _TARGETS[ref]()


def target_keys() -> list[str]:
    _builtin_targets()
    return sorted(_TARGETS)
