"""How a scorer turns its reward models' scores into the reward RL optimises: the ensemble rule, then
the length residual (both used while scoring rollouts)."""

import torch

ENSEMBLE_RULES = ("mean", "min", "mean_minus_std")


def combine_ensemble(scores: torch.Tensor, rule: str, lam: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine the rewards of M ensemble members for N samples, (M, N) → ((N,) combined, (N,) spread).

        mean:            R = mean_m r_m
        min:             R = min_m r_m                  (worst-case optimisation)
        mean_minus_std:  R = mean_m r_m - λ · std_m r_m (uncertainty-weighted optimisation)

    Coste et al. 2023, "Reward model ensembles help mitigate overoptimization". The spread is the
    population standard deviation over members (divisor M, not M - 1), also used by mean_minus_std.
    """
    if rule not in ENSEMBLE_RULES:
        raise ValueError(f"unknown ensemble rule {rule!r}; expected one of {', '.join(ENSEMBLE_RULES)}")
    if scores.dim() != 2:
        raise ValueError(f"expected scores of shape (members, samples), got {tuple(scores.shape)}")
    mean = scores.mean(dim=0)
    spread = scores.std(dim=0, correction=0)
    if rule == "mean":
        return mean, spread
    if rule == "min":
        return scores.min(dim=0).values, spread
    return mean - lam * spread, spread


def length_residual(rewards: torch.Tensor, lengths: torch.Tensor, slope: float, intercept: float) -> torch.Tensor:
    """The length-normalised reward r - (slope · length + intercept), in the rewards' dtype.

    Fit slope and intercept once with :func:`alignkit.evaluate.reward_metrics.length_residual_fit` on
    reference samples, then score RL rollouts with the residual, so the policy gains nothing from length
    alone (Singhal et al. 2023, "A long way to go: investigating length correlations in RLHF").
    """
    return rewards - (slope * lengths.to(rewards.dtype) + intercept)
