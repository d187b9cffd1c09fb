"""Best-of-n on problems with a checked answer: how often a way of choosing one of n sampled solutions
picks a right one.

From N sampled solutions per problem, each with its final answer (None when it has none) and whether the
checker accepts it, every estimate here is exact and unbiased for n-subsets drawn without replacement, per
problem (a vector over problems, so that intervals can resample problems):

- :func:`pass_at_n`, the ceiling: some solution of the n is right (Chen et al. 2021),
      pass@n = 1 − C(N − c, n) / C(N, n), c right solutions of N;
- :func:`reranked_accuracy`: the solution a scorer (a process or outcome reward model) ranks highest is
  right — :func:`~alignkit.evaluate.best_of_n.expected_best_of_n_per_prompt` with the checker's 0/1 as the
  value;
- :func:`majority_vote_accuracy`: the answer most of the n give is right (self-consistency, Wang et al. 2023),
  ties broken uniformly at random, solutions without an answer not voting.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch

from alignkit.evaluate.best_of_n import expected_best_of_n_per_prompt


def pass_at_n(correct: torch.Tensor, n: int) -> torch.Tensor:
    """Per problem, the chance that a random n of its N solutions hold a right one:
    1 − C(N − c, n) / C(N, n). ``correct`` is a (problems, N) boolean matrix. ValueError for n outside [1, N]."""
    correct = _correct_matrix(correct, n)
    samples = correct.shape[1]
    total = math.comb(samples, n)
    return torch.tensor([1 - math.comb(samples - int(c), n) / total for c in correct.sum(dim=1).tolist()],
                        dtype=torch.float64)


def reranked_accuracy(scores: torch.Tensor, correct: torch.Tensor, n: int) -> torch.Tensor:
    """Per problem, the chance that the highest-scored of a random n of its solutions is right (equal scores:
    the lower index ranks higher). ``scores`` and ``correct`` are (problems, N)."""
    return expected_best_of_n_per_prompt(scores, n, _correct_matrix(correct, n).double())


def majority_vote_accuracy(answers: Sequence[Sequence[str | None]], correct: torch.Tensor, n: int) -> torch.Tensor:
    """Per problem, the chance that the most frequent answer among a random n of its solutions is right.

    ``answers[p][i]`` is solution i's final answer, normalised so that equal answers are equal strings, or
    None (no vote); ``correct[p][i]`` whether the checker accepts it. Among answers tied for the most votes
    one is drawn uniformly; a subset with no votes is wrong. Exact: with the right answer's votes k and the
    other answers' votes j_g ≤ k, the subsets are counted as Π C(size, votes) and weighted 1 / (1 + the
    number of other answers with k votes), by dynamic programming over the other answers. ValueError when
    a solution without an answer is marked right or one answer is marked both right and wrong.
    """
    correct = _correct_matrix(correct, n)
    if len(answers) != correct.shape[0] or any(len(row) != correct.shape[1] for row in answers):
        raise ValueError(f"answers must be {tuple(correct.shape)} like correct")
    return torch.tensor([_majority_right(row, flags, n) for row, flags in zip(answers, correct.tolist(), strict=True)],
                        dtype=torch.float64)


def _majority_right(answers: Sequence[str | None], correct: Sequence[bool], n: int) -> float:
    """One problem's :func:`majority_vote_accuracy`."""
    right = {a for a, c in zip(answers, correct, strict=True) if c}
    if None in right:
        raise ValueError("a solution without an answer is marked right")
    if right & {a for a, c in zip(answers, correct, strict=True) if not c}:
        raise ValueError(f"answer {sorted(right)[0]!r} is marked both right and wrong")
    if len(right) > 1:
        raise ValueError(f"more than one answer is marked right ({sorted(right)}); normalise the answers first")
    votes = Counter(answers)
    abstain = votes.pop(None, 0)
    if not right:
        return 0.0
    right_votes = votes.pop(right.pop())
    others = list(votes.values())
    weighted = 0.0
    for k in range(1, min(right_votes, n) + 1):
        ways = _others_at_most(others, k, n - k)  # ways[m][t]: m drawn from the other answers, t of them at k
        for m, row in enumerate(ways):
            blank = math.comb(abstain, n - k - m)
            if blank:
                weighted += math.comb(right_votes, k) * blank * sum(w / (t + 1) for t, w in enumerate(row) if w)
    return weighted / math.comb(len(answers), n)


def _others_at_most(sizes: list[int], k: int, limit: int) -> list[list[int]]:
    """``ways[m][t]``: the ways to draw m ≤ ``limit`` solutions from answer groups of ``sizes``, at most k
    from each, with exactly t groups giving k (Σ over the draws of Π C(size, drawn))."""
    ways = [[0] * (len(sizes) + 1) for _ in range(limit + 1)]
    ways[0][0] = 1
    for size in sizes:
        grown = [[0] * (len(sizes) + 1) for _ in range(limit + 1)]
        for m, row in enumerate(ways):
            for t, count in enumerate(row):
                if not count:
                    continue
                for j in range(min(size, k, limit - m) + 1):
                    grown[m + j][t + (j == k)] += count * math.comb(size, j)
        ways = grown
    return ways


def _correct_matrix(correct: torch.Tensor, n: int) -> torch.Tensor:
    """``correct`` as a boolean (problems, N) CPU matrix; ValueError for another shape or n outside [1, N]."""
    if correct.dim() != 2 or correct.shape[0] == 0 or correct.shape[1] == 0:
        raise ValueError(f"expected correct of shape (problems, N) with both > 0, got {tuple(correct.shape)}")
    if not 1 <= n <= correct.shape[1]:
        raise ValueError(f"n must be in [1, {correct.shape[1]}] (the solutions per problem), got {n}")
    return correct.detach().to("cpu").bool()
