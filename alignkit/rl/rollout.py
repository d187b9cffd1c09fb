"""Rollouts: sampled completions turned into the rows that RL updates train on, and their advantages.

A completion of prompt tokens p_1..p_P is r_1..r_R; its sequence is p_1..p_P r_1..r_R. Per-token
quantities (log-probabilities, values, advantages, returns) live in the *response frame*: an
(N, R_max) tensor whose row i holds completion i's R_i response tokens from column 0, with a mask.
:func:`collate_rollouts` moves them to the model's next-token frame, (B, T - 1), where position t
predicts token t + 1, so a response token at sequence position P + j sits at column P + j - 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from alignkit.config import RLSettings
from alignkit.rl.estimators import StepRewards, advantage_estimator, advantage_name
from alignkit.rl.kl import kl_estimate
from alignkit.tensors import IGNORE_INDEX

PER_TOKEN = ("old_logps", "ref_logps", "advantages", "returns", "old_values")


@dataclass
class RolloutRow:
    """One completion ready for updates: its sequence, where the response starts, and per-token
    tensors over its R response tokens (``returns`` and ``old_values`` only with a value model).
    ``in_loss`` False leaves its tokens out of the loss (``rl.unfinished: drop``). ``kl_coef``: the
    β of the iteration that collected it, the weight of the KL term in the loss (``rl.kl_penalty:
    loss``); 0, no KL term."""

    input_ids: list[int]
    prompt_length: int
    old_logps: torch.Tensor
    ref_logps: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor | None = None
    old_values: torch.Tensor | None = None
    in_loss: bool = True
    kl_coef: float = 0.0

    @property
    def response_length(self) -> int:
        return len(self.input_ids) - self.prompt_length


def collate_rollouts(rows: list[RolloutRow], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (response tokens, else IGNORE),
    (B, T); ``response_mask`` (the response tokens of the rows in the loss) and each per-token field
    present on the rows in the next-token frame, (B, T - 1); ``logits_from``, the first position whose
    logits are needed (the shortest prompt's last token); ``kl_coef``, each row's β, (B,); ``num_rows``
    and ``num_tokens`` (non-pad tokens)."""
    width = max(len(row.input_ids) for row in rows)
    batch = {
        "input_ids": torch.full((len(rows), width), pad_token_id, dtype=torch.long),
        "attention_mask": torch.zeros((len(rows), width), dtype=torch.long),
        "labels": torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long),
        "response_mask": torch.zeros((len(rows), width - 1), dtype=torch.bool),
    }
    fields = [name for name in PER_TOKEN if getattr(rows[0], name) is not None]
    for name in fields:
        batch[name] = torch.zeros((len(rows), width - 1), dtype=torch.float32)
    for i, row in enumerate(rows):
        n, p = len(row.input_ids), row.prompt_length
        batch["input_ids"][i, :n] = torch.tensor(row.input_ids, dtype=torch.long)
        batch["attention_mask"][i, :n] = 1
        batch["labels"][i, p:n] = batch["input_ids"][i, p:n]
        batch["response_mask"][i, p - 1 : n - 1] = row.in_loss
        for name in fields:
            batch[name][i, p - 1 : n - 1] = getattr(row, name)
    batch["kl_coef"] = torch.tensor([row.kl_coef for row in rows], dtype=torch.float32)
    batch["logits_from"] = torch.tensor(min(row.prompt_length for row in rows) - 1)
    batch["num_rows"] = torch.tensor(len(rows))
    batch["num_tokens"] = batch["attention_mask"].sum()
    return batch


def response_frame(per_token: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Each row's values at its response tokens, from a next-token-frame tensor (B, T - 1)."""
    return [per_token[i][batch["response_mask"][i]] for i in range(per_token.shape[0])]


def pad_responses(values: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Response-frame rows stacked into (N, R_max) with zeros after each row, and the (N, R_max) mask."""
    width = max(len(v) for v in values)
    stacked = torch.zeros((len(values), width))
    mask = torch.zeros((len(values), width), dtype=torch.bool)
    for i, v in enumerate(values):
        stacked[i, : len(v)] = v
        mask[i, : len(v)] = True
    return stacked, mask


@dataclass
class Advantages:
    """What :func:`compute_advantages` returns, in the response frame (N, R_max)."""

    advantages: torch.Tensor
    returns: torch.Tensor | None
    kl: torch.Tensor  # per-token KL estimate to the reference, 0 on padding
    rewards: torch.Tensor  # (N,) sequence rewards after penalties, scaling and clipping


def compute_advantages(
    scores: torch.Tensor,
    old_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    mask: torch.Tensor,
    settings: RLSettings,
    kl_coef: float,
    values: torch.Tensor | None = None,
    in_loss: torch.Tensor | None = None,
    steps: StepRewards | None = None,
) -> Advantages:
    """Advantages of one iteration's completions (completions of one prompt contiguous), by the
    estimator ``rl.advantage`` names (:mod:`alignkit.rl.estimators`; unset: the algo's).

    ``scores``: (N,) sequence rewards (reward model, function or checker, penalties applied);
    whitened and clipped first when the settings ask. With ``kl_penalty: reward`` the estimator
    subtracts β·kl (β = ``kl_coef``, kl by ``rl.kl_estimator``): per token for gae, summed over the
    reply for the sequence-level ones; with ``kl_penalty: loss`` the rewards carry no KL (the update
    adds β·kl_t to the loss instead). ``values``: (N, R_max), for an estimator that reads a value
    model. ``in_loss``: (N,) bool, the completions whose tokens carry a loss (default all); the
    others get zero advantages but still count in their group's baseline, and gae whitens over the
    valid tokens of the completions in the loss. ``steps``: step rewards of a process reward model, for an
    estimator that takes them (ValueError otherwise).
    """
    estimator = advantage_estimator(settings)
    if estimator.needs_values and values is None:
        raise ValueError(f"the {advantage_name(settings)} advantage estimator needs the value model's values")
    if steps is not None and not estimator.takes_steps:
        raise ValueError(f"the {advantage_name(settings)} advantage estimator does not take step rewards")
    rewards = scores.float()
    if settings.whiten_rewards:
        rewards = (rewards - rewards.mean()) / (rewards.std() + 1e-8) if rewards.numel() > 1 else rewards * 0
    if settings.reward_clip is not None:
        rewards = rewards.clamp(-settings.reward_clip, settings.reward_clip)
    kl = kl_estimate(old_logps, ref_logps, settings.kl_estimator, mask)
    beta = kl_coef if settings.kl_penalty == "reward" else 0.0
    trained = mask if in_loss is None else mask & in_loss.unsqueeze(1)
    advantages, returns, penalised = estimator.estimate(rewards, kl, mask, trained, beta, values, settings, steps)
    return Advantages(advantages, returns, kl, penalised)
