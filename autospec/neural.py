"""A small neural any-order oracle: a dilated 1-d convolutional net over the partial assignment.

Input: the partial assignment [B, n] (-1 free) one-hot encoded with q + 1
channels; output: logits [B, n, q] of every coordinate's conditional.
Training (in-process, CPU, seconds): samples of a structured target, a
uniformly random number of coordinates hidden, cross-entropy on the hidden
ones.  Convolutions make it apply at any n, so one trained net serves the
whole depth grid.

This is NOT a consistent joint law: its conditionals at different pinnings
need not come from one distribution, so no exactness is asserted on it.  It
is used for rounds and wall-clock measurements only (what a learned model
costs per round, and how speculation behaves when conditionals are learned).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from autospec.oracles import ConditionalOracle, OracleAnswer, placeholder_marginals

__all__ = ["AnyOrderConvNet", "NeuralOracle", "train_any_order", "trained_chain_oracle"]


class AnyOrderConvNet(nn.Module):
    def __init__(self, q: int, width: int = 32, dilations=(1, 2, 4, 8, 16)):
        super().__init__()
        self.q = q
        layers, channels = [], q + 1
        for d in dilations:
            layers += [nn.Conv1d(channels, width, 3, padding=d, dilation=d), nn.GELU()]
            channels = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv1d(width, q, 1)

    def forward(self, partial: torch.Tensor) -> torch.Tensor:
        """partial [B, n] (-1 free) -> logits [B, n, q]."""
        x = nn.functional.one_hot(partial.clamp(min=-1) + 1, self.q + 1).to(torch.float32).transpose(1, 2)
        return self.head(self.body(x)).transpose(1, 2)


def train_any_order(target, n_train: int = 64, steps: int = 300, batch: int = 128, seed: int = 0, seconds: float = 40.0):
    """Train on exact samples of ``target`` (any object whose oracle samples sequentially); returns the net."""
    from autospec import Randomness
    from autospec.samplers import Sequential

    torch.manual_seed(seed)
    data = Sequential().sample(target.oracle(), 512, Randomness(seed)).values  # [512, n_train]
    net = AnyOrderConvNet(target.q)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(steps):
        x = data[torch.randint(0, data.shape[0], (batch,), generator=g)]
        hide = torch.rand(batch, 1, generator=g)
        hidden = torch.rand(x.shape, generator=g) < hide
        logits = net(torch.where(hidden, -1, x))
        loss = nn.functional.cross_entropy(logits[hidden], x[hidden])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if time.perf_counter() - start > seconds:
            break
    return net.eval()


class NeuralOracle(ConditionalOracle):
    """The net's softmax on free coordinates, one-hot on pinned ones; every row marked feasible."""

    def __init__(self, net: AnyOrderConvNet, n: int, device="cpu", name: str = "neural"):
        self.net = net.to(device)
        self.n, self.q, self.name = n, net.q, f"{name}(n={n})"
        self.device = torch.device(device)

    def oracle(self, device="cpu"):
        return NeuralOracle(self.net, self.n, device, self.name.split("(")[0])

    def answer(self, partial: torch.Tensor) -> OracleAnswer:
        partial = partial.to(self.device)
        with torch.no_grad():
            law = torch.softmax(self.net(partial).to(torch.float64), -1)
        law = torch.where((partial < 0).unsqueeze(-1), law, placeholder_marginals(partial, self.q))
        return OracleAnswer(law, torch.ones(partial.shape[0], dtype=torch.bool, device=self.device))


_CACHE: dict = {}


def trained_chain_oracle(n: int, device="cpu") -> NeuralOracle:
    """A net trained (once per process) on the sticky Markov chain at n = 64, applied at length n."""
    if "chain" not in _CACHE:
        from autospec.targets import MarkovChainTarget

        _CACHE["chain"] = train_any_order(MarkovChainTarget.sticky(64, q=2, stay=0.9))
    return NeuralOracle(_CACHE["chain"], n, device, name="neural-chain")
