"""Run the pipeline: plan what each listed stage does, run the stages in order, print a summary table.

Each listed stage gets one of three statuses before anything runs:

- skipped: its folder is finished; it is reused as it is;
- resumed: its folder is half-finished and holds a checkpoint (eval: a finished comparison); the stage
  continues from there;
- done: anything else; the stage runs from the start, in an emptied folder.

A stage that runs makes every later stage that reads its folder run from the start as well (their
folders were built from the earlier result). A reused or resumed folder must have been written with
the settings the config asks for now: its ``config.yaml`` is compared with the stage's section, and a
difference is a ConfigError naming the key, so a changed config never meets an old result silently.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from rich.table import Table

from alignkit.config import to_dict
from alignkit.console import console
from alignkit.errors import AlignkitError, ConfigError
from alignkit.pipeline.config import PipelineConfig
from alignkit.pipeline.stages import STAGE_BY_NAME, STAGES, Stage, wired
from alignkit.train.rl import check_rl_config


@dataclass(frozen=True)
class Planned:
    stage: Stage
    folder: Path
    action: Literal["skip", "resume", "fresh"]
    reason: str  # printed before the stage runs


@dataclass(frozen=True)
class StageResult:
    stage: str
    status: Literal["done", "skipped", "resumed"]
    seconds: float
    figure: str


def run_pipeline(config: PipelineConfig) -> list[StageResult]:
    """Run the listed stages of ``config`` (as loaded: the wired keys are set here) and print the summary
    table, also when a stage stops with an error or an interruption (then with the stages finished so far)."""
    config = wired(config)
    check_pipeline_config(config)
    steps, results = plan(config), []
    try:
        for step in steps:
            results.append(_execute(step, config))
    finally:
        console.print(summary_table(results))
    return results


def check_pipeline_config(config: PipelineConfig) -> None:
    """ConfigError for a pipeline that cannot run, before any stage starts."""
    if not config.stages:
        raise ConfigError(f"stages: empty; list some of {', '.join(s.name for s in STAGES)}")
    if "judge" in config.stages:
        check_judge_is_disjoint(config)
    if "ppo" in config.stages:
        if config.ppo.reward.kind != "model":
            raise ConfigError(f"ppo.reward.kind: the pipeline scores PPO with its reward model (output_dir/rm), so "
                              f"it must be 'model', got {config.ppo.reward.kind!r}")
        try:
            check_rl_config(config.ppo)
        except ConfigError as exc:
            raise ConfigError(f"ppo.{exc}") from None


def check_judge_is_disjoint(config: PipelineConfig) -> None:
    """ConfigError unless the judge trains on the reward model's data, split the same way, but on other pairs:
    its window [skip_examples, skip_examples + max_examples) of the training split must not meet the reward
    model's, so both are scored on the same held-out split and the judge has never seen a pair PPO's reward
    model learned from."""
    rm, judge = config.rm, config.judge
    for key in ("train", "eval_fraction", "eval"):
        if getattr(judge.data, key) != getattr(rm.data, key):
            raise ConfigError(f"judge.data.{key}: the judge is trained and held out on the reward model's data, so it "
                              f"must equal rm.data.{key} ({getattr(rm.data, key)!r}), got {getattr(judge.data, key)!r}")
    if judge.train.seed != rm.train.seed:
        raise ConfigError(f"judge.train.seed: it seeds the held-out split, so it must equal rm.train.seed "
                          f"({rm.train.seed}), got {judge.train.seed}")
    shared = sorted(set(rm.data.extra_train) & set(judge.data.extra_train))
    if shared:
        raise ConfigError(f"judge.data.extra_train: {', '.join(shared)} also trains the reward model "
                          "(rm.data.extra_train); the judge must not have seen its pairs")
    (rm_start, rm_end), (judge_start, judge_end) = _window(rm.data), _window(judge.data)
    if rm_start < judge_end and judge_start < rm_end:
        raise ConfigError(f"judge.data.skip_examples: the judge's training pairs [{judge_start}, {judge_end}) overlap "
                          f"the reward model's [{rm_start}, {rm_end}); set rm.data.max_examples and skip past them "
                          f"(judge.data.skip_examples >= rm.data.skip_examples + rm.data.max_examples)")


def _window(data) -> tuple[int, float]:
    """The positions [start, end) of the training split a data section uses (end: inf without max_examples)."""
    end = math.inf if data.max_examples is None else data.skip_examples + data.max_examples
    return data.skip_examples, end


def plan(config: PipelineConfig) -> list[Planned]:
    """What each listed stage of a wired ``config`` will do, in pipeline order (see the module docstring)."""
    root = Path(config.output_dir)
    planned, running = [], set()
    for stage in STAGES:
        if stage.name not in config.stages:
            continue
        for need in stage.requires:
            if need not in config.stages and not STAGE_BY_NAME[need].finished(root / need):
                raise ConfigError(f"stages: {stage.name} needs the {need} stage's finished folder {root / need}; "
                                  f"add '{need}' to stages")
        folder = root / stage.name
        rebuilt = [name for name in stage.reads if name in running]
        if not folder.exists():
            action, reason = "fresh", f"{stage.name}: starting in {folder}"
        elif rebuilt:
            action, reason = "fresh", f"{stage.name}: {' and '.join(rebuilt)} runs again, so {folder} is rebuilt"
        elif stage.finished(folder):
            action, reason = "skip", f"{stage.name}: {folder} is finished; skipped"
        elif stage.resumable(folder):
            action, reason = "resume", f"{stage.name}: {folder} is half-finished; resuming"
        else:
            action, reason = "fresh", f"{stage.name}: {folder} is half-finished, with no checkpoint; starting over"
        if action != "fresh":
            check_settings(folder, stage.settings(config), stage.name)
        if action != "skip":
            running.add(stage.name)
        planned.append(Planned(stage, folder, action, reason))
    return planned


def check_settings(folder: Path, settings: Any, prefix: str) -> None:
    """ConfigError when ``folder/config.yaml`` differs from ``settings`` (a config section named ``prefix``)."""
    path = folder / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{folder}: no config.yaml, so whether it was made with these settings is unknown; "
                          f"delete or move it to run the {prefix} stage again")
    written = yaml.safe_load(path.read_text())
    wanted = yaml.safe_load(yaml.safe_dump(to_dict(settings)))
    difference = _first_difference(written, wanted, prefix)
    if difference is not None:
        key, was, now = difference
        raise ConfigError(f"{path}: '{key}' was {was!r} for this run folder, the config now says {now!r}; delete "
                          f"{folder} to run the {prefix} stage again with the new settings")


def _first_difference(was: Any, now: Any, key: str) -> tuple[str, Any, Any] | None:
    """The first dotted key (and its two values) at which two plain-data trees differ, or None."""
    if isinstance(was, dict) and isinstance(now, dict):
        for name in [*now, *(name for name in was if name not in now)]:
            found = _first_difference(was.get(name, "(not set)"), now.get(name, "(not set)"), f"{key}.{name}")
            if found:
                return found
        return None
    return None if was == now else (key, was, now)


def _execute(step: Planned, config: PipelineConfig) -> StageResult:
    console.print(step.reason)
    began = time.perf_counter()
    if step.action != "skip":
        if step.action == "fresh" and step.folder.exists():
            _empty(step.folder)
        step.stage.run(config, step.action == "resume")
    status = {"skip": "skipped", "resume": "resumed", "fresh": "done"}[step.action]
    return StageResult(step.stage.name, status, time.perf_counter() - began, step.stage.figure(step.folder))


def _empty(folder: Path) -> None:
    """Remove a stage's earlier run folder; a folder that is not one (no config.yaml) is left alone."""
    if any(folder.iterdir()) and not (folder / "config.yaml").is_file():
        raise AlignkitError(f"{folder} is in the way of the pipeline but is not a run folder (no config.yaml); "
                            "move it, or choose another output_dir")
    shutil.rmtree(folder)


def summary_table(results: list[StageResult]) -> Table:
    table = Table(title="pipeline")
    for column, justify in (("stage", "left"), ("status", "left"), ("seconds", "right"), ("key figure", "left")):
        table.add_column(column, justify=justify)
    for r in results:
        table.add_row(r.stage, r.status, "-" if r.status == "skipped" else f"{r.seconds:.0f}", r.figure)
    return table
