"""Two policies answer the same prompts and a reward model (the judge) scores every reply: the shared core
of ``alignkit eval winrate`` and ``alignkit eval hacking``; ``alignkit eval best-of-n`` shares its sampling
(:func:`sample_replies`) and checks.

Prompts come in named sets (held-out prompts, probes, adversarial prompts). Each policy is loaded once
and samples every set with the same ``generation.seed``, so a set's replies do not depend on which other
sets are asked; the judge is loaded once, after both policies are freed, and scores every reply.
"""

from __future__ import annotations

import gc
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from alignkit.config import GenerationConfig
from alignkit.errors import AlignkitError
from alignkit.io import atomic_write_text
from alignkit.models.scorer import RewardScorer
from alignkit.rl.generation import Completion, load_policy_generator

SIDES = ("policy", "baseline")


@dataclass(frozen=True)
class Judged:
    """One set of prompts, one reply per prompt from each side (``replies[side][i]`` answers
    ``prompts[i]``) and the judge's reward of each reply (``rewards[side]``, shape (len(prompts),))."""

    prompts: list[tuple[dict, ...]]
    replies: dict[str, list[Completion]]
    rewards: dict[str, torch.Tensor]

    def texts(self, side: str) -> list[str]:
        return [c.text for c in self.replies[side]]

    def lengths(self, side: str) -> list[int]:
        """Reply lengths in tokens (of that side's own tokenizer)."""
        return [c.num_tokens for c in self.replies[side]]

    def side_summary(self) -> dict[str, float]:
        """Per side: mean reply length in tokens, share of replies cut at max_new_tokens, mean reward
        (keys ``{side}_mean_tokens``, ``{side}_unfinished``, ``{side}_mean_reward``)."""
        summary = {}
        for side in SIDES:
            completions = self.replies[side]
            summary[f"{side}_mean_tokens"] = sum(c.num_tokens for c in completions) / len(completions)
            summary[f"{side}_unfinished"] = sum(not c.finished for c in completions) / len(completions)
            summary[f"{side}_mean_reward"] = float(self.rewards[side].mean())
        return summary

    def rows(self, extra: dict[str, list] | None = None) -> list[dict]:
        """One JSON-ready row per prompt: the prompt, and per side the reply, its reward, tokens and whether
        it finished; ``extra`` adds per-prompt fields (``{name: [value per prompt]}``)."""
        rows = []
        for i, prompt in enumerate(self.prompts):
            row = {"prompt": list(prompt)}
            for side in SIDES:
                completion = self.replies[side][i]
                row.update({side: completion.text, f"{side}_reward": float(self.rewards[side][i]),
                            f"{side}_tokens": completion.num_tokens, f"{side}_finished": completion.finished})
            row.update({name: values[i] for name, values in (extra or {}).items()})
            rows.append(row)
        return rows


@dataclass(frozen=True)
class Comparison:
    """Every judged set by name, and the seconds spent generating and judging (model loading included)."""

    sets: dict[str, Judged]
    generation_seconds: float
    judging_seconds: float


def compare(
    policy: str | Path, baseline: str | Path, judge: str | Path, prompt_sets: dict[str, list[tuple[dict, ...]]],
    generation: GenerationConfig, *, judge_batch_size: int = 8, judge_max_length: int = 1024,
    device: str | torch.device | None = None,
) -> Comparison:
    """Sample one reply per prompt of every set from ``policy`` and from ``baseline`` (run folders, model
    folders or model names) and score them all with ``judge`` (a reward-model run, model or ensemble folder).
    ``device``: None is the GPU when there is one, else the CPU. Raises AlignkitError for a missing judge
    folder or an empty set, before any model is loaded."""
    check_reward_folder(judge)
    empty = [name for name, prompts in prompt_sets.items() if not prompts]
    if empty or not prompt_sets:
        raise AlignkitError(f"no prompts to evaluate on ({', '.join(empty) or 'no prompt sets'})")
    device = default_device(device)
    replies, generation_seconds = sample_sides(policy, baseline, prompt_sets, generation, device)
    start = time.perf_counter()
    scorer = RewardScorer(judge, batch_size=judge_batch_size, max_length=judge_max_length, device=device)
    sets = {}
    for name, prompts in prompt_sets.items():
        by_side = {side: replies[side][name] for side in SIDES}
        rewards = {side: scorer.score(prompts, [c.text for c in by_side[side]]) for side in SIDES}
        sets[name] = Judged(list(prompts), by_side, rewards)
    return Comparison(sets, generation_seconds, time.perf_counter() - start)


def sample_sides(policy: str | Path, baseline: str | Path, prompt_sets: dict[str, list],
                 generation: GenerationConfig, device: str | torch.device | None) -> tuple[dict, float]:
    """Each side's replies, ``{side: {set name: [Completion]}}`` (:func:`sample_replies`, one policy at a
    time), and the seconds spent (model loading included)."""
    start = time.perf_counter()
    replies = {side: sample_replies(path, prompt_sets, generation, default_device(device))
               for side, path in zip(SIDES, (policy, baseline), strict=True)}
    return replies, time.perf_counter() - start


def sample_replies(path: str | Path, prompt_sets: dict[str, list], generation: GenerationConfig,
                   device: str | torch.device) -> dict[str, list[Completion]]:
    """One reply per prompt of each set from the policy at ``path``, each set sampled with
    ``generation.seed``; the model is loaded once and freed before returning."""
    generator = load_policy_generator(path, device)
    replies = {name: generator.generate(prompts, generation) for name, prompts in prompt_sets.items()}
    del generator
    free_memory()
    return replies


def check_reward_folder(path: str | Path, role: str = "judge") -> None:
    """Raise AlignkitError, naming the ``role`` (judge, gold), unless ``path`` is a folder."""
    if not Path(path).is_dir():
        raise AlignkitError(f"{role} '{path}': no such folder (expected a reward-model run, model or ensemble folder)")


def default_device(device: str | torch.device | None) -> str | torch.device:
    """``device``, or when None the GPU when there is one, else the CPU."""
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def free_memory() -> None:
    """Collect garbage and return the GPU's cached memory, after a model's last reference is dropped."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def write_rows(path: Path, rows: list[dict]) -> Path:
    """``rows`` as JSON lines at ``path``, atomically (UTF-8, non-ASCII kept as is)."""
    return atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
