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
        scored, tokenised = [], []
        for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
            steps = solution_steps(completion.text)
            if not steps:
                continue
            try:
                tokenised.append(self.scorer.tokenise(prompt.prompt, steps, f"reply {i}"))
            except DataError:
                continue
            scored.append(i)
        for i, probabilities in zip(scored, self.scorer.scores_of(tokenised), strict=True):
            positions = step_token_ends(completions[i].token_ids, self.tokenizer, completions[i].text)
            rewards[i, positions] = probabilities.float()
            ends[i, positions] = True
        return StepRewards(rewards, ends, self.weight)
