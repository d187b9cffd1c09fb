"""The stages of ``alignkit pipeline`` and how they are linked.

A training stage (sft, rm, judge, ppo, dpo) is its own command run on its section of the pipeline config,
once :func:`wired` has set the keys of ``PipelineConfig.WIRED``: each stage writes output_dir/<stage>; rm,
judge, ppo and dpo start from output_dir/sft/model; ppo is scored by output_dir/rm, and the eval stage's
win rates by output_dir/judge. Its folder is finished once
``eval.json`` is there, which the engine writes last, after ``model/`` (an ensemble reward model: once
``ensemble.json`` is there, written after every member); a half-finished folder can resume when it holds
a checkpoint (``train.save_every``), as the command's ``--resume`` does. The eval stage is in evaluation.py.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignkit.pipeline.config import PipelineConfig
from alignkit.pipeline.evaluation import POLICIES, run_evaluation, summarise_evaluation
from alignkit.pipeline.folders import training_finished
from alignkit.train.checkpoint import list_checkpoints
from alignkit.train.preference import resolved_dpo_config, run_dpo
from alignkit.train.reward import run_rm
from alignkit.train.rl import run_rl
from alignkit.train.sft import run_sft


@dataclass(frozen=True)
class Stage:
    """One stage: ``reads`` are the stages whose folders it uses (when one of them runs again, so does this
    one); it cannot run without those of ``requires`` finished; ``run(config, resume)`` writes its folder;
    ``figure(folder)`` sums up a finished folder in a few words; ``resolve(section)`` is the section with the
    defaults its command fills in before writing config.yaml (e.g. DPO's β)."""

    name: str
    reads: tuple[str, ...]
    requires: tuple[str, ...]
    run: Callable[[PipelineConfig, bool], Any]
    finished: Callable[[Path], bool]
    resumable: Callable[[Path], bool]
    figure: Callable[[Path], str]
    resolve: Callable[[Any], Any] = lambda section: section

    def settings(self, config: PipelineConfig) -> Any:
        """The stage's section of ``config`` as its command resolves it: what its folder's config.yaml holds."""
        return self.resolve(getattr(config, self.name))


def wired(config: PipelineConfig) -> PipelineConfig:
    """``config`` with every key of ``PipelineConfig.WIRED`` set to its path under ``output_dir``."""
    for key, relative in PipelineConfig.WIRED.items():
        config = _replace(config, key.split("."), str(Path(config.output_dir, relative)))
    return config


def _replace(config: Any, keys: list[str], value: Any) -> Any:
    inner = value if len(keys) == 1 else _replace(getattr(config, keys[0]), keys[1:], value)
    return dataclasses.replace(config, **{keys[0]: inner})


def has_checkpoint(folder: Path) -> bool:
    """A checkpoint in the run folder, or in one of its ensemble members' folders."""
    return any(list_checkpoints(run) for run in (folder, *folder.glob("member-*")))


def _report(folder: Path) -> dict:
    """The folder's eval.json ({} when there is none)."""
    path = folder / "eval.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _change(report: dict, key: str, label: str) -> str:
    """``label before → after`` of ``key`` in an eval.json (``before``: its ``initial_`` value, when there)."""
    if not isinstance(report.get(key), (int, float)):
        return "-"
    before = report.get(f"initial_{key}")
    start = f"{before:.3f} → " if isinstance(before, (int, float)) else ""
    return f"{label} {start}{report[key]:.3f}"


def _ppo_figure(folder: Path) -> str:
    """The held-out reward when rl.eval_prompts asked for it, else the mean reward of the first and last iteration."""
    report = _report(folder)
    if "eval_reward" in report:
        return _change(report, "eval_reward", "held-out reward")
    path = folder / "metrics.jsonl"
    rows = [row for row in map(json.loads, path.read_text().splitlines()) if "reward" in row] if path.is_file() else []
    return f"reward {rows[0]['reward']:.3f} → {rows[-1]['reward']:.3f}" if rows else "-"


def _training(name: str, trainer: Callable, reads: tuple[str, ...], figure: Callable[[Path], str],
              resolve: Callable[[Any], Any] = lambda section: section) -> Stage:
    def run(config: PipelineConfig, resume: bool) -> Any:
        return trainer(getattr(config, name), resume=resume)

    return Stage(name, reads, reads, run, training_finished, has_checkpoint, figure, resolve)


def _evaluate(config: PipelineConfig, resume: bool) -> None:
    """The eval stage on the policies whose folders are finished."""
    root = Path(config.output_dir)
    run_evaluation(config, [policy for policy in POLICIES if training_finished(root / policy)], resume=resume)


STAGES = (
    _training("sft", run_sft, (), lambda folder: _change(_report(folder), "eval_loss", "held-out loss")),
    _training("rm", run_rm, ("sft",), lambda folder: _change(_report(folder), "eval_accuracy", "held-out accuracy")),
    _training("judge", run_rm, ("sft",),
              lambda folder: _change(_report(folder), "eval_accuracy", "held-out accuracy")),
    _training("ppo", run_rl, ("sft", "rm"), _ppo_figure),
    _training("dpo", run_dpo, ("sft",),
              lambda folder: _change(_report(folder), "eval_reward_accuracy", "held-out reward accuracy"),
              resolved_dpo_config),
    Stage("eval", ("sft", "rm", "judge", *POLICIES), ("sft", "rm"), _evaluate,
          lambda folder: (folder / "eval.json").is_file(), lambda folder: any(folder.glob("*/winrate.json")),
          lambda folder: summarise_evaluation(_report(folder))),
)
STAGE_BY_NAME = {stage.name: stage for stage in STAGES}
