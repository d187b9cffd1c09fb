"""Advantage estimators for RL from a reward: per-token rewards, GAE, whitening, group and leave-one-out baselines.

Token-level estimators (PPO) work on padded (B, T) tensors with a (B, T) ``mask`` that is 1 (or True)
on the valid response tokens of each row and 0 elsewhere. The valid tokens of a row must be one
contiguous run (right-padded responses; zeros before the run, e.g. on a prompt, are fine too): the
episode ends at the last valid token. Every output is 0 where the mask is 0.

    per-token reward   (Ziegler et al. 2019; Stiennon et al. 2020; Ouyang et al. 2022)
                       r_t = -β kl_t + [t = last valid token] · R(x, y)
    GAE                (Schulman et al. 2016, "High-Dimensional Continuous Control Using GAE", eq. 16)
                       δ_t = r_t + γ V_{t+1} - V_t,   V after the last valid token = 0
                       A_t = δ_t + γ λ A_{t+1},       returns G_t = A_t + V_t
    whitening          A ← (A - mean) / sqrt(var + eps) over the valid tokens (TRL, OpenRLHF;
                       :func:`alignkit.tensors.masked_whiten`)

Sequence-level estimators (GRPO, RLOO) take one scalar reward per completion, shape (N,), with the
G completions of a prompt contiguous: prompt p owns indices p·G ... p·G + G - 1.

    group   (Shao et al. 2024, DeepSeekMath §4.1.2)   A_i = (r_i - mean_group) / (std_group + eps)
            Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training"): no division by std
    RLOO    (Kool et al. 2019; Ahmadian et al. 2024)  A_i = r_i - 1/(k-1) Σ_{j≠i} r_j

Step (process) rewards s_k from a process reward model, at the last token e_k of each step k of a reply:

    dense   (Wang et al. 2024, Math-Shepherd, step-by-step PPO)  r_t += w · Σ_k [t = e_k] s_k, then GAE
    process (Shao et al. 2024, DeepSeekMath §4.1.3)   s̃_k = (s_k - mean) / (std + eps) over every step of
            the prompt's G replies, A_t = Σ_{k: e_k ≥ t} s̃_k, added (× w) to the outcome advantage

These are estimates, not losses: pass rewards and values that carry no gradient (computed under
``torch.no_grad()`` or detached), as every PPO implementation does.
"""

import torch

from alignkit.tensors import float_mask


def per_token_rewards(
    sequence_reward: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float,
    step_rewards: torch.Tensor | None = None,
) -> torch.Tensor:
    """Dense rewards (B, T): r_t = -β kl_t on every valid token, plus the sequence reward at the last one,
    plus ``step_rewards`` (B, T) where given (a step's reward at its last token, already weighted).

    sequence_reward: (B,), the reward model's (or checker's) score of each response; kl: (B, T),
    a per-token estimate of KL(π_θ ‖ π_ref) (:func:`alignkit.rl.kl.kl_estimate`); β = ``kl_coef``.
    This is the KL-shaped reward of Ziegler et al. 2019, Stiennon et al. 2020 and InstructGPT
    (Ouyang et al. 2022, eq. 2), spread over tokens as in their implementations. A row
    with no valid token is all zeros (its sequence reward is dropped).
    """
    m = float_mask(mask, kl)
    rewards = -kl_coef * kl.to(m.dtype) * m
    positions = torch.arange(1, mask.shape[1] + 1, device=mask.device)
    last = (m * positions).argmax(dim=1, keepdim=True)  # index of the last valid token
    bonus = (sequence_reward.to(m.dtype) * m.amax(dim=1)).unsqueeze(1)  # 0 for an empty row
    if step_rewards is not None:
        rewards = rewards + step_rewards.to(m.dtype) * m
    return rewards.scatter_add(1, last, bonus)


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns, each (B, T), zero on padding (Schulman et al. 2016).

        δ_t = r_t + γ V_{t+1} - V_t      with V_{t+1} = 0 after the last valid token
        A_t = δ_t + γ λ A_{t+1}          with A = 0 after the last valid token
        G_t = A_t + V_t                  (the value target; λ-return)

    λ = 1 gives Monte-Carlo returns minus the value (G_t = discounted reward-to-go); λ = 0 gives the
    one-step TD error. Rewards and values at padded positions are ignored.
    """
    m = float_mask(mask, values)
    rewards, values = rewards.to(m.dtype) * m, values.to(m.dtype) * m
    advantages = torch.zeros_like(values)
    next_value = torch.zeros_like(values[:, 0])
    next_advantage = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        # next_value and next_advantage are 0 past the end: they were masked when t + 1 was padding.
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = (delta + gamma * lam * next_advantage) * m[:, t]
        next_value = values[:, t]
        advantages[:, t] = next_advantage
    return advantages, (advantages + values) * m


def _grouped(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(N,) rewards as (N / G, G), one row per prompt; ValueError on a bad layout."""
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be one score per completion, shape (N,), got shape {tuple(rewards.shape)}")
    if group_size < 2:
        raise ValueError(f"group_size must be at least 2 completions per prompt to form a baseline, got {group_size}")
    if rewards.numel() % group_size:
        raise ValueError(
            f"{rewards.numel()} rewards do not split into groups of {group_size}: "
            "expected group_size completions per prompt, stored contiguously"
        )
    return rewards.view(-1, group_size)


def group_advantages(
    rewards: torch.Tensor, group_size: int, normalise_std: bool = True, eps: float = 1e-4
) -> torch.Tensor:
    """GRPO's group-relative advantages, shape (N,): (r_i - mean_group) / (std_group + eps).

    Shao et al. 2024 (DeepSeekMath, §4.1.2, outcome supervision): each completion is scored against
    the other completions of its prompt. The paper does not say which standard deviation; as TRL's
    GRPOTrainer (``torch.std``) this is the *sample* (unbiased, n - 1) standard deviation, and eps is
    TRL's 1e-4, so a group with identical rewards gets zero advantages. ``normalise_std=False`` only
    centres (Dr. GRPO, Liu et al. 2025, which drops the std because it reweights prompts by difficulty).
    """
    groups = _grouped(rewards, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if normalise_std:
        centred = centred / (groups.std(dim=1, keepdim=True) + eps)
    return centred.reshape(-1)


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """REINFORCE leave-one-out advantages, shape (N,): A_i = r_i - mean_{j ≠ i} r_j within each prompt's group.

    Kool et al. 2019 ("Buy 4 REINFORCE samples, get a baseline for free!"); Ahmadian et al. 2024
    ("Back to Basics"). The baseline excludes the sample itself, so it stays unbiased; it
    equals k/(k-1) · (r_i - mean_group) with k = ``group_size``.
    """
    groups = _grouped(rewards, group_size)
    others = (groups.sum(dim=1, keepdim=True) - groups) / (group_size - 1)
    return (groups - others).reshape(-1)


def process_group_advantages(step_rewards: torch.Tensor, step_ends: torch.Tensor, mask: torch.Tensor,
                             group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """GRPO's process-supervision advantages, (N, T) (Shao et al. 2024, DeepSeekMath §4.1.3).

    ``step_rewards`` (N, T) holds step k's reward at its last token, where ``step_ends`` (N, T, bool) is
    True; the G = ``group_size`` replies of a prompt are contiguous rows. Every step reward of a group is
    normalised by the mean and the sample standard deviation of all the group's step rewards (eps as
    :func:`group_advantages`; a group with one step gets 0), and a token's advantage is the sum of the
    normalised rewards of the steps that end at or after it: A_t = Σ_{k: e_k ≥ t} s̃_k. 0 where ``mask`` is.
    """
    if step_rewards.shape != step_ends.shape or step_rewards.shape != mask.shape:
        raise ValueError(f"step_rewards {tuple(step_rewards.shape)}, step_ends {tuple(step_ends.shape)} and mask "
                         f"{tuple(mask.shape)} must have the same shape")
    rows = _grouped(torch.arange(step_rewards.shape[0]), group_size)
    normalised = torch.zeros_like(step_rewards, dtype=torch.float32)
    for group in rows:
        ends = step_ends[group]
        values = step_rewards[group][ends].float()
        if values.numel() < 2:
            continue
        scaled = (step_rewards[group].float() - values.mean()) / (values.std() + eps)
        normalised[group] = torch.where(ends, scaled, torch.zeros_like(scaled))
    to_go = normalised.flip(1).cumsum(1).flip(1)
    return to_go * float_mask(mask, to_go)
