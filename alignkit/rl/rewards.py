"""Where RL's sequence rewards come from: a reward model, a Python function, or a verifiable checker.

A :class:`RewardSource` maps prompts (:class:`~alignkit.data.records.Prompt`) and their sampled
completions (:class:`~alignkit.rl.generation.Completion`) to one float reward per completion.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch

from alignkit.config import RewardSourceConfig
from alignkit.data.records import Prompt
from alignkit.errors import AlignkitError, ConfigError
from alignkit.rl.checkers import gsm8k_correct
from alignkit.rl.generation import Completion


class RewardSource(Protocol):
    def __call__(self, prompts: Sequence[Prompt], completions: Sequence[Completion]) -> torch.Tensor:
        """Rewards, shape (N,), float32, one per (prompt, completion)."""
        ...


class ModelReward:
    """A trained reward model or ensemble (:class:`~alignkit.models.scorer.RewardScorer`) scoring the
    rendered chat (prompt + reply text); a reply cut at the token limit is rendered without the
    end-of-turn token, so the reward model does not read it as a finished turn."""

    def __init__(self, config: RewardSourceConfig, device: torch.device | str = "cpu"):
        from alignkit.models.scorer import RewardScorer

        self.scorer = RewardScorer(config.path, combine=config.combine, lam=config.lam, batch_size=config.batch_size,
                                   max_length=config.max_length, device=device,
                                   length_normalise=config.length_normalise)

    def __call__(self, prompts, completions):
        return self.scorer.score([p.prompt for p in prompts], [c.text for c in completions],
                                 finished=[c.finished for c in completions]).float()


class FunctionReward:
    """A user's callable ``f(prompts, completions) -> sequence of floats``, named ``'module:function'``.

    ``prompts`` are :class:`Prompt` records (``.prompt`` messages, ``.answer``); ``completions`` are
    :class:`Completion` objects (``.text``, ``.token_ids``, ``.finished``).
    """

    def __init__(self, spec: str):
        module_name, _, name = spec.partition(":")
        if not module_name or not name:
            raise ConfigError(f"reward.function: expected 'package.module:function', got {spec!r}")
        try:
            self.function = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"reward.function: cannot load {spec!r} ({exc})") from None
        self.spec = spec

    def __call__(self, prompts, completions):
        values = list(self.function(list(prompts), list(completions)))
        if len(values) != len(completions):
            raise AlignkitError(f"reward function {self.spec}: returned {len(values)} rewards for "
                                f"{len(completions)} completions (expected one each)")
        bad = [v for v in values if not isinstance(v, (int, float)) or not math.isfinite(v)]
        if bad:
            raise AlignkitError(f"reward function {self.spec}: returned {bad[0]!r} (expected finite numbers)")
        return torch.tensor(values, dtype=torch.float32)


class GSM8KReward:
    """1 when the completion's final number equals the prompt's reference answer, else 0."""

    def __call__(self, prompts, completions):
        missing = next((i for i, p in enumerate(prompts) if p.answer is None), None)
        if missing is not None:
            raise AlignkitError(f"reward kind gsm8k: prompt {missing} has no reference 'answer' (use data with "
                                "answers, e.g. data.train: gsm8k)")
        return torch.tensor([float(gsm8k_correct(c.text, p.answer)) for p, c in zip(prompts, completions, strict=True)])


def build_monitors(specs: Sequence[str], max_length: int,
                   device: torch.device | str = "cpu") -> dict[str, RewardSource]:
    """The rewards ``rl.monitors`` names, by the name they are logged under: a reward-model folder (run,
    model or ensemble folder, reading at most ``max_length`` tokens) by the folder's name, a
    ``'module:function'`` by the function's name. ConfigError when two share a name, or when an entry is
    neither an existing folder nor a ``'module:function'``."""
    monitors: dict[str, RewardSource] = {}
    for spec in specs:
        folder = Path(spec)
        if not folder.is_dir() and ":" not in spec:
            raise ConfigError(f"rl.monitors: {spec!r} is neither a reward-model folder (no such folder) nor a "
                              "'package.module:function'")
        name = folder.name if folder.is_dir() else spec.rpartition(":")[2]
        if name in monitors:
            raise ConfigError(f"rl.monitors: two monitors would both be logged as monitor_{name}; rename one")
        if folder.is_dir():
            monitors[name] = ModelReward(RewardSourceConfig(kind="model", path=str(folder), max_length=max_length),
                                         device)
        else:
            monitors[name] = FunctionReward(spec)
    return monitors


def build_reward(config: RewardSourceConfig, device: torch.device | str = "cpu") -> RewardSource:
    """The reward source ``config`` names; ConfigError when its required key is missing."""
    if config.kind == "model":
        if config.path is None:
            raise ConfigError("reward.path: reward kind 'model' needs the reward model's folder")
        return ModelReward(config, device)
    if config.kind == "function":
        if config.function is None:
            raise ConfigError("reward.function: reward kind 'function' needs 'package.module:function'")
        return FunctionReward(config.function)
    return GSM8KReward()
