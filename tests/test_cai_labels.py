"""Soft labels from option log-probabilities: swap averaging and clamping against hand-computed values and
a slow, obvious reference; the agreement and position-bias summary against hand counts."""

import math

import pytest
import torch

from alignkit.feedback.labels import SoftLabels, label_summary, preference_score, soft_labels


def log(*probabilities):
    return [math.log(p) for p in probabilities]


def reference(first, swapped, clamp):
    """One pair at a time, with exp and plain arithmetic."""
    labels = []
    for (a1, b1), (a2, b2) in zip(first, swapped, strict=True):
        p1 = math.exp(a1) / (math.exp(a1) + math.exp(b1))  # first reply shown as (A)
        p2 = math.exp(b2) / (math.exp(a2) + math.exp(b2))  # first reply shown as (B)
        if clamp:
            p1, p2 = min(max(p1, clamp[0]), clamp[1]), min(max(p2, clamp[0]), clamp[1])
        labels.append((p1, p2, (p1 + p2) / 2))
    return labels


def test_hand_computed_swap_average():
    result = soft_labels(torch.tensor([log(0.8, 0.2)]), torch.tensor([log(0.6, 0.4)]))
    assert result.p_first.item() == pytest.approx(0.8)
    assert result.p_swapped.item() == pytest.approx(0.4)  # (B) holds the first reply in the swapped order
    assert result.label.item() == pytest.approx(0.6)


def test_unnormalised_logprobs_give_the_same_labels():
    shifted = soft_labels(torch.tensor([[-7.0, -8.0]]), torch.tensor([[-3.0, -1.0]]))
    plain = soft_labels(torch.tensor([[0.0, -1.0]]), torch.tensor([[0.0, 2.0]]))
    assert shifted.label.item() == pytest.approx(plain.label.item())
    expected = (1 / (1 + math.exp(-1)) + 1 / (1 + math.exp(-2))) / 2
    assert plain.label.item() == pytest.approx(expected)


def test_clamping_bounds_each_ordering_before_averaging():
    result = soft_labels(torch.tensor([log(0.99, 0.01)]), torch.tensor([log(0.3, 0.7)]), clamp=(0.4, 0.6))
    assert (result.p_first.item(), result.p_swapped.item()) == pytest.approx((0.6, 0.6))
    assert result.label.item() == pytest.approx(0.6)
    extreme = soft_labels(torch.tensor([log(0.01, 0.99)]), torch.tensor([log(0.99, 0.01)]), clamp=(0.4, 0.6))
    assert extreme.label.item() == pytest.approx(0.4)


def test_without_swap_the_label_is_the_first_ordering():
    result = soft_labels(torch.tensor([log(0.7, 0.3), log(0.25, 0.75)]))
    assert result.p_swapped is None
    assert result.label.tolist() == pytest.approx([0.7, 0.25])


@pytest.mark.parametrize("clamp", [None, (0.4, 0.6), (0.1, 0.2)])
def test_matches_the_slow_reference(clamp):
    generator = torch.Generator().manual_seed(0)
    first, swapped = torch.randn(50, 2, generator=generator) * 3, torch.randn(50, 2, generator=generator) * 3
    result = soft_labels(first, swapped, clamp)
    expected = reference(first.tolist(), swapped.tolist(), clamp)
    assert result.p_first.tolist() == pytest.approx([e[0] for e in expected])
    assert result.p_swapped.tolist() == pytest.approx([e[1] for e in expected])
    assert result.label.tolist() == pytest.approx([e[2] for e in expected])


def test_identical_replies_get_exactly_one_half():
    scores = torch.tensor([[-0.3, -2.0]])  # the same question both times: whatever the position bias
    assert soft_labels(scores, scores).label.item() == 0.5


def test_bad_shapes_and_clamps_are_refused():
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        soft_labels(torch.zeros(3))
    with pytest.raises(ValueError, match="differ in shape"):
        soft_labels(torch.zeros(3, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="clamp"):
        soft_labels(torch.zeros(3, 2), clamp=(0.6, 0.4))


def test_preference_score_counts_ties_half():
    assert preference_score(torch.tensor([0.9, 0.5, 0.1])).tolist() == [1.0, 0.5, 0.0]
    rounded = (torch.tensor([0.9], dtype=torch.float64) + torch.tensor([0.1 + 1e-16], dtype=torch.float64)) / 2
    assert preference_score(rounded - 1e-15).item() == 0.5 and preference_score(torch.tensor([0.5 + 1e-6])).item() == 1


def test_summary_against_hand_counts():
    p_first = torch.tensor([0.9, 0.8, 0.3, 0.6], dtype=torch.float64)
    p_swapped = torch.tensor([0.7, 0.2, 0.4, 0.5], dtype=torch.float64)
    labels = SoftLabels(p_first, p_swapped, (p_first + p_swapped) / 2)  # 0.8, 0.5, 0.35, 0.55
    summary = label_summary(labels, human=True)
    assert summary["num_pairs"] == 4
    assert summary["mean_label"] == pytest.approx(0.55)
    assert summary["agreement"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert summary["agreement_without_swap"] == pytest.approx(3 / 4)
    assert summary["agreement_swapped_order"] == pytest.approx((1 + 0 + 0 + 0.5) / 4)
    # pairs 2 (first preferred, then second) and 4 (first preferred, then a tie) change with the order
    assert summary["position_bias_rate"] == pytest.approx(2 / 4)
    # (A) wins: first order pairs 1, 2, 4; swapped order (A) holds the second reply: pairs 2, 3, and 4 half
    assert summary["option_a_rate"] == pytest.approx((3 + 2.5) / 8)


def test_summary_without_humans_or_swap_leaves_those_figures_out():
    labels = soft_labels(torch.tensor([log(0.7, 0.3)]))
    assert label_summary(labels, human=False) == {"num_pairs": 1, "mean_label": pytest.approx(0.7)}
    with pytest.raises(ValueError, match="at least one pair"):
        label_summary(soft_labels(torch.zeros(0, 2)), human=True)


def test_a_judge_that_always_picks_a_is_fully_position_biased():
    always_a = torch.tensor([log(0.9, 0.1)] * 10)
    labels = soft_labels(always_a, always_a)
    summary = label_summary(labels, human=True)
    assert summary["position_bias_rate"] == 1.0 and summary["option_a_rate"] == 1.0
    assert summary["agreement_without_swap"] == 1.0 and summary["agreement"] == 0.5
