"""How many coordinates a speculative sampler drafts per round.

Exactness requires the block size of a round to depend on the past only
(earlier rounds' outcomes), never on the current draft.  A policy sees the
block size it used and how many drafted coordinates were accepted, after the
round is over.
"""

from __future__ import annotations

import torch

__all__ = ["BlockSizePolicy", "FixedBlockSize", "AdaptiveBlockSize", "as_block_policy"]


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


def as_block_policy(block_size: int | BlockSizePolicy | str) -> BlockSizePolicy:
    if isinstance(block_size, BlockSizePolicy):
        return block_size
    if block_size == "adaptive":
        return AdaptiveBlockSize()
    return FixedBlockSize(block_size)  # validates
