"""The config of ``alignkit dpo``: preference optimisation without a reward model (DPO and its family)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from alignkit.config.base import option
from alignkit.config.shared import ComparisonDataConfig, LoraConfig, ModelConfig, TrainConfig


@dataclasses.dataclass
class PreferenceConfig:
    loss: Literal["dpo", "cdpo", "ipo", "hinge", "kto", "orpo", "simpo"] = option(
        "dpo",
        "Objective. dpo: -log sigma(beta h), Rafailov et al. 2023. cdpo: DPO with labels flipped with "
        "probability label_smoothing, Mitchell 2023. ipo: (h - 1/(2 beta))^2, Azar et al. 2023 (on summed "
        "log-probs as in the paper; TRL averages per token). hinge: max(0, 1 - beta h), SLiC-HF, Zhao et al. "
        "2023. kto: desirable/undesirable single replies, Ethayarajh et al. 2024. orpo: SFT + odds-ratio term, "
        "no reference, Hong et al. 2024. simpo: length-averaged reward with target margin, no reference, Meng "
        "et al. 2024. Here h = log pi(y_c)/pi_ref(y_c) - log pi(y_r)/pi_ref(y_r), summed over reply tokens.",
    )
    beta: float | None = option(
        None,
        "Inverse temperature of the implicit reward beta log(pi/pi_ref) (DPO, cDPO, hinge, KTO); IPO's tau "
        "(target margin 1/(2 tau) nats over the whole reply); SimPO's beta; for ORPO it scales only the logged "
        "reward. Smaller beta lets the policy move further from the reference. null: the loss's default, 2.0 "
        "for simpo (Meng et al. 2024 use 2.0-2.5), 0.1 for the others.",
        min=1e-6,
    )
    label_smoothing: float = option(
        0.0, "cDPO: probability epsilon that a preference label is wrong (Mitchell 2023).", min=0, max=0.5,
        only="loss == cdpo",
    )
    simpo_gamma: float = option(
        1.0, "SimPO: target reward margin gamma between chosen and rejected (Meng et al. 2024, eq. 6); the paper "
        "keeps gamma/beta near 0.5: 1.0 at its beta 2.0.", min=0, only="loss == simpo",
    )
    orpo_lambda: float = option(
        0.1, "ORPO: weight lambda of the odds-ratio term added to the chosen reply's NLL (Hong et al. 2024).", min=0,
        only="loss == orpo",
    )
    kto_desirable_weight: float = option(
        1.0, "KTO: lambda_D, weight of desirable examples (Ethayarajh et al. 2024, eq. 8).", min=0, only="loss == kto"
    )
    kto_undesirable_weight: float = option(
        1.0,
        "KTO: lambda_U, weight of undesirable examples; the paper advises lambda_D n_D / (lambda_U n_U) "
        "in [1, 4/3].",
        min=0,
        only="loss == kto",
    )
    data_format: Literal["pairs", "unpaired"] = option(
        "pairs",
        "Training records: preference pairs, or (KTO only) single replies marked desirable or not. KTO on "
        "pairs treats each chosen reply as desirable and each rejected one as undesirable.",
    )
    reference: Literal["auto", "copy", "adapter", "precomputed", "none"] = option(
        "auto",
        "Reference model pi_ref (the starting policy). copy: a frozen second copy in memory. adapter: with "
        "LoRA, the policy with its adapters disabled (no second copy). precomputed: one pass over the data "
        "before training, log-probs cached in output_dir/reference_logps.safetensors and reused on resume. "
        "none: ORPO and SimPO, which use no reference. auto: none for ORPO/SimPO, else adapter with LoRA, "
        "else copy.",
    )
    share_prompt: bool | None = option(
        None,
        "Pairwise losses: run each pair's prompt through the model once, its two replies after it in one row "
        "with a mask that keeps them apart (exactly the log-probs of separate sequences, without the prompt's "
        "second pass or most of the padding); false: chosen and rejected as separate padded sequences. Null: on "
        "for the pairwise losses; KTO scores each reply on its own.",
        only="loss != kto",
    )

    def shares_prompt(self) -> bool:
        """``share_prompt`` with null resolved: on for the pairwise losses, off for KTO."""
        return self.loss != "kto" if self.share_prompt is None else self.share_prompt


def _dpo_data() -> ComparisonDataConfig:
    return ComparisonDataConfig(train="hh-rlhf-harmless", on_error="skip", max_length=384)


def _dpo_train() -> TrainConfig:
    return TrainConfig(learning_rate=5e-7, batch_size=8, micro_batch_size=2, warmup_steps=0)


@dataclasses.dataclass
class DPOConfig:
    """Preference optimisation without a reward model: DPO and its family. A batch element is one
    preference pair (or, for KTO on unpaired data, one reply)."""

    output_dir: str = option("runs/dpo", "Folder for the model, metrics, eval.json and the reference cache.")
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    lora: LoraConfig = dataclasses.field(default_factory=LoraConfig)
    data: ComparisonDataConfig = dataclasses.field(default_factory=_dpo_data)
    train: TrainConfig = dataclasses.field(default_factory=_dpo_train)
    preference: PreferenceConfig = dataclasses.field(default_factory=PreferenceConfig)
