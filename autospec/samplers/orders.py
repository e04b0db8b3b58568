"""Coordinate orders for any-order samplers."""

from __future__ import annotations

import torch

from autospec.randomness import RandomSource

ORDERS = ("random", "fixed")


def check_order(order: str) -> str:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    return order


def draw_order(order: str, num_samples: int, n: int, rng: RandomSource, device: torch.device) -> torch.Tensor:
    """[num_samples, n]: a uniformly random order per sample, or 0..n-1."""
    if order == "random":
        return rng.permutation(num_samples, n).to(device)
    return torch.arange(n, device=device).expand(num_samples, n).clone()
