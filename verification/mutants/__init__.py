"""The catalogue of deliberately wrong samplers the checks must catch.

Each ``Mutant`` is a realistic bug with a one-line description and the correct
sibling it differs from by one clear change, so the difference is auditable.
Modules in this package register their mutants on import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Mutant", "register", "catalogue"]


@dataclass(frozen=True)
class Mutant:
    name: str
    description: str
    make: Callable[[], Any]  # builds the wrong sampler
    sibling: Callable[[], Any]  # builds the correct sampler it differs from
    setting: str = "discrete"  # "discrete" or "diffusion"


_CATALOGUE: dict[str, Mutant] = {}


def register(mutant: Mutant) -> Mutant:
    if mutant.name in _CATALOGUE:
        raise ValueError(f"a mutant named {mutant.name!r} is already registered")
    if mutant.setting not in ("discrete", "diffusion", "chain"):
        raise ValueError(f"mutant setting must be 'discrete', 'diffusion' or 'chain', got {mutant.setting!r}")
    _CATALOGUE[mutant.name] = mutant
    return mutant


def catalogue(setting: str | None = None) -> list[Mutant]:
    """Every registered mutant (importing the modules that define them)."""
    import importlib

    for module in ("discrete", "diffusion", "chains"):
        try:
            importlib.import_module(f"verification.mutants.{module}")
        except ModuleNotFoundError as error:
            if error.name != f"verification.mutants.{module}":
                raise
    return [m for m in _CATALOGUE.values() if setting is None or m.setting == setting]
