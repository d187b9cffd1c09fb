"""Ensemble disagreement: how much reward models trained alike disagree on a policy's replies.

Members agree on replies like their training data and drift apart where the policy has found something
one of them over-rewards, so disagreement that grows over RL training is a sign of reward hacking
(Coste et al. 2023, "Reward model ensembles help mitigate overoptimization"; Eisenstein et al. 2023,
"Helping or herding? Reward model ensembles mitigate but do not eliminate reward hacking").

The spread is the population standard deviation across members (divisor M), as in
:func:`~alignkit.models.combine.combine_ensemble`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from alignkit.models.combine import combine_ensemble


@dataclass(frozen=True)
class Disagreement:
    """Per reply the std across members (float64, shape (replies,)) and its mean over replies."""

    per_reply: torch.Tensor
    mean_std: float


def ensemble_disagreement(scores: torch.Tensor) -> Disagreement:
    """Disagreement of M >= 2 members on N >= 1 replies from a (members, replies) score tensor:

        std_j = sqrt( (1/M) Σ_m (r_mj - r̄_j)² ),   mean_std = (1/N) Σ_j std_j
    """
    if scores.dim() != 2 or scores.shape[0] < 2 or scores.shape[1] == 0:
        raise ValueError(f"expected scores of shape (members >= 2, replies >= 1), got {tuple(scores.shape)}")
    _, spread = combine_ensemble(scores.detach().to("cpu", torch.float64), "mean")
    return Disagreement(spread, float(spread.mean()))


def disagreement_by_iteration(scores_per_iteration: Sequence[torch.Tensor]) -> list[dict[str, float]]:
    """One row per training iteration, from its (members, replies) score tensor (the number of replies
    may change between iterations): ``{"iteration": i, "replies": N, "mean_std": ..., "max_std": ...,
    "mean_reward": ...}``, where mean_reward is the mean over replies of the members' mean score."""
    rows = []
    for i, scores in enumerate(scores_per_iteration):
        result = ensemble_disagreement(scores)
        rows.append({
            "iteration": i,
            "replies": int(scores.shape[1]),
            "mean_std": result.mean_std,
            "max_std": float(result.per_reply.max()),
            "mean_reward": float(scores.detach().to("cpu", torch.float64).mean()),
        })
    return rows
