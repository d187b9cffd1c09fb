"""The SFT loss against a slow, obvious reference and against values computed by hand."""

import math

import torch

from alignkit.losses.sft import masked_token_correct, masked_token_nll
from alignkit.tensors import IGNORE_INDEX


def reference_nll(logits, labels):
    """Loop over every position: -log softmax(logits[b, t])[labels[b, t+1]] where labelled."""
    total, count = 0.0, 0
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1] - 1):
            target = int(labels[b, t + 1])
            if target == IGNORE_INDEX:
                continue
            row = [float(x) for x in logits[b, t]]
            log_z = math.log(sum(math.exp(x) for x in row))
            total += log_z - row[target]
            count += 1
    return total, count


def test_matches_reference_on_random_inputs():
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11)
    labels = torch.randint(0, 11, (3, 7))
    labels[0, :4] = IGNORE_INDEX  # a masked prompt
    labels[2, 5:] = IGNORE_INDEX  # padding
    nll, n = masked_token_nll(logits, labels)
    expected, count = reference_nll(logits, labels)
    assert int(n) == count
    assert math.isclose(float(nll), expected, rel_tol=1e-5)


def test_hand_computed_value():
    # vocabulary of 2; position 0 predicts token 1 with logits (0, ln 3): p = 3/4.
    logits = torch.tensor([[[0.0, math.log(3.0)], [5.0, 5.0]]])
    labels = torch.tensor([[IGNORE_INDEX, 1]])
    nll, n = masked_token_nll(logits, labels)
    assert int(n) == 1
    assert math.isclose(float(nll), -math.log(0.75), rel_tol=1e-6)
    assert int(masked_token_correct(logits, labels)) == 1


def test_fully_masked_batch_gives_zero_and_no_tokens():
    logits = torch.randn(2, 4, 5)
    labels = torch.full((2, 4), IGNORE_INDEX)
    nll, n = masked_token_nll(logits, labels)
    assert float(nll) == 0.0 and int(n) == 0


def test_token_accuracy_counts_only_labelled_positions():
    logits = torch.zeros(1, 3, 4)
    logits[0, 0, 2] = 1.0  # predicts 2 (label 2: right)
    logits[0, 1, 3] = 1.0  # predicts 3 (label 1: wrong)
    labels = torch.tensor([[IGNORE_INDEX, 2, 1]])
    assert int(masked_token_correct(logits, labels)) == 1
