"""Best-of-n on checked answers: pass@n, reranking and majority vote against hand counts and brute force."""

import itertools
import random
from fractions import Fraction

import pytest
import torch

from alignkit.evaluate.answer_selection import majority_vote_accuracy, pass_at_n, reranked_accuracy

ANSWERS = [["6", "6", "7", None]]
CORRECT = torch.tensor([[True, True, False, False]])


def brute_force_majority(answers, correct, n):
    """Every n-subset: the share of the tied leaders that is right, averaged (Fraction, exact)."""
    total = Fraction(0)
    subsets = list(itertools.combinations(range(len(answers)), n))
    for subset in subsets:
        votes = {}
        for i in subset:
            if answers[i] is not None:
                votes[answers[i]] = votes.get(answers[i], 0) + 1
        if not votes:
            continue
        most = max(votes.values())
        leaders = [a for a, v in votes.items() if v == most]
        right = {answers[i] for i in range(len(answers)) if correct[i]}
        total += Fraction(sum(a in right for a in leaders), len(leaders))
    return total / len(subsets)


def test_hand_counted_problem():
    # Pairs of {6, 6, 7, none}: {6,6}, {6,none} twice win; {6,7} twice tie (1/2 each); {7,none} loses: 4/6.
    assert majority_vote_accuracy(ANSWERS, CORRECT, 2).tolist() == pytest.approx([2 / 3])
    assert majority_vote_accuracy(ANSWERS, CORRECT, 1).tolist() == pytest.approx([1 / 2])
    assert majority_vote_accuracy(ANSWERS, CORRECT, 4).tolist() == pytest.approx([1.0])
    assert pass_at_n(CORRECT, 2).tolist() == pytest.approx([5 / 6])  # only {7, none} misses
    assert pass_at_n(CORRECT, 3).tolist() == pytest.approx([1.0])


def test_majority_vote_matches_every_subset_counted():
    rng = random.Random(0)
    for _ in range(60):
        size = rng.randint(1, 8)
        answers = [rng.choice(["1", "2", "3", None]) for _ in range(size)]
        correct = [a == "2" for a in answers]
        for n in range(1, size + 1):
            got = majority_vote_accuracy([answers], torch.tensor([correct]), n).item()
            assert got == pytest.approx(float(brute_force_majority(answers, correct, n)), abs=1e-12)


def test_pass_at_n_matches_every_subset_counted():
    correct = torch.tensor([[True, False, False, True, False], [False] * 5, [True] * 5])
    for n in range(1, 6):
        expected = [sum(any(row[i] for i in s) for s in itertools.combinations(range(5), n))
                    / len(list(itertools.combinations(range(5), n))) for row in correct.tolist()]
        assert pass_at_n(correct, n).tolist() == pytest.approx(expected)


def test_reranking_picks_the_top_scored_of_each_subset():
    scores = torch.tensor([[0.9, 0.1, 0.5]])
    correct = torch.tensor([[False, True, True]])
    # Pairs: {0,1} picks 0 (wrong), {0,2} picks 0 (wrong), {1,2} picks 2 (right): 1/3.
    assert reranked_accuracy(scores, correct, 2).tolist() == pytest.approx([1 / 3])
    assert reranked_accuracy(scores, correct, 1).tolist() == pytest.approx([2 / 3])
    assert reranked_accuracy(scores, correct, 3).tolist() == pytest.approx([0.0])


def test_no_right_answer_means_zero_and_bad_marks_are_errors():
    assert majority_vote_accuracy([["3", "4"]], torch.tensor([[False, False]]), 2).tolist() == [0.0]
    with pytest.raises(ValueError, match="without an answer is marked right"):
        majority_vote_accuracy([[None, "4"]], torch.tensor([[True, False]]), 1)
    with pytest.raises(ValueError, match="'4' is marked both right and wrong"):
        majority_vote_accuracy([["4", "4"]], torch.tensor([[True, False]]), 1)
    with pytest.raises(ValueError, match=r"n must be in \[1, 2\]"):
        pass_at_n(torch.tensor([[True, False]]), 3)


def test_checked_solutions_and_the_curve_by_hand():
    from alignkit.data.records import Prompt
    from alignkit.evaluate.answer_best_of_n import answer_curve, checked_solutions
    from alignkit.rl.steps import solution_steps

    problems = [Prompt(({"role": "user", "content": "What is 2 + 3?"},), "5"),
                Prompt(({"role": "user", "content": "What is 4 - 1?"},), "3")]
    replies = ["Step 1: 2 + 3 = 5\nThe answer is 5.", "Step 1: 2 + 3 = 6\nThe answer is 6.", "no idea",
               "Step 1: 4 - 1 = 3\nThe answer is 3.0", "The answer is 3.", "Step 1: 4 - 1 = 2\nThe answer is 2."]
    correct, answers = checked_solutions(problems, replies)
    assert correct.tolist() == [[True, False, False], [True, True, False]]
    assert answers == [["5", "6", None], ["3", "3", "2"]]  # 3.0 and 3 are one answer
    assert solution_steps(replies[0]) == ["Step 1: 2 + 3 = 5"] and solution_steps("The answer is 3.") == []
    scores = {"prm": torch.tensor([[0.1, 0.9, -1.0], [0.8, 0.2, 0.5]])}
    one, two = answer_curve(correct, answers, scores, [1, 2])
    assert one["n"] == 1 and [one[k]["accuracy"] for k in ("pass", "majority", "prm")] == pytest.approx([0.5] * 3)
    # n = 2. pass: problem 1 misses only {6, none} (2/3), problem 2 always has a 3 (1). majority: problem 1
    # {5,6} ties (1/2), {5,none} wins, {6,none} loses → 1/2; problem 2 {3,3} wins, {3,2} twice ties → 2/3.
    # prm: problem 1 picks 6 over 5 and over none, 5 over none → 1/3; problem 2 picks the 0.8 "3" in two
    # pairs and the 0.5 "2" over the 0.2 "3" → 2/3.
    assert two["pass"]["accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    assert two["majority"]["accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert two["prm"]["accuracy"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    low, high = two["pass"]["interval"]
    assert 2 / 3 <= low <= two["pass"]["accuracy"] <= high <= 1
