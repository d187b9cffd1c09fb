"""An AI judge for win rates: a feedback model asked which of two replies is better.

The question is the one ``alignkit cai label`` asks (:func:`~alignkit.feedback.rlaif.label_chunk`): the
prompt, the two replies as options (A) and (B), and the comparison question of a principle of a
constitution, drawn per question (seeded by ``seed`` and the question's place, recorded). It is asked in
both orders and the option probabilities are averaged over the two (:func:`~alignkit.feedback.labels.
soft_labels`), which removes the judge's position bias:

    P(first better) = ½ [p_A(first listed as A) + (1 - p_A(second listed as A))]

Two replies with the same text are a tie, ½, without asking. The feedback model is a local Hugging Face
model or an OpenAI-compatible endpoint (:class:`~alignkit.feedback.config.FeedbackModelConfig`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from alignkit.config import GenerationConfig
from alignkit.feedback.backends import FeedbackBackend
from alignkit.feedback.config import FeedbackModelConfig, LabelSettings
from alignkit.feedback.constitution import load_constitution
from alignkit.feedback.labels import soft_labels
from alignkit.feedback.rlaif import label_chunk
from alignkit.feedback.runs import in_chunks, open_backend


@dataclass(frozen=True)
class AIJudged:
    """P(first reply better) per prompt, shape (n,), and the principle each prompt was judged under (None
    for a tie of identical texts, which is not asked)."""

    preferences: torch.Tensor
    principles: list[str | None]


@dataclass(frozen=True)
class AIJudge:
    feedback: FeedbackModelConfig
    constitution: str = "default"
    seed: int = 0

    def __str__(self) -> str:
        return f"ai:{self.feedback.model}"

    def judge(
        self, prompts: Sequence[tuple[dict, ...]], first: Sequence[str], second: Sequence[str],
        generation: GenerationConfig, out_dir: Path, backend: FeedbackBackend | None = None,
    ) -> AIJudged:
        """Judge ``first[i]`` against ``second[i]`` as replies to ``prompts[i]`` (module doc). ``out_dir``
        holds an endpoint's response cache; ``backend``: a ready backend instead of ``self.feedback``'s."""
        principles = load_constitution(self.constitution).for_comparison()
        pairs = [{"prompt": p, "first": a, "second": b} for p, a, b in zip(prompts, first, second, strict=True)]
        asked = [i for i, pair in enumerate(pairs) if pair["first"].strip() != pair["second"].strip()]
        preferences = torch.full((len(pairs),), 0.5, dtype=torch.float64)
        drawn: list[str | None] = [None] * len(pairs)
        if asked:
            with open_backend(self, out_dir, backend) as opened:  # self.feedback names the backend
                results = in_chunks("ai judge", [pairs[i] for i in asked], generation.batch_size,
                                    lambda start, chunk: label_chunk(opened, chunk, start, principles, (),
                                                                     LabelSettings(swap=True), self.seed,
                                                                     generation))
            labels = soft_labels(torch.tensor([r["first_logprobs"] for r in results], dtype=torch.float64),
                                 torch.tensor([r["swapped_logprobs"] for r in results], dtype=torch.float64))
            preferences[asked] = labels.label
            for i, result in zip(asked, results, strict=True):
                drawn[i] = result["principle"]
        return AIJudged(preferences, drawn)
