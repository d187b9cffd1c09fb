"""Process reward models: a transformer with a one-output token-classification head, read at the last
token of each step of a solution.

The network is a Hugging Face ``AutoModelForTokenClassification`` with one output (for the Llama family
``LlamaForTokenClassification``: the backbone plus a linear ``score`` head), so a trained PRM is a plain
Hugging Face folder. Its logit at step k's last token is s_k, and p_k = σ(s_k) is the probability that step
k is right given the prompt and steps 1..k. The separator that joins the steps is stored in the saved
config (``prm_separator``), so a scorer renders solutions as training did.

A solution's score aggregates its step probabilities (:data:`AGGREGATIONS`): the product Π_k p_k
(Lightman et al. 2023), the minimum (Wang et al. 2024, Math-Shepherd), the last step's p_K, or the mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from accelerate.utils import set_seed
from peft import PeftModel
from transformers import AutoModelForTokenClassification, PreTrainedModel

from alignkit.config import LoraConfig, ModelConfig
from alignkit.data.collate import collate_steps
from alignkit.data.records import as_messages
from alignkit.data.tokenize import StepTokens, tokenize_steps
from alignkit.errors import ConfigError
from alignkit.models.loading import load_pretrained_with_info, load_tokenizer
from alignkit.models.lora import apply_lora
from alignkit.models.reward import say_new_weights

AGGREGATIONS = {
    "min": lambda p: p.min(),
    "product": lambda p: p.prod(),
    "last": lambda p: p[-1],
    "mean": lambda p: p.mean(),
}
"""How a solution's step probabilities p (shape (K,)) become one score."""


def aggregate(step_probabilities: torch.Tensor, how: str) -> float:
    """One score of a solution from its step probabilities, by :data:`AGGREGATIONS`."""
    if how not in AGGREGATIONS:
        raise ConfigError(f"aggregation {how!r}: expected one of {', '.join(AGGREGATIONS)}")
    return float(AGGREGATIONS[how](step_probabilities))


def load_process_reward_model(model_config: ModelConfig, lora: LoraConfig, seed: int,
                              separator: str) -> PreTrainedModel | PeftModel:
    """A PRM to train, from a causal LM (a new head, randomly initialised from ``seed``, as are LoRA's
    adapters) or a saved PRM (its trained head); ``separator`` is written into its config."""
    set_seed(seed)
    net, info = load_pretrained_with_info(model_config, AutoModelForTokenClassification, num_labels=1)
    say_new_weights(net, info, model_config.name, seed, what="process reward")
    net.config.prm_separator = separator
    return apply_lora(net, lora, task_type="TOKEN_CLS") if lora.enabled else net


def step_logits(net: PreTrainedModel | PeftModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """The head's logit s at each (row, column) of a right-padded batch: shape (K,), float32."""
    return net(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[rows, columns, 0].float()


class PRMScorer:
    """``step_scores(prompts, solutions)``: each step's probability of being right, batched, without
    gradients, with the rendering training used; ``score(..., aggregation)`` one number per solution."""

    def __init__(self, path: str | Path, *, batch_size: int = 8, max_length: int = 1024,
                 device: str | torch.device = "cpu"):
        self.net, info = load_pretrained_with_info(ModelConfig(name=str(path)), AutoModelForTokenClassification,
                                                   device, num_labels=1)
        say_new_weights(self.net, info, str(path), None, what="process reward")
        self.net.eval()
        self.tokenizer = load_tokenizer(str(path))
        self.separator = getattr(self.net.config, "prm_separator", "\n")
        self.batch_size, self.max_length, self.device = batch_size, max_length, torch.device(device)

    def step_scores(self, prompts: Sequence, solutions: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        """p_k of every step of every (prompt, steps); each solution's tensor has one entry per step."""
        if len(prompts) != len(solutions):
            raise ValueError(f"{len(prompts)} prompts but {len(solutions)} solutions")
        return self.scores_of([self.tokenise(prompt, steps, f"solution {i}")
                               for i, (prompt, steps) in enumerate(zip(prompts, solutions, strict=True))])

    @torch.no_grad()
    def scores_of(self, tokenised: Sequence[StepTokens]) -> list[torch.Tensor]:
        """p_k of every step of solutions already tokenised by :meth:`tokenise`."""
        scores = []
        for start in range(0, len(tokenised), self.batch_size):
            chunk = tokenised[start:start + self.batch_size]
            batch = collate_steps([t.input_ids for t in chunk], [t.step_ends for t in chunk],
                                  self.tokenizer.pad_token_id)
            logits = step_logits(self.net, batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device),
                                 batch["step_row"], batch["step_column"])
            scores += list(torch.sigmoid(logits).cpu().split([len(t.step_ends) for t in chunk]))
        return scores

    def tokenise(self, prompt, steps: Sequence[str], location: str) -> StepTokens:
        """A solution as training rendered it, cut to ``max_length`` from the left; DataError naming
        ``location`` when its steps and reply header alone do not fit."""
        return tokenize_steps(as_messages(prompt, location), list(steps), self.tokenizer, max_length=self.max_length,
                              separator=self.separator, location=location)

    def score(self, prompts: Sequence, solutions: Sequence[Sequence[str]], aggregation: str = "min") -> list[float]:
        """One score per solution: its step probabilities aggregated (:data:`AGGREGATIONS`)."""
        return [aggregate(p, aggregation) for p in self.step_scores(prompts, solutions)]
