"""A run's held-out records, rebuilt from its ``config.yaml``: the same source, fraction and seed give
the same split as training used, so an evaluation sees only records the model never trained on.

Only the keys that make the split are read: a run folder of any stage (or of an older alignkit, whose
data sections held every stage's keys) gives its held-out records."""

from __future__ import annotations

from pathlib import Path

from alignkit.config import DataConfig, PreferenceConfig, RewardConfig, RLSettings, TrainConfig, load_sections
from alignkit.data.prepare import load_split
from alignkit.errors import AlignkitError


def held_out_records(run_dir: Path, kind: str | None = None) -> list:
    """The held-out records of the run in ``run_dir``, read as ``kind`` (a record kind of
    :data:`~alignkit.data.records.RECORD_TYPES`); by default the kind the run trained on: pairs or
    unpaired replies for the DPO family, pairs or rankings for a reward model, prompts for RL, else
    demonstrations (SFT).

    A folder without ``config.yaml`` (a plain model folder) raises AlignkitError.
    """
    if not Path(run_dir).is_dir():
        raise AlignkitError(f"{run_dir}: no such folder (expected a run folder)")
    config_path = Path(run_dir) / "config.yaml"
    if not config_path.is_file():
        raise AlignkitError(f"{run_dir}: no config.yaml to rebuild the held-out split from; pass --data")
    sections = load_sections(config_path, {"data": DataConfig, "train": TrainConfig, "rl": RLSettings},
                             known_only=True)
    if "data" not in sections or "train" not in sections:
        raise AlignkitError(f"{config_path}: no 'data' and 'train' sections (expected a run's config); pass --data")
    kind = kind or _trained_kind(config_path, sections)
    return [record for record, _ in load_split(sections["data"], kind, seed=sections["train"].seed)[1]]


def _trained_kind(config_path: Path, sections: dict) -> str:
    """The record kind a run's stage loads (as alignkit/train/ does), from its config sections (an RL run's
    'reward' section names its reward source, so it is read only when there is no 'rl' section)."""
    if "rl" in sections:
        return "prompt"
    sections = load_sections(config_path, {"reward": RewardConfig, "preference": PreferenceConfig}, known_only=True)
    if "preference" in sections:
        return "preference" if sections["preference"].data_format == "pairs" else "unpaired"
    if "reward" in sections:
        return "preference" if sections["reward"].data_format == "pairs" else "ranking"
    return "demonstration"
