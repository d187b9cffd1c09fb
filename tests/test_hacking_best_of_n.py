"""Best-of-n: its KL formula against the exact best-of-n distribution of a discrete base policy and a
Monte Carlo estimate for a continuous one, the per-prompt choice against hand values, and the unbiased
expected best-of-n estimate against hand values and brute-force enumeration of n-subsets."""

import itertools
import math

import pytest
import torch

from alignkit.evaluate.best_of_n import best_of_n_kl, expected_best_of_n, select_best_of_n


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


def brute_force_best_of_n(scores: torch.Tensor, n: int, values: torch.Tensor) -> float:
    """The mean over prompts and over every n-subset of the samples of the value that select_best_of_n
    picks from the subset."""
    picked = []
    for subset in itertools.combinations(range(scores.shape[1]), n):
        columns = torch.tensor(subset)
        chosen = columns[select_best_of_n(scores[:, columns]).indices]
        picked.append(values.gather(1, chosen.unsqueeze(1)).squeeze(1).double())
    return float(torch.stack(picked).mean())


def test_expected_best_of_n_hand_values():
    scores = torch.tensor([[1.0, 3.0, 2.0]])
    # subsets of 2: {1, 3} -> 3, {1, 2} -> 2, {3, 2} -> 3
    assert expected_best_of_n(scores, 2) == pytest.approx(8 / 3)
    # the gold value of the reply the proxy picks: {0, 1} -> 20, {0, 2} -> 30, {1, 2} -> 20
    assert expected_best_of_n(scores, 2, torch.tensor([[10.0, 20.0, 30.0]])) == pytest.approx(70 / 3)
    assert expected_best_of_n(scores, 3) == 3.0 and expected_best_of_n(scores, 1) == pytest.approx(2.0)
    ties = torch.tensor([[2.0, 2.0, 0.0]])
    # equal scores: the lowest index wins, so index 0 beats index 1 whenever both are drawn
    assert expected_best_of_n(ties, 2, torch.tensor([[5.0, 7.0, 1.0]])) == pytest.approx((5 + 5 + 7) / 3)


@pytest.mark.parametrize("samples", range(1, 8))
def test_expected_best_of_n_equals_enumerating_every_subset(samples):
    gen = torch.Generator().manual_seed(samples)
    continuous = torch.randn(5, samples, generator=gen)
    tied = torch.randint(0, 3, (5, samples), generator=gen).float()  # many equal scores
    values = torch.randn(5, samples, generator=gen)
    for scores in (continuous, tied):
        for n in range(1, samples + 1):
            assert expected_best_of_n(scores, n) == pytest.approx(brute_force_best_of_n(scores, n, scores), abs=1e-12)
            assert expected_best_of_n(scores, n, values) == pytest.approx(
                brute_force_best_of_n(scores, n, values), abs=1e-12)


def test_expected_best_of_n_at_the_ends():
    gen = torch.Generator().manual_seed(1)
    scores, values = torch.randn(20, 9, generator=gen), torch.randn(20, 9, generator=gen)
    best = select_best_of_n(scores)
    assert expected_best_of_n(scores, 9) == pytest.approx(best.mean_score, abs=1e-12)
    assert expected_best_of_n(scores, 9, values) == pytest.approx(
        float(values.double().gather(1, best.indices.unsqueeze(1)).mean()), abs=1e-12)
    assert expected_best_of_n(scores, 1) == pytest.approx(float(scores.double().mean()), abs=1e-12)
    assert expected_best_of_n(scores, 1, values) == pytest.approx(float(values.double().mean()), abs=1e-12)
    curve = [expected_best_of_n(scores, n) for n in range(1, 10)]
    assert curve == sorted(curve)


def test_expected_best_of_n_is_exact_for_many_samples():
    """With N = 400 samples the binomial coefficients are far beyond float range; the weights stay exact."""
    scores = torch.arange(400, dtype=torch.float64).unsqueeze(0)  # the j-th highest is 400 - j
    # E[max of n draws without replacement from 0..N-1] = n (N + 1) / (n + 1) - 1
    for n in (1, 2, 200, 400):
        assert expected_best_of_n(scores, n) == pytest.approx(n * 401 / (n + 1) - 1, rel=1e-12)


@pytest.mark.parametrize(
    ("scores", "n", "values", "message"),
    [
        (torch.zeros(2, 3), 0, None, r"n must be in \[1, 3\]"),
        (torch.zeros(2, 3), 4, None, r"n must be in \[1, 3\]"),
        (torch.zeros(2, 3), 2, torch.zeros(2, 4), "do not match"),
        (torch.zeros(3), 1, None, "prompts, n"),
        (torch.tensor([[0.0, float("nan")]]), 1, None, "scores contain NaN"),
        (torch.zeros(1, 2), 1, torch.tensor([[0.0, float("nan")]]), "values contain NaN"),
    ],
)
def test_expected_best_of_n_rejects_bad_input(scores, n, values, message):
    with pytest.raises(ValueError, match=message):
        expected_best_of_n(scores, n, values)
