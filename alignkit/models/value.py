"""The policy together with its value model, as one module that one optimizer and one engine train.

PPO needs V(s_t), the expected return from each response position. Two layouts:

- ``head``: a linear value head on the policy's own final hidden state (a shared trunk, as in
  Ziegler et al. 2019's code and TRL's former PPOTrainer); cheap, but the value loss also moves the policy.
- ``separate``: a second network, a one-output ``AutoModelForSequenceClassification`` read at every
  position (as OpenRLHF and the InstructGPT paper's critic), started from the reward model (its
  trained ``score`` head; Ouyang et al. 2022, §3.5) or from the policy's weights (a new head).

``ActorCritic(input_ids, attention_mask)`` returns ``(logits (B, T, V), values (B, T) or None)``;
``values[:, t]`` is read at position t, so it values the state before token t + 1, aligned with
the log-probability of token t + 1 that the same position's logits give.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModelForSequenceClassification

from alignkit.config import LoraConfig, ModelConfig
from alignkit.models.loading import load_pretrained
from alignkit.models.lora import apply_lora
from alignkit.models.reward import RewardModel


class ActorCritic(nn.Module):
    """``policy`` (a causal LM, possibly with LoRA) with a value ``head`` on its hidden state, a
    separate ``critic`` (:class:`~alignkit.models.reward.RewardModel`), or neither (critic-free RL)."""

    def __init__(self, policy: nn.Module, *, critic: RewardModel | None = None, head: nn.Linear | None = None):
        super().__init__()
        if critic is not None and head is not None:
            raise ValueError("give a value head or a separate critic, not both")
        self.policy, self.critic, self.head = policy, critic, head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, with_values: bool = True,
                logits_from: int = 0):
        """``logits_from``: compute logits for positions ≥ it only (shape (B, T - logits_from, V))."""
        with_head = with_values and self.head is not None
        out = self.policy(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                          output_hidden_states=with_head, logits_to_keep=input_ids.shape[1] - logits_from)
        if with_head:
            return out.logits, self.head(out.hidden_states[-1]).squeeze(-1).float()
        if with_values and self.critic is not None:
            return out.logits, token_values(self.critic, input_ids, attention_mask)
        return out.logits, None


def token_values(critic: RewardModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The critic's scalar head read at every position, (B, T)."""
    model = critic.hf_model
    backbone = getattr(model, model.base_model_prefix)
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    return model.score(hidden).squeeze(-1).float()


def value_head(hidden_size: int) -> nn.Linear:
    """A linear value head starting at zero (every first prediction is 0, the value of an unknown return)."""
    head = nn.Linear(hidden_size, 1)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


def load_critic(source: str, model_config: ModelConfig, lora: LoraConfig) -> RewardModel:
    """A separate critic started from the model folder ``source`` (a reward model keeps its trained
    head; a causal LM gets a new one), with LoRA adapters (and a trainable head) when enabled."""
    net = load_pretrained(ModelConfig(name=source, cache_dir=model_config.cache_dir, dtype=model_config.dtype),
                          AutoModelForSequenceClassification, num_labels=1)
    if lora.enabled:
        net = apply_lora(net, lora, task_type="SEQ_CLS")
    return RewardModel(net)
