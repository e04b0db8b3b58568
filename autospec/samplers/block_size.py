"""How many coordinates a speculative sampler drafts per round.

Exactness requires the block size of a round to depend on the past only
(earlier rounds' outcomes), never on the current draft.  A policy sees the
block size it used and how many drafted coordinates were accepted, after the
round is over.
"""

from __future__ import annotations

import torch

__all__ = ["BlockSizePolicy", "FixedBlockSize", "AdaptiveBlockSize", "SmoothedBlockSize", "as_block_policy"]


class BlockSizePolicy:
    def initial(self, num_samples: int, n: int, device: torch.device) -> torch.Tensor:
        """LongTensor [num_samples]: block sizes for the first drafting round."""
        raise NotImplementedError

    def update(self, block: torch.Tensor, accepted: torch.Tensor, drafted: torch.Tensor) -> torch.Tensor:
        """Next block sizes from this round's (block size, accepted, drafted), all [A]."""
        raise NotImplementedError


class FixedBlockSize(BlockSizePolicy):
    def __init__(self, size: int):
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"block_size must be a positive int, got {size!r}")
        self.size = size

    def initial(self, num_samples, n, device):
        return torch.full((num_samples,), self.size, dtype=torch.long, device=device)

    def update(self, block, accepted, drafted):
        return block

    def __repr__(self) -> str:
        return str(self.size)


class AdaptiveBlockSize(BlockSizePolicy):
    """Grow the block by ``growth`` after a fully accepted round, shrink it to
    ``accepted + 1`` (but not below ``minimum``) after a rejection.

    ``maximum`` defaults to n; ``start`` to 2.  Decisions use finished rounds only.
    """

    def __init__(self, start: int = 2, minimum: int = 1, maximum: int | None = None, growth: float = 2.0):
        if not isinstance(start, int) or start < 1:
            raise ValueError(f"start must be a positive int, got {start!r}")
        if not isinstance(minimum, int) or minimum < 1:
            raise ValueError(f"minimum must be a positive int, got {minimum!r}")
        if maximum is not None and (not isinstance(maximum, int) or maximum < minimum):
            raise ValueError(f"maximum must be an int >= minimum ({minimum}), got {maximum!r}")
        if not growth > 1:
            raise ValueError(f"growth must be > 1, got {growth!r}")
        self.start, self.minimum, self.maximum, self.growth = start, minimum, maximum, float(growth)
        self._cap = maximum

    def initial(self, num_samples, n, device):
        self._cap = self.maximum if self.maximum is not None else max(n, 1)
        start = min(max(self.start, self.minimum), self._cap)
        return torch.full((num_samples,), start, dtype=torch.long, device=device)

    def update(self, block, accepted, drafted):
        grown = torch.ceil(block.to(torch.float64) * self.growth).to(torch.long)
        shrunk = accepted + 1
        full = accepted >= drafted
        return torch.where(full, grown, shrunk).clamp(min=self.minimum, max=self._cap)

    def __repr__(self) -> str:
        return f"adaptive(start={self.start}, growth={self.growth:g})"


class SmoothedBlockSize(BlockSizePolicy):
    """Move the block halfway towards ``scale * (accepted + 1)`` after every round:

        next = ceil((1 - weight) * block + weight * scale * (accepted + 1)),

    clamped to [minimum, maximum] (maximum defaults to n); the first block is
    ``start`` (default ceil(sqrt(n)), the block length of the n^(1/2) analysis).

    Meant for the sequence-level rule, whose advantage over the token-level one
    needs long blocks: one rejection halves the block at most (AdaptiveBlockSize
    cuts it to accepted + 1, where both rules coincide), and the block settles
    near ``scale`` times the typical accepted run, so long runs are rarely cut by
    the block end.  The block after a round depends on that round's outcome and
    the previous block only (the past), never on the current draft: exact.
    """

    def __init__(self, scale: float = 2.0, weight: float = 0.5, start: int | None = None, minimum: int = 1,
                 maximum: int | None = None):
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        if not 0 < weight <= 1:
            raise ValueError(f"weight must be in (0, 1], got {weight!r}")
        if start is not None and (not isinstance(start, int) or start < 1):
            raise ValueError(f"start must be a positive int or None (ceil(sqrt(n))), got {start!r}")
        if not isinstance(minimum, int) or minimum < 1:
            raise ValueError(f"minimum must be a positive int, got {minimum!r}")
        if maximum is not None and (not isinstance(maximum, int) or maximum < minimum):
            raise ValueError(f"maximum must be an int >= minimum ({minimum}), got {maximum!r}")
        self.scale, self.weight, self.start, self.minimum, self.maximum = float(scale), float(weight), start, minimum, maximum
        self._cap = maximum

    def initial(self, num_samples, n, device):
        import math

        self._cap = self.maximum if self.maximum is not None else max(n, 1)
        start = self.start if self.start is not None else math.ceil(math.sqrt(n))
        return torch.full((num_samples,), min(max(start, self.minimum), self._cap), dtype=torch.long, device=device)

    def update(self, block, accepted, drafted):
        goal = self.scale * (accepted.to(torch.float64) + 1)
        nxt = torch.ceil((1 - self.weight) * block.to(torch.float64) + self.weight * goal - 1e-9).to(torch.long)
        return nxt.clamp(min=self.minimum, max=self._cap)

    def __repr__(self) -> str:
        return f"smoothed(scale={self.scale:g}, weight={self.weight:g})"


def as_block_policy(block_size: int | BlockSizePolicy | str) -> BlockSizePolicy:
    if isinstance(block_size, BlockSizePolicy):
        return block_size
    if block_size == "adaptive":
        return AdaptiveBlockSize()
    if block_size == "smoothed":
        return SmoothedBlockSize()
    return FixedBlockSize(block_size)  # validates
