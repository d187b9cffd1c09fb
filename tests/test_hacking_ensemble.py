"""Ensemble disagreement against hand-computed standard deviations and a loop over replies."""

import math

import pytest
import torch

from alignkit.evaluate.ensemble import disagreement_by_iteration, ensemble_disagreement


def test_disagreement_hand_values():
    # rows are members, columns replies. reply 0: members agree; reply 1: 0, 2, 1 → std sqrt(2/3);
    # reply 2: 1, 2, 6 → std sqrt(14/3) (divisor M = 3)
    scores = torch.tensor([[1.0, 0.0, 1.0], [1.0, 2.0, 2.0], [1.0, 1.0, 6.0]])
    result = ensemble_disagreement(scores)
    reply_1 = math.sqrt(((0 - 1) ** 2 + (2 - 1) ** 2 + (1 - 1) ** 2) / 3)
    assert result.per_reply.tolist() == pytest.approx([0.0, reply_1, math.sqrt(14 / 3)])
    assert result.mean_std == pytest.approx((reply_1 + math.sqrt(14 / 3)) / 3)


def test_disagreement_matches_a_loop():
    scores = torch.randn(5, 40, generator=torch.Generator().manual_seed(0))
    result = ensemble_disagreement(scores)
    for j in range(40):
        column = scores[:, j].double().tolist()
        mean = sum(column) / 5
        assert float(result.per_reply[j]) == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in column) / 5))


def test_disagreement_by_iteration_rows():
    iterations = [torch.tensor([[1.0, 1.0], [1.0, 1.0]]), torch.tensor([[0.0, 2.0, 4.0], [2.0, 2.0, 0.0]])]
    rows = disagreement_by_iteration(iterations)
    assert rows[0] == {"iteration": 0, "replies": 2, "mean_std": 0.0, "max_std": 0.0, "mean_reward": 1.0}
    assert rows[1]["replies"] == 3 and rows[1]["mean_std"] == pytest.approx((1 + 0 + 2) / 3)
    assert rows[1]["max_std"] == 2.0 and rows[1]["mean_reward"] == pytest.approx(10 / 6)
    assert disagreement_by_iteration([]) == []


def test_disagreement_rejects_bad_shapes():
    for bad in (torch.zeros(4), torch.zeros(1, 4), torch.zeros(3, 0)):
        with pytest.raises(ValueError, match="members >= 2"):
            ensemble_disagreement(bad)
