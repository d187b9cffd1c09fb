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
    if scores.dim() != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"expected scores of shape (prompts, n) with both > 0, got {tuple(scores.shape)}")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    values = scores.detach().to("cpu", torch.float64)
    indices = values.argmax(dim=1)  # torch returns the first of equal maxima
    chosen = values.gather(1, indices.unsqueeze(1)).squeeze(1)
    return BestOfN(indices, chosen, float(chosen.mean()))
