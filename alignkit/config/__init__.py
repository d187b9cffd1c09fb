"""Typed, validated run configurations, one module per stage.

- :mod:`~alignkit.config.base`: ``option()`` fields, loading (YAML and ``--set``), validation and its
  error messages, ``to_dict`` and ``describe`` (``--help``);
- :mod:`~alignkit.config.shared`: the sections every training stage has (model, lora, train) and the
  data source and split that each stage's data section extends;
- :mod:`~alignkit.config.generation`: sampling settings;
- :mod:`~alignkit.config.sft`, :mod:`~alignkit.config.rm`, :mod:`~alignkit.config.dpo`,
  :mod:`~alignkit.config.rl`, :mod:`~alignkit.config.prm`: each stage's config, with its own data section.

The AI-feedback and pipeline configs live beside their commands (alignkit.feedback.config,
alignkit.pipeline.config) and are built from these.
"""

from alignkit.config.base import describe, load_config, load_sections, option, to_dict
from alignkit.config.dpo import DPOConfig, PreferenceConfig
from alignkit.config.generation import GenerationConfig
from alignkit.config.prm import PRMConfig, PRMDataConfig
from alignkit.config.rl import ProcessRewardConfig, RewardSourceConfig, RLConfig, RLDataConfig, RLSettings
from alignkit.config.rm import RewardConfig, RMConfig
from alignkit.config.sft import SFTConfig, SFTDataConfig
from alignkit.config.shared import ComparisonDataConfig, DataConfig, LoraConfig, ModelConfig, TrainConfig, layer_indices

__all__ = [
    "DPOConfig",
    "ComparisonDataConfig",
    "DataConfig",
    "GenerationConfig",
    "LoraConfig",
    "ModelConfig",
    "PRMConfig",
    "PRMDataConfig",
    "PreferenceConfig",
    "ProcessRewardConfig",
    "RLConfig",
    "RLDataConfig",
    "RLSettings",
    "RMConfig",
    "RewardConfig",
    "RewardSourceConfig",
    "SFTConfig",
    "SFTDataConfig",
    "TrainConfig",
    "describe",
    "layer_indices",
    "load_config",
    "load_sections",
    "option",
    "to_dict",
]
