"""The config of ``alignkit rm``: a reward model (or an ensemble) from comparisons."""

from __future__ import annotations

import dataclasses
from typing import Literal

from alignkit.config.base import option
from alignkit.config.shared import ComparisonDataConfig, LoraConfig, ModelConfig, TrainConfig


@dataclasses.dataclass
class RewardConfig:
    data_format: Literal["pairs", "rankings"] = option(
        "pairs", "Training records: preference pairs, or rankings of K responses (expanded to all pairs)."
    )
    pooling: Literal["last", "mean"] = option(
        "last", "Score from the last non-padding token, or the mean over the response tokens."
    )
    share_prompt: bool | None = option(
        True,
        "Run each comparison's prompt through the model once, its responses after it in one row with a mask "
        "that keeps them apart (the same rewards as separate sequences, without the prompt's repeated passes); "
        "false: every response as its own padded sequence. Null (what older runs wrote): on.",
    )
    backbone_layers: int | None = option(
        None,
        "Keep only the first N transformer blocks: the final norm and the head read block N's output, and the saved "
        "model is that smaller model (null: every block). Middle-to-late blocks often carry more of a preference "
        "than the last one, and fewer blocks are faster.",
        min=1,
    )
    head_only: bool = option(
        False,
        "Freeze the backbone: every response's pooled hidden state is computed once, without gradients, and only "
        "the linear score head is fitted, to the exact optimum of the same loss plus 'head_l2' (L-BFGS). The "
        "optimiser settings under train (learning_rate, epochs, batch_size, ...) do not apply; micro_batch_size "
        "sets the feature batch.",
    )
    head_l2: float = option(
        1.0,
        "Ridge penalty (l2/2)·Σ_j (σ_j w_j)² on the head, σ_j the spread of feature j over the training responses "
        "(ridge on standardised features).",
        min=0,
        only="head_only == true",
    )
    length_covariate: bool = option(
        False,
        "Fit the head beside an unpenalised term in the response's length (tokens) and save the head alone: what "
        "reply length explains of the preferences is not learnt as reward, so a policy gains nothing from "
        "replies shorter or longer as such. The length term is reported in eval.json.",
        only="head_only == true",
    )
    centering: float = option(
        0.0, "Coefficient of the reward-centring penalty (r_chosen + r_rejected)^2 (Eisenstein et al. 2023).", min=0
    )
    ensemble_size: int = option(1, "Train this many reward models (seeds seed, seed+1, ...) as an ensemble.", min=1)
    bootstrap: bool = option(
        False, "Each ensemble member trains on a bootstrap resample of the training groups.", only="ensemble_size > 1"
    )

    def shares_prompt(self) -> bool:
        """``share_prompt`` with null (older runs' default) resolved: on."""
        return self.share_prompt is not False


def _rm_data() -> ComparisonDataConfig:
    return ComparisonDataConfig(train="hh-rlhf-harmless", on_error="skip", max_length=384)


def _rm_train() -> TrainConfig:
    return TrainConfig(learning_rate=1e-5, batch_size=8, micro_batch_size=4)


@dataclasses.dataclass
class RMConfig:
    """A reward model from human comparisons (stage 2 of RLHF). A batch element is one prompt's
    comparison group: one preference pair, or all pairs of one ranking."""

    output_dir: str = option("runs/rm", "Folder for the model (or ensemble members), metrics, eval.json.")
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    lora: LoraConfig = dataclasses.field(default_factory=LoraConfig)
    data: ComparisonDataConfig = dataclasses.field(default_factory=_rm_data)
    train: TrainConfig = dataclasses.field(default_factory=_rm_train)
    reward: RewardConfig = dataclasses.field(default_factory=RewardConfig)
