"""Typed, validated run configurations.

A config is a tree of dataclasses. YAML and ``--set key=value`` overrides go in; every value is
checked against its field's type and bounds, and the first problem raises :class:`ConfigError`
naming the dotted key, the bad value and what is allowed. An unknown key is answered with the
nearest valid one. Nothing is rewritten silently: what the user wrote is what runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from alignkit.errors import ConfigError


def option(default: Any, doc: str, *, min: float | None = None, max: float | None = None) -> Any:
    """A config field with its documentation and optional inclusive bounds."""
    meta = {"doc": doc, "min": min, "max": max}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


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
    )
    dtype: Literal["float32", "bfloat16", "float16"] = option(
        "float32", "Weights and compute dtype. Use float32 on CPU; bfloat16 on a recent GPU."
    )
    gradient_checkpointing: bool = option(False, "Recompute activations in backward to save memory.")


@dataclasses.dataclass
class LoraConfig:
    enabled: bool = option(False, "Train LoRA adapters (peft) instead of all weights.")
    r: int = option(16, "LoRA rank.", min=1)
    alpha: float = option(32.0, "LoRA scaling numerator (scale = alpha / r).", min=0)
    dropout: float = option(
        0.0, "Dropout on the LoRA input (switched off by rl, whose PPO ratio compares the policy with itself).",
        min=0, max=0.99,
    )
    target_modules: list[str] = option(
        ["q_proj", "k_proj", "v_proj", "o_proj"], "Names of the linear layers that get adapters."
    )
    merge_on_save: bool = option(True, "Merge adapters into the weights when saving the final model.")


@dataclasses.dataclass
class DataConfig:
    train: str = option(
        "alpaca-seed",
        "Training data: a known short name (alpaca-seed, hh-rlhf-harmless, gsm8k), a .jsonl/.jsonl.gz/"
        ".parquet file, a local dataset folder, or a Hugging Face dataset id.",
    )
    eval: str | None = option(None, "Separate evaluation data (same forms as 'train'); else a held-out split.")
    eval_fraction: float = option(
        0.1, "Fraction of 'train' held out for evaluation when 'eval' is not given.", min=0, max=0.9
    )
    skip_examples: int = option(
        0, "Leave out this many training records (after the split) before max_examples applies; two runs "
        "with the same split and different skips train on disjoint records.", min=0
    )
    max_examples: int | None = option(None, "Use at most this many training records (after the split).", min=1)
    max_eval_examples: int | None = option(None, "Evaluate on at most this many held-out records.", min=1)
    max_length: int = option(512, "Longest sequence in tokens; prompts are cut from the oldest token first.", min=8)
    packing: bool = option(False, "Pack several examples per sequence (no attention across their boundaries).")
    padding_free: bool = option(
        False, "SFT: lay each micro-batch's examples (or packed rows) end to end in one row, so no position is "
        "padding; positions restart per example and no attention crosses examples (TRL's padding_free)."
    )
    loss_on: Literal["all_assistant", "last_assistant"] = option(
        "all_assistant", "Which assistant turns of a multi-turn dialogue count in the loss."
    )
    on_error: Literal["raise", "skip"] = option(
        "raise", "A malformed record stops the run ('raise') or is skipped, counted and reported ('skip')."
    )


@dataclasses.dataclass
class TrainConfig:
    seed: int = option(0, "Seed for data order, initialisation and dropout.")
    epochs: int = option(1, "Passes over the training data (ignored when max_steps is set).", min=1)
    max_steps: int | None = option(None, "Optimizer steps to run; overrides epochs.", min=1)
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
class SFTConfig:
    """Supervised fine-tuning on demonstrations (stage 1 of RLHF)."""

    output_dir: str = option("runs/sft", "Folder for the model, metrics.jsonl, eval.json, config.yaml, checkpoints/.")
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    lora: LoraConfig = dataclasses.field(default_factory=LoraConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


@dataclasses.dataclass
class RewardConfig:
    data_format: Literal["pairs", "rankings"] = option(
        "pairs", "Training records: preference pairs, or rankings of K responses (expanded to all pairs)."
    )
    pooling: Literal["last", "mean"] = option(
        "last", "Score from the last non-padding token, or the mean over the response tokens."
    )
    share_prompt: bool = option(
        True,
        "With last pooling: run each comparison's prompt through the model once, its responses after it in "
        "one row with a mask that keeps them apart (the same rewards as separate sequences, without the "
        "prompt's repeated passes); false, or mean pooling: every response as its own padded sequence.",
    )
    centering: float = option(
        0.0, "Coefficient of the reward-centring penalty (r_chosen + r_rejected)^2 (Eisenstein et al. 2023).", min=0
    )
    ensemble_size: int = option(1, "Train this many reward models (seeds seed, seed+1, ...) as an ensemble.", min=1)
    bootstrap: bool = option(False, "Each ensemble member trains on a bootstrap resample of the training groups.")


def _rm_data() -> DataConfig:
    return DataConfig(train="hh-rlhf-harmless", on_error="skip", max_length=384)


def _rm_train() -> TrainConfig:
    return TrainConfig(learning_rate=1e-5, batch_size=8, micro_batch_size=4)


@dataclasses.dataclass
class RMConfig:
    """A reward model from human comparisons (stage 2 of RLHF). A batch element is one prompt's
    comparison group: one preference pair, or all pairs of one ranking."""

    output_dir: str = option("runs/rm", "Folder for the model (or ensemble members), metrics, eval.json.")
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    lora: LoraConfig = dataclasses.field(default_factory=LoraConfig)
    data: DataConfig = dataclasses.field(default_factory=_rm_data)
    train: TrainConfig = dataclasses.field(default_factory=_rm_train)
    reward: RewardConfig = dataclasses.field(default_factory=RewardConfig)


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
        0.0, "cDPO: probability epsilon that a preference label is wrong (Mitchell 2023).", min=0, max=0.5
    )
    simpo_gamma: float = option(1.0, "SimPO: target reward margin gamma between chosen and rejected (Meng et al. "
                                "2024, eq. 6); the paper keeps gamma/beta near 0.5: 1.0 at its beta 2.0.", min=0)
    orpo_lambda: float = option(
        0.1, "ORPO: weight lambda of the odds-ratio term added to the chosen reply's NLL (Hong et al. 2024).", min=0
    )
    kto_desirable_weight: float = option(
        1.0, "KTO: lambda_D, weight of desirable examples (Ethayarajh et al. 2024, eq. 8).", min=0
    )
    kto_undesirable_weight: float = option(
        1.0,
        "KTO: lambda_U, weight of undesirable examples; the paper advises lambda_D n_D / (lambda_U n_U) "
        "in [1, 4/3].",
        min=0,
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
    share_prompt: bool = option(
        True,
        "Pairwise losses: run each pair's prompt through the model once, its two replies after it in one row "
        "with a mask that keeps them apart (exactly the log-probs of separate sequences, without the prompt's "
        "second pass or most of the padding); false: chosen and rejected as separate padded sequences.",
    )


def _dpo_data() -> DataConfig:
    return DataConfig(train="hh-rlhf-harmless", on_error="skip", max_length=384)


def _dpo_train() -> TrainConfig:
    return TrainConfig(learning_rate=5e-7, batch_size=8, micro_batch_size=2, warmup_steps=0)


@dataclasses.dataclass
class DPOConfig:
    """Preference optimisation without a reward model: DPO and its family. A batch element is one
    preference pair (or, for KTO on unpaired data, one reply)."""

    output_dir: str = option("runs/dpo", "Folder for the model, metrics, eval.json and the reference cache.")
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    lora: LoraConfig = dataclasses.field(default_factory=LoraConfig)
    data: DataConfig = dataclasses.field(default_factory=_dpo_data)
    train: TrainConfig = dataclasses.field(default_factory=_dpo_train)
    preference: PreferenceConfig = dataclasses.field(default_factory=PreferenceConfig)


@dataclasses.dataclass
class GenerationConfig:
    """Sampling replies from a policy: one reply per prompt."""

    max_new_tokens: int = option(
        128, "Longest reply in tokens, its stop token included; a reply not stopped by then is cut (unfinished).", min=1
    )
    temperature: float = option(
        0.7, "Softmax temperature of sampling; 0 is greedy decoding (always the most likely token).", min=0
    )
    top_p: float = option(
        1.0, "Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p (1: all).",
        min=1e-6, max=1,
    )
    top_k: int = option(0, "Sample among the k most likely tokens only (0: no top-k limit).", min=0)
    batch_size: int = option(16, "Prompts per generate call (prompts of similar length are batched together).", min=1)
    max_prompt_length: int = option(
        512, "Longest prompt in tokens (chat template included); longer ones lose their oldest tokens, counted.", min=1
    )
    seed: int = option(0, "Seed of the sampling; the same seed, prompts and batch_size give the same replies on CPU.")


@dataclasses.dataclass
class RLSettings:
    algo: Literal["ppo", "grpo", "rloo"] = option(
        "ppo",
        "ppo: clipped surrogate with a value model and GAE (Schulman et al. 2017; Ziegler et al. 2019). grpo: "
        "advantages normalised within each prompt's group of samples, no value model (Shao et al. 2024). rloo: "
        "leave-one-out baseline within each group, no value model (Ahmadian et al. 2024).",
    )
    iterations: int = option(
        20, "RL iterations; each samples a batch of rollouts, then runs ppo_epochs passes of updates on it.", min=1
    )
    prompts_per_iteration: int = option(8, "Prompts sampled per iteration (drawn in order from a shuffled set).", min=1)
    samples_per_prompt: int = option(
        1,
        "Completions per prompt (G). An iteration has prompts_per_iteration x samples_per_prompt completions; "
        "train.batch_size counts completions per optimizer step and train.micro_batch_size completions per "
        "forward pass. grpo and rloo need G >= 2.",
        min=1,
    )
    ppo_epochs: int = option(
        1, "Passes over each iteration's completions; optimizer steps per iteration = this x completions / "
        "train.batch_size.", min=1,
    )
    clip_eps: float = option(0.2, "Clip range epsilon of the probability ratio (PPO eq. 7).", min=0)
    clip_eps_high: float | None = option(
        None, "Upper clip range (DAPO clip-higher, Yu et al. 2025); null: clip_eps.", min=0
    )
    loss_aggregation: Literal["token_mean", "sequence_mean", "constant"] = option(
        "token_mean",
        "How per-token losses are averaged: over all tokens of the optimizer step (DAPO), per sequence then over "
        "sequences (original GRPO), or over completions x max_new_tokens (Dr. GRPO).",
    )
    kl_coef: float = option(
        0.05, "beta: weight of the KL penalty to the reference (the initial value with kl_target).", min=0
    )
    kl_estimator: Literal["k1", "k2", "k3"] = option(
        "k1",
        "Per-token KL estimator (Schulman 2020), r = pi_ref/pi: k1 = log pi/pi_ref, k2 = half its square, "
        "k3 = r - 1 - log r. In the reward each estimates KL(pi||ref). In the loss its gradient counts: k2's is "
        "that of KL(pi||ref), k3's that of KL(ref||pi) (GRPO), k1's is zero in expectation (refused there).",
    )
    kl_penalty: Literal["reward", "loss"] = option(
        "reward",
        "Where the KL penalty acts: 'reward' subtracts beta x KL from the reward (per token for ppo, summed per "
        "completion for grpo/rloo; InstructGPT); 'loss' adds beta x KL to the loss (GRPO, Shao et al. 2024, eq. 3; "
        "needs kl_estimator k3 or k2).",
    )
    kl_target: float | None = option(
        None, "Adaptive KL controller (Ziegler et al. 2019): target KL per completion (null: fixed beta).", min=1e-6
    )
    kl_horizon: float = option(
        10000.0, "Adaptive KL controller horizon, in completions; beta moves by at most 20% per iteration, however "
        "many horizons an iteration spans.", min=1,
    )
    gamma: float = option(1.0, "PPO: discount gamma of GAE.", min=0, max=1)
    lam: float = option(0.95, "PPO: lambda of GAE.", min=0, max=1)
    whiten_advantages: bool = option(True, "PPO: whiten advantages over the iteration's response tokens.")
    whiten_rewards: bool = option(False, "Normalise each iteration's sequence rewards to mean 0, std 1.")
    reward_clip: float | None = option(None, "Clip sequence rewards to [-c, c] (after whitening).", min=0)
    unfinished: Literal["penalty", "drop", "score"] = option(
        "penalty",
        "A completion cut at generation.max_new_tokens (no end-of-turn) is scored as unfinished (a reward model "
        "reads it without the end-of-turn token), then: 'penalty', its reward minus unfinished_penalty (TRL's "
        "missing_eos_penalty; replies that run on are how RLHF policies commonly fail); 'drop', its tokens carry "
        "no loss (DAPO's overlong filtering, Yu et al. 2025), its reward still counts in its group's baseline "
        "(grpo/rloo); 'score', its reward as scored. The share of unfinished completions is logged as unfinished.",
    )
    unfinished_penalty: float = option(
        1.0, "unfinished: penalty: subtracted from the reward of an unfinished completion, in the "
        "reward's units.", min=0
    )
    group_scale: Literal["std", "none"] = option(
        "std", "grpo: divide group-centred rewards by the group std (Shao et al.) or not (Dr. GRPO, Liu et al.)."
    )
    critic: Literal["head", "separate"] = option(
        "separate",
        "ppo's value model: 'head', a linear value head on the policy's last hidden state (shared trunk); "
        "'separate', a second network with its own value head (LoRA too when lora.enabled).",
    )
    critic_init: Literal["policy", "reward"] = option(
        "reward", "Where a separate critic starts: the policy's weights, or the reward model's (reward.kind model)."
    )
    vf_coef: float = option(0.1, "ppo: weight of the value loss added to the policy loss.", min=0)
    value_clip: float | None = option(0.2, "ppo: clip range of the value prediction around its rollout value.", min=0)
    ptx_coef: float = option(
        0.0, "PPO-ptx (InstructGPT): weight gamma of the SFT loss on demonstrations mixed into every update.", min=0
    )
    ptx_data: str = option("alpaca-seed", "Demonstrations for PPO-ptx (same forms as data.train).")
    reference: Literal["auto", "copy", "adapter"] = option(
        "auto", "Reference policy for the KL: a frozen copy, or (LoRA) the policy with adapters off; auto: adapter "
        "with LoRA, else copy."
    )
    sample_every: int = option(5, "Write a few prompts and completions to samples.jsonl every N iterations.", min=1)
    monitors: list[str] = option(
        [], "Rewards logged but never optimised, each a 'package.module:function' called as the reward function "
        "is; logged per iteration (and at evaluation) as monitor_<function>. A gold scorer here shows whether the "
        "optimised reward is being gamed.",
    )
    eval_prompts: int = option(
        0, "Held-out prompts scored before and after training (mean reward and KL); 0: no evaluation.", min=0
    )


@dataclasses.dataclass
class RewardSourceConfig:
    kind: Literal["model", "function", "gsm8k"] = option(
        "model",
        "model: a reward model folder from `alignkit rm` (single or ensemble). function: a Python callable "
        "'module:function' called as f(prompts, completions) -> floats. gsm8k: 1 when the reply's final number "
        "equals the prompt's reference answer, else 0.",
    )
    path: str | None = option(None, "kind model: the reward model (run folder, model folder or ensemble run).")
    function: str | None = option(None, "kind function: 'package.module:function'.")
    combine: Literal["mean", "min", "mean_minus_std"] = option(
        "mean", "Ensemble: combine members by mean, min, or mean - lam x std."
    )
    lam: float = option(1.0, "Ensemble: lam of mean_minus_std.", min=0)
    length_normalise: bool = option(
        False, "Score the residual of the reward-on-length fit stored by `alignkit eval rm`."
    )
    batch_size: int = option(8, "Completions per reward-model forward pass.", min=1)
    max_length: int = option(1024, "Longest (prompt + reply) the reward model reads; prompts cut from the left.", min=8)


def _rl_data() -> DataConfig:
    return DataConfig(train="hh-rlhf-harmless", on_error="skip")


def _rl_train() -> TrainConfig:
    return TrainConfig(learning_rate=1e-5, batch_size=8, micro_batch_size=4, schedule="constant")


def _rl_generation() -> GenerationConfig:
    return GenerationConfig(max_new_tokens=64, temperature=1.0)


@dataclasses.dataclass
class RLConfig:
    """Online RL against a reward (stage 3 of RLHF): PPO, GRPO or RLOO with a KL penalty to the reference.
    The number of optimizer steps is rl.iterations x rl.ppo_epochs x completions per iteration /
    train.batch_size; train.epochs and train.max_steps do not apply."""

    output_dir: str = option("runs/rl", "Folder for the policy, metrics, samples.jsonl, eval.json, checkpoints/.")
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    lora: LoraConfig = dataclasses.field(default_factory=LoraConfig)
    data: DataConfig = dataclasses.field(default_factory=_rl_data)
    train: TrainConfig = dataclasses.field(default_factory=_rl_train)
    generation: GenerationConfig = dataclasses.field(default_factory=_rl_generation)
    rl: RLSettings = dataclasses.field(default_factory=RLSettings)
    reward: RewardSourceConfig = dataclasses.field(default_factory=RewardSourceConfig)


# ---------------------------------------------------------------- loading and validation


def load_config(cls: type, path: str | Path | None = None, overrides: list[str] = ()) -> Any:
    """Build a validated ``cls`` from an optional YAML file and ``key.sub=value`` overrides.

    A class may declare ``WIRED``, dotted keys that are derived from its ``output_dir`` (key -> path
    relative to it); setting one of those in the file or with ``--set`` is a ConfigError naming the key.
    """
    raw = _read_yaml(path) if path is not None else {}
    where = "config" if path is None else str(path)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.learning_rate=1e-5")
        _assign(raw, key.strip().split("."), yaml.safe_load(value) if value else "")
    config = _build(cls(), raw, prefix="", where=where)
    for key, relative in getattr(cls, "WIRED", {}).items():
        if _is_set(raw, key.split(".")):
            raise ConfigError(f"{where}: '{key}' is wired to output_dir/{relative} "
                              f"({Path(config.output_dir, relative)}) and cannot be set; remove it")
    return config


def load_sections(path: str | Path, sections: dict[str, type]) -> dict[str, Any]:
    """The sections of the YAML config at ``path`` named in ``sections`` (name -> config class), each
    validated as its class; a section the file lacks is left out, and other keys are not checked.

    For reading parts of a run's ``config.yaml`` (e.g. its ``data`` and ``train.seed``) without
    knowing which stage wrote it.
    """
    raw = _read_yaml(path)
    found = {}
    for name, cls in sections.items():
        if name in raw:
            if not isinstance(raw[name], dict):
                raise ConfigError(f"{path}: '{name}' is a section; expected a mapping, got {raw[name]!r}")
            found[name] = _build(cls(), raw[name], prefix=name + ".", where=str(path))
    return found


def _read_yaml(path: str | Path) -> dict:
    """The top-level mapping of a YAML file; ConfigError when it cannot be read or is not a mapping."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return raw


def _assign(tree: dict, keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        tree = tree.setdefault(key, {})
        if not isinstance(tree, dict):
            raise ConfigError(f"--set {'.'.join(keys)}: '{key}' is not a section")
    tree[keys[-1]] = value


def _is_set(tree: dict, keys: list[str]) -> bool:
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return False
        tree = tree[key]
    return True


def _build(base: Any, raw: dict, prefix: str, where: str) -> Any:
    """``base`` (a config with its stage's defaults) with the keys of ``raw`` checked and applied."""
    cls = type(base)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1, cutoff=0.5)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid keys: {', '.join(fields)}"
            raise ConfigError(f"{where}: unknown key '{prefix}{key}'{hint}")
    values = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        key = prefix + name
        if dataclasses.is_dataclass(hints[name]):
            if not isinstance(raw[name], dict):
                raise ConfigError(f"{where}: '{key}' is a section; expected a mapping, got {raw[name]!r}")
            values[name] = _build(getattr(base, name), raw[name], key + ".", where)
        else:
            values[name] = _check(raw[name], hints[name], f.metadata, key, where)
    return dataclasses.replace(base, **values)


def _check(value: Any, hint: Any, meta: Any, key: str, where: str) -> Any:
    def fail(expected: str) -> typing.NoReturn:
        raise ConfigError(f"{where}: '{key}' must be {expected}, got {value!r}")

    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in args:
            fail("one of " + ", ".join(repr(a) for a in args))
        return value
    if origin is list:
        allowed = typing.get_args(args[0]) if typing.get_origin(args[0]) is Literal else None
        if allowed and not (isinstance(value, list) and all(v in allowed for v in value)):
            fail("a list of " + ", ".join(repr(a) for a in allowed))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            fail("a list of strings")
        return list(value)
    if hint is bool:
        if not isinstance(value, bool):
            fail("true or false")
        return value
    if hint is str:
        if not isinstance(value, str) or not value:
            fail("a non-empty string")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail("an integer" + _bounds(meta))
    elif hint is float:
        if isinstance(value, str):  # YAML reads 1e-5 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                fail("a number" + _bounds(meta))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail("a number" + _bounds(meta))
        value = float(value)
    if (meta["min"] is not None and value < meta["min"]) or (meta["max"] is not None and value > meta["max"]):
        fail(("an integer" if hint is int else "a number") + _bounds(meta))
    return value


def _bounds(meta: Any) -> str:
    lo, hi = meta["min"], meta["max"]
    if lo is not None and hi is not None:
        return f" in [{lo}, {hi}]"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


# ---------------------------------------------------------------- output and documentation


def to_dict(config: Any) -> dict:
    """The config as plain data (what ``config.yaml`` in a run folder holds)."""
    return dataclasses.asdict(config)


def describe(config: Any, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """Every option of ``config`` (a class or an instance) as (dotted key, type, default, doc), for ``--help``;
    the class's ``WIRED`` keys, which cannot be set, are left out."""
    defaults = config() if isinstance(config, type) else config
    rows = []
    hints = typing.get_type_hints(type(defaults))
    for f in dataclasses.fields(defaults):
        hint, default = hints[f.name], getattr(defaults, f.name)
        if dataclasses.is_dataclass(hint):
            rows += describe(default, prefix + f.name + ".")
            continue
        rows.append((prefix + f.name, _type_name(hint), default, f.metadata["doc"] + _bounds(f.metadata)))
    wired = getattr(defaults, "WIRED", {})
    return [row for row in rows if row[0] not in wired]


def _type_name(hint: Any) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is Literal:
        return "|".join(str(a) for a in args)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args).replace("NoneType", "null")
    if typing.get_origin(hint) is list:
        return "list"
    return getattr(hint, "__name__", str(hint))
