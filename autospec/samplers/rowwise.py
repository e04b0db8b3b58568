"""Per-sample randomness for samplers that advance their samples one at a time."""

from __future__ import annotations

import torch

from autospec.randomness import RandomSource

__all__ = ["rows_of"]


def rows_of(rng: RandomSource, sample: int) -> RandomSource:
    """The source for one sample's draws (every call then has a leading axis of 1).

    Seeded randomness draws as without it; the batched enumerator uses it to give
    each sample its own forced choices.
    """
    for_rows = getattr(rng, "for_rows", None)
    return for_rows(torch.tensor([sample])) if for_rows is not None else rng
