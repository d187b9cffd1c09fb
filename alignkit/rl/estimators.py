"""Advantage estimators by name (``rl.advantage``): how one iteration's sequence rewards, per-token KL
estimates and values become per-token advantages. The maths is in :mod:`alignkit.rl.advantages`;
each entry says what it needs and which ``rl`` settings it reads.

    gae            PPO (Ziegler et al. 2019): r_t = -β kl_t + [t = last] R, then GAE(γ, λ) on the value
                   model's V (Schulman et al. 2016), whitened over the tokens in the loss when
                   rl.whiten_advantages; the returns G_t = A_t + V_t train the value model
    group          GRPO (Shao et al. 2024, §4.1.2): R ← R - β Σ_t kl_t, A = (R - mean_group) / (std_group + eps)
                   (rl.group_scale none: centred only, Dr. GRPO), the same on every token of the reply
    leave_one_out  RLOO (Kool et al. 2019; Ahmadian et al. 2024): R ← R - β Σ_t kl_t, A = R minus the mean
                   of the other replies of its prompt, the same on every token of the reply

β is 0 here when the KL is in the loss instead (rl.kl_penalty: loss). Each algo has its estimator
(:data:`ALGO_ADVANTAGE`), used when rl.advantage is unset.

Step rewards from a process reward model (:class:`StepRewards`, ``process_reward`` in the config) enter gae
as dense rewards at each step's last token, and group as DeepSeekMath's process-supervision advantages
added to the outcome ones (:mod:`alignkit.rl.advantages`); leave_one_out does not take them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from alignkit.config import RLSettings
from alignkit.errors import ConfigError
from alignkit.rl.advantages import (
    gae,
    group_advantages,
    per_token_rewards,
    process_group_advantages,
    rloo_advantages,
)
from alignkit.tensors import masked_whiten


@dataclass(frozen=True)
class StepRewards:
    """Step rewards of one iteration's replies in the response frame: ``rewards`` (N, R) holds step k's
    reward at its last token, where ``ends`` (N, R, bool) is True; ``weight`` w scales them."""

    rewards: torch.Tensor
    ends: torch.Tensor
    weight: float


# (rewards (N,), kl (N, R), mask (N, R), trained (N, R), β, values (N, R) or None, settings, StepRewards or None)
#   -> advantages (N, R) (0 off ``trained``), returns (N, R) or None, rewards after the KL penalty (N,)
Estimate = Callable[..., tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]]


@dataclass(frozen=True)
class AdvantageEstimator:
    estimate: Estimate
    needs_values: bool  # reads the value model's predictions (the critic rl.algo ppo trains)
    grouped: bool  # a baseline from the other replies of the prompt: rl.samples_per_prompt >= 2
    reads: tuple[str, ...]  # the rl settings it reads besides the shared reward shaping
    takes_steps: bool  # uses step rewards (process_reward)


def _gae(rewards, kl, mask, trained, beta, values, s: RLSettings, steps: StepRewards | None):
    dense = None if steps is None else steps.weight * steps.rewards
    token_rewards = per_token_rewards(rewards, kl, mask, beta, dense)
    advantages, returns = gae(token_rewards, values, mask, s.gamma, s.lam)
    if s.whiten_advantages and int(trained.sum()) > 1:
        advantages = masked_whiten(advantages, trained)
    return advantages * trained, returns, rewards


def _per_reply(baseline: Callable[[torch.Tensor, RLSettings], torch.Tensor]) -> Estimate:
    """A sequence-level estimator: ``baseline`` of the KL-penalised rewards, on every token of each reply,
    plus w x the process-supervision advantages of step rewards when given."""

    def estimate(rewards, kl, mask, trained, beta, values, s: RLSettings, steps: StepRewards | None):
        penalised = rewards - beta * kl.sum(dim=1)
        advantages = baseline(penalised, s).unsqueeze(1).expand_as(kl)
        if steps is not None:
            advantages = advantages + steps.weight * process_group_advantages(steps.rewards, steps.ends, mask,
                                                                              s.samples_per_prompt)
        return advantages * trained, None, penalised

    return estimate


def _group(rewards: torch.Tensor, s: RLSettings) -> torch.Tensor:
    return group_advantages(rewards, s.samples_per_prompt, normalise_std=s.group_scale == "std")


def _leave_one_out(rewards: torch.Tensor, s: RLSettings) -> torch.Tensor:
    return rloo_advantages(rewards, s.samples_per_prompt)


ADVANTAGE_ESTIMATORS = {
    "gae": AdvantageEstimator(_gae, needs_values=True, grouped=False, reads=("gamma", "lam", "whiten_advantages"),
                              takes_steps=True),
    "group": AdvantageEstimator(_per_reply(_group), needs_values=False, grouped=True, reads=("group_scale",),
                                takes_steps=True),
    "leave_one_out": AdvantageEstimator(_per_reply(_leave_one_out), needs_values=False, grouped=True, reads=(),
                                        takes_steps=False),
}
ALGO_ADVANTAGE = {"ppo": "gae", "grpo": "group", "rloo": "leave_one_out"}


def advantage_name(settings: RLSettings) -> str:
    """``rl.advantage``, or the estimator of ``rl.algo`` when it is unset."""
    return settings.advantage or ALGO_ADVANTAGE[settings.algo]


def advantage_estimator(settings: RLSettings) -> AdvantageEstimator:
    """The estimator :func:`advantage_name` names; ConfigError listing the names for an unknown one."""
    name = advantage_name(settings)
    if name not in ADVANTAGE_ESTIMATORS:
        raise ConfigError(f"rl.advantage: unknown estimator {name!r}; expected one of "
                          f"{', '.join(ADVANTAGE_ESTIMATORS)}")
    return ADVANTAGE_ESTIMATORS[name]
