"""The sections every training stage has: the model, its LoRA adapters, the training loop, and where the
data comes from and how it is split (each stage extends that with its own data keys)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from alignkit.config.base import option


@dataclasses.dataclass
class ModelConfig:
    name: str = option(
        "smollm2-135m",
        "Policy model: 'smollm2-135m' (the default small model, converted once from its GGUF and cached), "
        "a Hugging Face model id, or a local folder.",
    )
    cache_dir: str = option(
        "~/.cache/alignkit",
        "Where converted models are cached (the ALIGNKIT_CACHE_DIR variable overrides the default).",
        only="name == smollm2-135m",
    )
    dtype: Literal["float32", "bfloat16", "float16"] = option(
        "float32", "Weights and compute dtype. Use float32 on CPU; bfloat16 on a recent GPU."
    )
    gradient_checkpointing: bool = option(False, "Recompute activations in backward to save memory.")


@dataclasses.dataclass
class LoraConfig:
    enabled: bool = option(False, "Train LoRA adapters (peft) instead of all weights.")
    r: int = option(16, "LoRA rank.", min=1, only="enabled == true")
    alpha: float = option(32.0, "LoRA scaling numerator (scale = alpha / r).", min=0, only="enabled == true")
    dropout: float = option(
        0.0, "Dropout on the LoRA input (switched off by rl, whose PPO ratio compares the policy with itself).",
        min=0, max=0.99, only="enabled == true",
    )
    target_modules: list[str] = option(
        ["q_proj", "k_proj", "v_proj", "o_proj"],
        "Names of the linear layers that get adapters.",
        only="enabled == true",
    )
    merge_on_save: bool = option(
        True, "Merge adapters into the weights when saving the final model.", only="enabled == true"
    )


@dataclasses.dataclass
class TrainConfig:
    seed: int = option(0, "Seed for data order, initialisation and dropout.")
    epochs: int = option(
        1, "Passes over the training data. With max_steps set, max_steps decides the length of the run (a warning "
        "says so when epochs is not 1).", min=1
    )
    max_steps: int | None = option(None, "Optimizer steps to run, in place of epochs.", min=1)
    batch_size: int = option(
        8,
        "Training examples per optimizer step, across all processes and accumulation. An example is, for SFT, "
        "one sequence (or one packed row with packing on); for a reward model, one prompt's comparison group "
        "(a pair, or all pairs of a ranking). Must equal micro_batch_size x processes x accumulation.",
        min=1,
    )
    micro_batch_size: int = option(
        2, "Examples per forward pass on one process; accumulation = batch_size / (this x processes).", min=1
    )
    learning_rate: float = option(2e-5, "Peak learning rate of AdamW.", min=0)
    weight_decay: float = option(0.0, "AdamW decoupled weight decay.", min=0)
    adam_beta1: float = option(0.9, "AdamW beta1.", min=0, max=0.999999)
    adam_beta2: float = option(0.999, "AdamW beta2.", min=0, max=0.999999)
    warmup_steps: int = option(0, "Steps of linear warm-up from 0 to the peak learning rate.", min=0)
    schedule: Literal["constant", "linear", "cosine"] = option(
        "cosine", "Learning-rate decay after warm-up (to 0 at the last step)."
    )
    max_grad_norm: float | None = option(1.0, "Clip the global gradient norm to this (null: no clipping).", min=0)
    log_every: int = option(1, "Log metrics every N optimizer steps.", min=1)
    eval_every: int | None = option(None, "Evaluate every N steps (null: only at the end).", min=1)
    save_every: int | None = option(None, "Checkpoint every N steps for --resume (null: never).", min=1)
    keep_checkpoints: int = option(2, "How many recent checkpoints to keep.", min=1)
    tensorboard: bool = option(False, "Also write TensorBoard event files to output_dir/tensorboard.")


@dataclasses.dataclass
class DataConfig:
    """Where a stage's records come from and how they are split; each stage's data section adds its own keys
    (alignkit.config.sft, .rm, .dpo, .rl)."""

    train: str = option(
        "alpaca-seed",
        "Training data: a known short name (alpaca-seed, hh-rlhf-harmless, gsm8k), a .jsonl/.jsonl.gz/"
        ".parquet file, a local dataset folder, or a Hugging Face dataset id.",
    )
    eval: str | None = option(None, "Separate evaluation data (same forms as 'train'); else a held-out split.")
    eval_fraction: float = option(
        0.1, "Fraction of 'train' held out for evaluation.", min=0, max=0.9, only="eval == null"
    )
    skip_examples: int = option(
        0, "Leave out this many training records (after the split) before max_examples applies; two runs "
        "with the same split and different skips train on disjoint records.", min=0
    )
    max_examples: int | None = option(None, "Use at most this many training records (after the split).", min=1)
    max_eval_examples: int | None = option(None, "Evaluate on at most this many held-out records.", min=1)
    on_error: Literal["raise", "skip"] = option(
        "raise", "A malformed record stops the run ('raise') or is skipped, counted and reported ('skip')."
    )

