import math

import pytest
import torch

from autospec import Randomness
from autospec.randomness import NotEnumerableError, ReplayRandomness


def test_same_seed_same_draws_bit_for_bit():
    probs = torch.tensor([[0.2, 0.3, 0.5], [0.9, 0.1, 0.0]], dtype=torch.float64).repeat(50, 1)
    draws = []
    for _ in range(2):
        rng = Randomness(seed=7)
        draws.append((rng.categorical(probs), rng.bernoulli(torch.full((10,), 0.3, dtype=torch.float64)),
                      rng.permutation(4, 6), rng.normal((3, 2))))
    for a, b in zip(*draws):
        assert torch.equal(a, b)
    assert not torch.equal(Randomness(seed=8).normal(5), Randomness(seed=7).normal(5))


def test_categorical_never_draws_a_zero_weight_and_matches_its_law():
    rng = Randomness(seed=1)
    probs = torch.tensor([0.0, 0.25, 0.0, 0.75], dtype=torch.float64).expand(200_000, 4)
    draws = rng.categorical(probs)
    counts = torch.bincount(draws, minlength=4)
    assert counts[0] == 0 and counts[2] == 0
    # 0.25 * 200000 = 50000, sd ~ 194: 8 sd cannot fail by chance (p < 1e-15)
    assert abs(int(counts[1]) - 50_000) < 8 * 194


def test_categorical_accepts_unnormalised_weights():
    draws = Randomness(seed=2).categorical(torch.tensor([[2.0, 0.0], [0.0, 5.0]], dtype=torch.float64))
    assert draws.tolist() == [0, 1]


def test_permutation_rows_are_permutations():
    perm = Randomness(seed=3).permutation(100, 7)
    assert torch.equal(perm.sort(dim=1).values, torch.arange(7).expand(100, 7))


@pytest.mark.parametrize(
    "probs, message",
    [
        (torch.tensor([[0.5, float("nan")]], dtype=torch.float64), "NaN"),
        (torch.tensor([[0.5, -0.1]], dtype=torch.float64), "negative"),
        (torch.tensor([[0.0, 0.0]], dtype=torch.float64), "all-zero"),
        (torch.tensor([1, 2]), "floating"),
    ],
)
def test_categorical_bad_input(probs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        Randomness(seed=0).categorical(probs)


def test_bernoulli_bad_input():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Randomness(seed=0).bernoulli(torch.tensor([1.5], dtype=torch.float64))
    with pytest.raises(TypeError, match="seed"):
        Randomness(seed=1.5)


def test_replay_children_cover_the_joint_law():
    nodes = []
    rng = ReplayRandomness([], nodes)
    rng.categorical(torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], dtype=torch.float64))
    node = nodes[0]
    assert node.num_children == 2 * 3  # the zero-probability outcome is not a child
    assert math.isclose(sum(node.child(i)[1] for i in range(node.num_children)), 1.0, rel_tol=1e-15)
    with pytest.raises(NotEnumerableError):
        rng.normal(3)
