"""Sampling replies from a policy: RL's rollouts, evaluation, AI feedback and the annotation app."""

from __future__ import annotations

import dataclasses

from alignkit.config.base import option


@dataclasses.dataclass
class GenerationConfig:
    """Sampling replies from a policy: one reply per prompt."""

    max_new_tokens: int = option(
        128, "Longest reply in tokens, its stop token included; a reply not stopped by then is cut (unfinished).", min=1
    )
    temperature: float = option(
        0.7, "Softmax temperature of sampling; 0 is greedy decoding (always the most likely token).", min=0
    )
    top_p: float = option(
        1.0, "Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p (1: all).",
        min=1e-6, max=1, only="temperature > 0",
    )
    top_k: int = option(
        0, "Sample among the k most likely tokens only (0: no top-k limit).", min=0, only="temperature > 0"
    )
    batch_size: int = option(16, "Prompts per generate call (prompts of similar length are batched together).", min=1)
    max_prompt_length: int = option(
        512, "Longest prompt in tokens (chat template included); longer ones lose their oldest tokens, counted.", min=1
    )
    seed: int = option(0, "Seed of the sampling; the same seed, prompts and batch_size give the same replies on CPU.")
