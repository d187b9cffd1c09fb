"""The sections every training stage has: the model, its LoRA adapters, the training loop, and where the
data comes from and how it is split (each stage extends that with its own data keys)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Literal

from alignkit.config.base import option
from alignkit.errors import ConfigError


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


_TOP = re.compile(r"top ([1-9][0-9]*)")
_LAYERS_EXPECTED = "'top N' (N >= 1) or a list of distinct block indices (integers >= 0)"


def _layer_selection(value: Any) -> str | list[int] | None:
    """``lora.layers`` as written, checked: null, 'top N' or a list of distinct block indices."""
    if value is None or (isinstance(value, str) and _TOP.fullmatch(value)):
        return value
    if isinstance(value, list) and value and len(set(value)) == len(value) and all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value
    ):
        return list(value)
    raise ValueError(_LAYERS_EXPECTED)


def layer_indices(layers: str | list[int] | None, num_layers: int) -> list[int] | None:
    """The block indices, ascending, that ``lora.layers`` selects in a model of ``num_layers`` transformer
    blocks (None: every block); ConfigError naming the key, the value and the model's layer count when the
    selection reaches past the last block."""
    if layers is None:
        return None
    have = f"the model has {num_layers} layers (blocks 0-{num_layers - 1})"
    if isinstance(layers, str):
        count = int(_TOP.fullmatch(layers).group(1))
        if count > num_layers:
            raise ConfigError(f"lora.layers: {layers!r} asks for {count} blocks, but {have}")
        return list(range(num_layers - count, num_layers))
    beyond = [i for i in layers if i >= num_layers]
    if beyond:
        raise ConfigError(f"lora.layers: {layers} selects block {beyond[0]}, but {have}")
    return sorted(layers)


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
        "Linear layers that get adapters, by name within a transformer block (q_proj, mlp.down_proj, ...) or by "
        "full dotted name; a name matches every linear layer whose name ends with it.",
        only="enabled == true",
    )
    layers: str | list[int] | None = option(
        None,
        "Which transformer blocks get adapters: 'top N' (the last N blocks, those nearest the output; backward "
        "stops there), a list of block indices from 0, or null (every block). With a selection, target_modules "
        "name layers within a block.",
        only="enabled == true",
        parse=_layer_selection,
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
    max_minutes: float | None = option(
        None, "A wall-clock budget: training stops after the first optimizer step that ends past this many minutes "
        "(the model is saved and evaluated as at the planned end; the schedule keeps the planned length, so a "
        "decaying learning rate has not reached 0). eval.json records the steps done and stopped_at_budget.",
        min=0,
    )
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
    extra_train: list[str] = option(
        [], "More training data (same forms as 'train'), used whole and never held out: the held-out split is cut "
        "from 'train' alone, and skip_examples/max_examples apply to 'train' alone."
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


@dataclasses.dataclass
class ComparisonDataConfig(DataConfig):
    """Comparisons (pairs, rankings, or KTO's single replies) for rm and dpo: how long a sequence may be."""

    max_length: int = option(
        512, "Longest (prompt + reply) sequence in tokens; every reply of a comparison keeps the same prompt, cut "
        "from its oldest token first.", min=8
    )
