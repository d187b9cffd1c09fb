"""Step labels from an AI judge, and the consensus of judge and rollouts.

The judge (any feedback-model backend) reads the problem and a solution's steps up to step k and is asked
whether step k is correct; its label is P(yes) = σ(log p("Yes") − log p("No")), the two answers scored as
the start of its reply. Zhang et al. 2025 ("The Lessons of Developing Process Reward Models in
Mathematical Reasoning") found rollout (Monte-Carlo) labels noisy and judge labels complementary, and
kept only the data where both agree: :func:`consensus_labels` keeps a step's rollout label where the
judge's verdict (P(yes) ≥ ½) is the same, and leaves the step unlabelled (None) where they differ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from alignkit.config import GenerationConfig
from alignkit.data.records import StepSolution
from alignkit.feedback.backends import FeedbackBackend

JUDGE_OPTIONS = ("Yes", "No")


def step_query(solution: StepSolution, k: int) -> tuple[dict, ...]:
    """The judge's question about step ``k`` (from 0) of ``solution``, as one user turn."""
    problem = next(m["content"] for m in reversed(solution.prompt) if m["role"] == "user")
    steps = "\n".join(solution.steps[:k + 1])
    return ({"role": "user", "content": f"Problem: {problem}\n\nSolution so far:\n{steps}\n\nIs the last step, "
                                        f"\"{solution.steps[k]}\", correct? Answer Yes or No."},)


def yes_probability(yes_logprob: float, no_logprob: float) -> float:
    """P(yes) between the two answers: σ(log p(yes) − log p(no)), computed without overflow."""
    difference = yes_logprob - no_logprob
    if difference >= 0:
        return 1 / (1 + math.exp(-difference))
    return math.exp(difference) / (1 + math.exp(difference))


def judge_step_labels(backend: FeedbackBackend, solution: StepSolution, generation: GenerationConfig) -> list[float]:
    """P(yes) of every step of ``solution`` by the judge ``backend``."""
    queries = [step_query(solution, k) for k in range(len(solution.steps))]
    return [yes_probability(*scores) for scores in backend.option_logprobs(queries, JUDGE_OPTIONS, generation)]


def consensus_labels(rollout: Sequence[float], judge: Sequence[float]) -> list[float | None]:
    """Each step's rollout label where the judge agrees (both ≥ ½ or both < ½), None where it does not."""
    if len(rollout) != len(judge):
        raise ValueError(f"{len(rollout)} rollout labels but {len(judge)} judge labels")
    return [label if (label >= 0.5) == (verdict >= 0.5) else None for label, verdict in zip(rollout, judge,
                                                                                             strict=True)]
