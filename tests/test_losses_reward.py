"""The reward-model losses against slow, obvious references and against values computed by hand."""

import math

import pytest
import torch

from alignkit.data.records import ranking_to_pairs
from alignkit.errors import DataError
from alignkit.losses.reward import (
    bradley_terry_loss,
    group_weights,
    pairwise_reward_loss,
    reward_centering_penalty,
    soft_label_loss,
)


def log_sigmoid(x):
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def reference_pair_loss(c, r, margin, label, centering):
    """One pair's loss written out: soft-label cross-entropy if labelled, else BT with margin, plus centering."""
    d = c - r
    if label is not None and not math.isnan(label):
        loss = -(label * log_sigmoid(d) + (1 - label) * log_sigmoid(-d))
    else:
        m = 0.0 if margin is None or math.isnan(margin) else margin
        loss = -log_sigmoid(d - m)
    return loss + centering * (c + r) ** 2


def test_bradley_terry_matches_reference():
    torch.manual_seed(0)
    c, r, m = torch.randn(20) * 3, torch.randn(20) * 3, torch.rand(20)
    got = bradley_terry_loss(c, r, m)
    for i in range(20):
        expected = -log_sigmoid(float(c[i]) - float(r[i]) - float(m[i]))
        assert math.isclose(float(got[i]), expected, rel_tol=1e-5, abs_tol=1e-6)


def test_bradley_terry_hand_values():
    zero = torch.tensor([0.0])
    assert math.isclose(float(bradley_terry_loss(zero, zero)[0]), math.log(2), rel_tol=1e-6)
    # a gap of 1 against a margin of 1 is a gap of 0
    one = torch.tensor([1.0])
    assert math.isclose(float(bradley_terry_loss(one, zero, one)[0]), math.log(2), rel_tol=1e-6)
    # gap ln 3: σ = 3/4
    assert math.isclose(float(bradley_terry_loss(torch.tensor([math.log(3)]), zero)[0]), math.log(4 / 3), rel_tol=1e-6)
    extreme = bradley_terry_loss(torch.tensor([-1000.0, 1000.0]), torch.zeros(2))
    assert torch.allclose(extreme, torch.tensor([1000.0, 0.0]))


def test_soft_label_matches_reference_and_reduces_to_bt():
    torch.manual_seed(1)
    c, r, p = torch.randn(20) * 3, torch.randn(20) * 3, torch.rand(20)
    got = soft_label_loss(c, r, p)
    for i in range(20):
        expected = reference_pair_loss(float(c[i]), float(r[i]), None, float(p[i]), 0.0)
        assert math.isclose(float(got[i]), expected, rel_tol=1e-5, abs_tol=1e-6)
    assert torch.allclose(soft_label_loss(c, r, torch.ones(20)), bradley_terry_loss(c, r))


def test_soft_label_hand_values():
    zero = torch.tensor([0.0])
    assert math.isclose(float(soft_label_loss(zero, zero, torch.tensor([0.5]))[0]), math.log(2), rel_tol=1e-6)
    # gap ln 3: σ(d) = 3/4, σ(-d) = 1/4; target 1/4
    got = float(soft_label_loss(torch.tensor([math.log(3)]), zero, torch.tensor([0.25]))[0])
    assert math.isclose(got, -(0.25 * math.log(0.75) + 0.75 * math.log(0.25)), rel_tol=1e-6)


def test_ranking_to_pairs_hand_values():
    assert ranking_to_pairs([1, 2, 2]) == ([(0, 1), (0, 2)], 1)
    assert ranking_to_pairs([2, 1, 3]) == ([(1, 0), (0, 2), (1, 2)], 0)
    pairs, ties = ranking_to_pairs([4, 3, 2, 1])
    assert len(pairs) == 6 and ties == 0
    assert set(pairs) == {(j, i) for i in range(4) for j in range(i + 1, 4)}


def test_ranking_to_pairs_matches_reference():
    gen = torch.Generator().manual_seed(2)
    for _ in range(50):
        k = int(torch.randint(2, 8, (1,), generator=gen))
        ranks = torch.randint(1, 4, (k,), generator=gen).tolist()
        if len(set(ranks)) < 2:
            continue
        pairs, ties = ranking_to_pairs(ranks)
        better = {(i, j) for i in range(k) for j in range(k) if ranks[i] < ranks[j]}
        tied = sum(1 for i in range(k) for j in range(i + 1, k) if ranks[i] == ranks[j])
        assert set(pairs) == better and len(pairs) == len(better)
        assert ties == tied and len(pairs) + ties == k * (k - 1) // 2


def test_ranking_without_two_distinct_ranks_names_location():
    with pytest.raises(DataError, match=r"prefs\.jsonl:3: ranking needs at least two distinct ranks"):
        ranking_to_pairs([2, 2, 2], location="prefs.jsonl:3")
    with pytest.raises(DataError):
        ranking_to_pairs([1])


def test_group_weights_hand_values():
    assert torch.allclose(group_weights(torch.zeros(6, dtype=torch.long)), torch.full((6,), 1 / 6))
    got = group_weights(torch.tensor([0, 0, 0, 5, 7, 7]))
    assert torch.allclose(got, torch.tensor([1 / 3, 1 / 3, 1 / 3, 1.0, 0.5, 0.5]))


def test_group_weights_matches_reference():
    ids = torch.randint(0, 5, (40,), generator=torch.Generator().manual_seed(3))
    got = group_weights(ids)
    for i in range(40):
        count = sum(1 for j in range(40) if int(ids[j]) == int(ids[i]))
        assert math.isclose(float(got[i]), 1 / count, rel_tol=1e-6)


def test_centering_penalty_hand_values():
    got = reward_centering_penalty(torch.tensor([1.0, 2.0, -0.5]), torch.tensor([-1.0, 1.0, -0.5]))
    assert torch.allclose(got, torch.tensor([0.0, 9.0, 1.0]))


def test_pairwise_reward_loss_matches_reference():
    gen = torch.Generator().manual_seed(4)
    n = 30
    c, r = torch.randn(n, generator=gen) * 2, torch.randn(n, generator=gen) * 2
    groups = torch.randint(0, 8, (n,), generator=gen)
    margin = torch.rand(n, generator=gen)
    margin[::3] = float("nan")
    label = torch.rand(n, generator=gen)
    label[::2] = float("nan")
    loss, metrics = pairwise_reward_loss(c, r, group_ids=groups, margin=margin, label=label, centering=0.05)
    expected = accuracy = gap = 0.0
    for i in range(n):
        w = 1 / sum(1 for j in range(n) if int(groups[j]) == int(groups[i]))
        ci, ri = float(c[i]), float(r[i])
        expected += w * reference_pair_loss(ci, ri, float(margin[i]), float(label[i]), 0.05)
        accuracy += w * ((ci > ri) + 0.5 * (ci == ri))
        gap += w * (ci - ri)
    assert math.isclose(float(loss), expected, rel_tol=1e-5)
    assert math.isclose(float(metrics["accuracy"]), accuracy, rel_tol=1e-5)
    assert math.isclose(float(metrics["margin"]), gap, rel_tol=1e-5, abs_tol=1e-5)
    # each group's weights sum to one, so the weighted accuracy sum is at most the number of groups
    assert float(metrics["accuracy"]) <= len(groups.unique())


def test_pairwise_reward_loss_hand_values():
    # group 0: one pair with gap 0; group 1: two pairs with gaps +ln 3 and -ln 3
    c = torch.tensor([0.0, math.log(3), 0.0])
    r = torch.tensor([0.0, 0.0, math.log(3)])
    loss, metrics = pairwise_reward_loss(c, r, group_ids=torch.tensor([0, 1, 1]))
    assert math.isclose(float(loss), math.log(2) + 0.5 * (math.log(4 / 3) + math.log(4)), rel_tol=1e-6)
    # the tie counts one half in group 0; group 1 gets one of its two pairs right: 0.5 + 0.5
    assert math.isclose(float(metrics["accuracy"]), 1.0, rel_tol=1e-6)
    assert abs(float(metrics["margin"])) < 1e-6


def test_pairwise_reward_loss_gradients_flow_past_missing_labels():
    c = torch.tensor([0.0, 1.0, -1.0], requires_grad=True)
    r = torch.tensor([0.0, 0.0, 0.0], requires_grad=True)
    label = torch.tensor([float("nan"), 0.5, float("nan")])
    margin = torch.tensor([float("nan"), 2.0, 0.0])
    loss, metrics = pairwise_reward_loss(c, r, group_ids=torch.arange(3), margin=margin, label=label, centering=0.1)
    loss.backward()
    assert torch.isfinite(c.grad).all() and torch.isfinite(r.grad).all()
    # pair 0: BT at gap 0 gives dL/dr_c = -σ(0) = -1/2; centering adds 2·0.1·(0 + 0) = 0
    assert math.isclose(float(c.grad[0]), -0.5, rel_tol=1e-6)
    # pair 1: soft label 1/2 ignores its margin: dL/dd = σ(d) - p
    assert math.isclose(float(c.grad[1]), torch.sigmoid(torch.tensor(1.0)).item() - 0.5 + 0.2, rel_tol=1e-5)
    assert not metrics["accuracy"].requires_grad and not metrics["margin"].requires_grad


def test_pairwise_reward_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="equal"):
        pairwise_reward_loss(torch.zeros(3), torch.zeros(2), group_ids=torch.arange(3))
