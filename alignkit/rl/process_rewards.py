"""Step rewards for RL from a process reward model: each step's probability of being right, placed at the
token where the step ends (:mod:`alignkit.rl.steps`), in the response frame the advantage estimators read
(:class:`~alignkit.rl.estimators.StepRewards`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from alignkit.config import ProcessRewardConfig
from alignkit.data.records import Prompt
from alignkit.errors import DataError
from alignkit.models.loading import model_folder
from alignkit.models.process import PRMScorer
from alignkit.rl.estimators import StepRewards
from alignkit.rl.generation import Completion
from alignkit.rl.steps import solution_steps, step_token_ends


def reply_step_probabilities(scorer: PRMScorer, prompts: Sequence, texts: Sequence[str]) -> list[torch.Tensor | None]:
    """Each reply's step probabilities under ``scorer``, over its :func:`~alignkit.rl.steps.solution_steps`;
    None for a reply without steps or too long for the scorer's ``max_length``."""
    out: list[torch.Tensor | None] = [None] * len(texts)
    scored, tokenised = [], []
    for i, (prompt, text) in enumerate(zip(prompts, texts, strict=True)):
        steps = solution_steps(text)
        if not steps:
            continue
        try:
            tokenised.append(scorer.tokenise(prompt, steps, f"reply {i}"))
        except DataError:
            continue
        scored.append(i)
    for i, probabilities in zip(scored, scorer.scores_of(tokenised), strict=True):
        out[i] = probabilities
    return out


class ProcessReward:
    """``(prompts, completions, width)`` → :class:`StepRewards` (N, width) of the process reward model at
    ``config.path``; the policy's ``tokenizer`` places each step on the policy's tokens. A reply without
    steps, or too long for the model's ``max_length``, gets no step rewards."""

    def __init__(self, config: ProcessRewardConfig, tokenizer, device: torch.device | str = "cpu"):
        self.scorer = PRMScorer(model_folder(Path(config.path)), batch_size=config.batch_size,
                                max_length=config.max_length, device=device)
        self.tokenizer, self.weight = tokenizer, config.weight

    def __call__(self, prompts: Sequence[Prompt], completions: Sequence[Completion], width: int) -> StepRewards:
        rewards = torch.zeros(len(completions), width)
        ends = torch.zeros(len(completions), width, dtype=torch.bool)
        probabilities = reply_step_probabilities(self.scorer, [p.prompt for p in prompts],
                                                 [c.text for c in completions])
        for i, (completion, p) in enumerate(zip(completions, probabilities, strict=True)):
            if p is not None:
                positions = step_token_ends(completion.token_ids, self.tokenizer, completion.text)
                rewards[i, positions] = p.float()
                ends[i, positions] = True
        return StepRewards(rewards, ends, self.weight)
