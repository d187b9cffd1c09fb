"""The config of ``alignkit prm``: a process reward model from step-labelled solutions."""

from __future__ import annotations

import dataclasses

from alignkit.config.base import option
from alignkit.config.shared import DataConfig, LoraConfig, ModelConfig, TrainConfig


@dataclasses.dataclass
class PRMDataConfig(DataConfig):
    """Step-labelled solutions (any form :mod:`alignkit.data.step_labels` reads): how they become sequences."""

    max_length: int = option(
        512, "Longest (prompt + steps) sequence in tokens; prompts are cut from the oldest token first.", min=8
    )
    separator: str = option("\n", "What joins the steps into one reply (the model is read at each step's last token).")


def _prm_data() -> PRMDataConfig:
    return PRMDataConfig(train="big-bench-mistake-arithmetic")


@dataclasses.dataclass
class PRMConfig:
    """A process reward model: P(step k is right | prompt, steps 1..k), one logit per step from a
    token-classification head read at the step's last token."""

    output_dir: str = option("runs/prm", "Folder for the model, metrics.jsonl, eval.json, config.yaml, checkpoints/.")
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    lora: LoraConfig = dataclasses.field(default_factory=LoraConfig)
    data: PRMDataConfig = dataclasses.field(default_factory=_prm_data)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
