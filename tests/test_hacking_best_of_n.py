"""Best-of-n: its KL formula against the exact best-of-n distribution of a discrete base policy and a
Monte Carlo estimate for a continuous one, and the per-prompt choice against hand values."""

import math

import pytest
import torch

from alignkit.evaluate.best_of_n import best_of_n_kl, select_best_of_n


def exact_kl_uniform_base(num_outcomes: int, n: int) -> float:
    """KL(best-of-n ‖ base) for a base uniform over M outcomes with distinct scores.

    Sort the outcomes by score; the best of n is outcome i (1-based) when all n draws are <= i and not
    all are <= i - 1: q_i = (i/M)^n - ((i-1)/M)^n, against p_i = 1/M.
    """
    i = torch.arange(1, num_outcomes + 1, dtype=torch.float64)
    q = (i / num_outcomes) ** n - ((i - 1) / num_outcomes) ** n
    q = q[q > 0]
    return float((q * torch.log(q * num_outcomes)).sum())


def test_kl_formula_hand_values():
    assert best_of_n_kl(1) == 0.0
    assert best_of_n_kl(2) == pytest.approx(math.log(2) - 0.5)
    assert best_of_n_kl(64) == pytest.approx(math.log(64) - 63 / 64)
    with pytest.raises(ValueError, match="at least 1"):
        best_of_n_kl(0)


@pytest.mark.parametrize("n", [2, 4, 16, 64, 256])
def test_kl_formula_matches_the_exact_distribution_for_many_outcomes(n):
    assert exact_kl_uniform_base(200_000, n) == pytest.approx(best_of_n_kl(n), abs=1e-5)
    # with few outcomes ties make the true KL smaller: the formula is an upper bound
    assert exact_kl_uniform_base(5, n) < best_of_n_kl(n)


@pytest.mark.parametrize("n", [2, 8, 32])
def test_kl_formula_matches_a_monte_carlo_estimate(n):
    """Base: uniform scores on [0, 1]. The best of n draws has density q(s) = n s^(n-1), so
    KL = E_q[log q(s) - log 1], estimated from 100,000 sampled best-of-n scores."""
    gen = torch.Generator().manual_seed(n)
    best = torch.rand(100_000, n, generator=gen, dtype=torch.float64).max(dim=1).values
    estimate = float((math.log(n) + (n - 1) * torch.log(best)).mean())
    assert estimate == pytest.approx(best_of_n_kl(n), abs=0.02)


def test_select_best_of_n_hand_values():
    scores = torch.tensor([[0.1, 0.9, 0.3], [2.0, -1.0, 2.0], [-5.0, -4.0, -6.0]])
    result = select_best_of_n(scores)
    assert result.indices.tolist() == [1, 0, 1]  # the tie in row 2 goes to the first sample
    assert result.scores.tolist() == pytest.approx([0.9, 2.0, -4.0])
    assert result.mean_score == pytest.approx((0.9 + 2.0 - 4.0) / 3)
    assert select_best_of_n(torch.tensor([[3.0], [1.0]])).mean_score == 2.0  # n = 1 keeps every sample


def test_select_best_of_n_matches_a_loop_and_grows_with_n():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(50, 16, generator=gen)
    result = select_best_of_n(scores)
    for row, index in zip(scores.tolist(), result.indices.tolist(), strict=True):
        assert index == row.index(max(row))
    means = [select_best_of_n(scores[:, :n]).mean_score for n in (1, 2, 4, 8, 16)]
    assert means == sorted(means)


def test_select_best_of_n_rejects_bad_input():
    with pytest.raises(ValueError, match="prompts, n"):
        select_best_of_n(torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        select_best_of_n(torch.tensor([[0.0, float("nan")]]))
