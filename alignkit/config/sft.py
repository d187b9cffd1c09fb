"""The config of ``alignkit sft``: supervised fine-tuning on demonstrations."""

from __future__ import annotations

import dataclasses
from typing import Literal

from alignkit.config.base import option
from alignkit.config.shared import DataConfig, LoraConfig, ModelConfig, TrainConfig


@dataclasses.dataclass
class SFTDataConfig(DataConfig):
    """Demonstrations: how they become training sequences."""

    max_length: int = option(512, "Longest sequence in tokens; prompts are cut from the oldest token first.", min=8)
    packing: bool = option(False, "Pack several examples per sequence (no attention across their boundaries).")
    padding_free: bool = option(
        False, "Lay each micro-batch's examples (or packed rows) end to end in one row, so no position is "
        "padding; positions restart per example and no attention crosses examples (TRL's padding_free)."
    )
    loss_on: Literal["all_assistant", "last_assistant"] = option(
        "all_assistant", "Which assistant turns of a multi-turn dialogue count in the loss."
    )


@dataclasses.dataclass
class SFTConfig:
    """Supervised fine-tuning on demonstrations (stage 1 of RLHF)."""

    output_dir: str = option("runs/sft", "Folder for the model, metrics.jsonl, eval.json, config.yaml, checkpoints/.")
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    lora: LoraConfig = dataclasses.field(default_factory=LoraConfig)
    data: SFTDataConfig = dataclasses.field(default_factory=SFTDataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
