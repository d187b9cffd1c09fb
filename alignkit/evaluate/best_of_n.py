"""Best-of-n: sample n replies from the base policy, keep the one the reward model scores highest.

It needs no training and is the baseline against which RL's reward-for-KL trade is judged (Stiennon et
al. 2020, "Learning to summarize from human feedback"; Gao et al. 2022, "Scaling laws for reward model
overoptimization").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def best_of_n_kl(n: int) -> float:
    """KL(π_bon ‖ π_base) of the best-of-n policy, in nats:

        KL_bon(n) = log n - (n - 1) / n

    Exact when the score of a base sample has a continuous distribution (no ties): the best of n has
    density n F(s)^(n-1) times the base's, and E[log F(s_max)] = -1/n. With ties (a base policy with few
    distinct replies) it is an upper bound on the true KL (Beirami et al. 2024, "Theoretical guarantees
    on the best-of-n alignment policy"). Gao et al. 2022 plot reward against d = √KL_bon(n).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return math.log(n) - (n - 1) / n


@dataclass(frozen=True)
class BestOfN:
    """Per prompt the index (0..n-1) and score of the chosen sample, and the mean chosen score."""

    indices: torch.Tensor
    scores: torch.Tensor
    mean_score: float


def select_best_of_n(scores: torch.Tensor) -> BestOfN:
    """Pick the highest-scored of the n samples of each prompt from a (prompts, n) score matrix.

    Ties go to the lowest index (the first sample drawn), so the choice is deterministic. NaN scores
    are rejected, since a NaN would never be chosen or always be, depending on the backend.
    """
    values = _score_matrix(scores, "scores")
    indices = values.argmax(dim=1)  # torch returns the first of equal maxima
    chosen = values.gather(1, indices.unsqueeze(1)).squeeze(1)
    return BestOfN(indices, chosen, float(chosen.mean()))


def expected_best_of_n(scores: torch.Tensor, n: int, values: torch.Tensor | None = None) -> float:
    """The mean over prompts of :func:`expected_best_of_n_per_prompt`."""
    return float(expected_best_of_n_per_prompt(scores, n, values).mean())


def expected_best_of_n_per_prompt(scores: torch.Tensor, n: int, values: torch.Tensor | None = None) -> torch.Tensor:
    """Unbiased estimate, from N >= n samples per prompt, of each prompt's expected value of the best of n
    replies drawn without replacement (Nakano et al. 2021, "WebGPT"; Gao et al. 2022):

        E[value of best of n] = Σ_{j=1..N} C(N - j, n - 1) / C(N, n) · v_(j)

    where v_(j) is the value of the j-th highest-scored sample of the prompt: it is the best of a random
    n-subset exactly when it is in the subset and the other n - 1 all rank below it. ``scores`` (prompts, N)
    rank the samples (the reward model that picks); ``values`` (same shape, default ``scores``) are the
    quantities averaged, e.g. a gold reward of the reply the proxy picks. Among equal scores the lowest
    index ranks highest, as in :func:`select_best_of_n`, so n = N gives its mean exactly and n = 1 the
    plain mean of ``values``. Weights are exact ratios of integers, rounded once to float64. Returns a
    float64 vector (prompts,). Raises ValueError for n outside [1, N], a shape mismatch, or NaN.
    """
    ranked = _score_matrix(scores, "scores")
    values = ranked if values is None else _score_matrix(values, "values")
    if values.shape != ranked.shape:
        raise ValueError(f"values of shape {tuple(values.shape)} do not match scores of shape {tuple(ranked.shape)}")
    samples = ranked.shape[1]
    if not 1 <= n <= samples:
        raise ValueError(f"n must be in [1, {samples}] (the samples per prompt), got {n}")
    order = ranked.sort(dim=1, descending=True, stable=True).indices  # equal scores keep their index order
    total = math.comb(samples, n)
    weights = torch.tensor([math.comb(samples - j, n - 1) / total for j in range(1, samples + 1)],
                           dtype=torch.float64)
    return (values.gather(1, order) * weights).sum(dim=1)


def _score_matrix(scores: torch.Tensor, name: str) -> torch.Tensor:
    """``scores`` as a float64 CPU matrix; ValueError unless it is (prompts, n) with both > 0 and NaN-free."""
    if scores.dim() != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"expected {name} of shape (prompts, n) with both > 0, got {tuple(scores.shape)}")
    if torch.isnan(scores).any():
        raise ValueError(f"{name} contain NaN")
    return scores.detach().to("cpu", torch.float64)
