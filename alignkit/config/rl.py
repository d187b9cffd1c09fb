"""The config of ``alignkit rl``: online RL (PPO, GRPO, RLOO) against a reward, with a KL penalty."""

from __future__ import annotations

import dataclasses
from typing import Literal

from alignkit.config.base import option
from alignkit.config.generation import GenerationConfig
from alignkit.config.shared import DataConfig, LoraConfig, ModelConfig, TrainConfig


@dataclasses.dataclass
class RLDataConfig(DataConfig):
    """Prompts: sampled from, never trained on as text. How long a prompt may be is
    generation.max_prompt_length; PPO-ptx demonstrations have rl.ptx_max_length."""


@dataclasses.dataclass
class RLSettings:
    algo: Literal["ppo", "grpo", "rloo"] = option(
        "ppo",
        "ppo: clipped surrogate with a value model and GAE (Schulman et al. 2017; Ziegler et al. 2019). grpo: "
        "advantages normalised within each prompt's group of samples, no value model (Shao et al. 2024). rloo: "
        "leave-one-out baseline within each group, no value model (Ahmadian et al. 2024).",
    )
    advantage: Literal["gae", "group", "leave_one_out"] | None = option(
        None,
        "Advantage estimator, by name: gae (GAE on per-token KL-shaped rewards with the value model; Schulman et al. "
        "2016), group (each reward normalised within its prompt's group; Shao et al. 2024), leave_one_out (each "
        "reward minus the mean of the others of its group; Ahmadian et al. 2024). null: the algo's (ppo gae, grpo "
        "group, rloo leave_one_out). gae needs ppo's value model; group and leave_one_out "
        "use none (grpo, rloo) and need samples_per_prompt >= 2.",
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
        "many horizons an iteration spans.", min=1, only="kl_target != null",
    )
    kl_coef_min: float = option(
        0.0, "Adaptive KL controller: beta never falls below this (at most kl_coef), so a policy that has not yet "
        "moved cannot leave the penalty near zero for when it does.", min=0, only="kl_target != null",
    )
    gamma: float = option(1.0, "PPO: discount gamma of GAE.", min=0, max=1, only="algo == ppo")
    lam: float = option(0.95, "PPO: lambda of GAE.", min=0, max=1, only="algo == ppo")
    whiten_advantages: bool = option(
        True, "PPO: whiten advantages over the iteration's response tokens.", only="algo == ppo"
    )
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
        1.0, "Subtracted from the reward of an unfinished completion, in the reward's units.", min=0,
        only="unfinished == penalty",
    )
    group_scale: Literal["std", "none"] = option(
        "std", "grpo's group advantage: divide group-centred rewards by the group std (Shao et al.) or not (Dr. GRPO, "
        "Liu et al.); only with advantage group.", only="algo == grpo",
    )
    critic: Literal["head", "separate"] = option(
        "separate",
        "ppo's value model: 'head', a linear value head on the policy's last hidden state (shared trunk); "
        "'separate', a second network with its own value head (LoRA too when lora.enabled).",
        only="algo == ppo",
    )
    critic_init: Literal["policy", "reward"] = option(
        "reward", "Where a separate critic starts: the policy's weights, or the reward model's (reward.kind model).",
        only=("algo == ppo", "critic == separate"),
    )
    vf_coef: float = option(0.1, "ppo: weight of the value loss added to the policy loss.", min=0, only="algo == ppo")
    value_clip: float | None = option(
        0.2, "ppo: clip range of the value prediction around its rollout value.", min=0, only="algo == ppo"
    )
    ptx_coef: float = option(
        0.0, "PPO-ptx (InstructGPT): weight gamma of the SFT loss on demonstrations mixed into every update.", min=0
    )
    ptx_data: str = option(
        "alpaca-seed", "Demonstrations for PPO-ptx (same forms as data.train).", only="ptx_coef > 0"
    )
    ptx_max_length: int = option(
        512, "Longest PPO-ptx demonstration in tokens; prompts are cut from the oldest token first.", min=8,
        only="ptx_coef > 0",
    )
    reference: Literal["auto", "copy", "adapter"] = option(
        "auto", "Reference policy for the KL: a frozen copy, or (LoRA) the policy with adapters off; auto: adapter "
        "with LoRA, else copy."
    )
    sample_every: int = option(5, "Write a few prompts and completions to samples.jsonl every N iterations.", min=1)
    monitors: list[str] = option(
        [], "Rewards logged but never optimised, each a 'package.module:function' called as the reward function "
        "is, or a reward-model folder (run, model or ensemble folder; read with monitor_max_length); logged per "
        "iteration (and at evaluation) as monitor_<function> or monitor_<folder name>. A gold scorer here shows "
        "whether the optimised reward is being gamed.",
    )
    monitor_max_length: int = option(
        1024, "Longest (prompt + reply) a reward-model monitor reads; prompts cut from the left.", min=8,
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
    path: str | None = option(
        None, "kind model: the reward model (run folder, model folder or ensemble run).", only="kind == model"
    )
    function: str | None = option(None, "kind function: 'package.module:function'.", only="kind == function")
    combine: Literal["mean", "min", "mean_minus_std"] = option(
        "mean", "Ensemble: combine members by mean, min, or mean - lam x std.", only="kind == model"
    )
    lam: float = option(
        1.0, "Ensemble: lam of mean_minus_std.", min=0, only=("kind == model", "combine == mean_minus_std")
    )
    length_normalise: bool = option(
        False, "Score the residual of the reward-on-length fit stored by `alignkit eval rm`.", only="kind == model"
    )
    batch_size: int = option(8, "Completions per reward-model forward pass.", min=1, only="kind == model")
    max_length: int = option(
        1024, "Longest (prompt + reply) the reward model reads; prompts cut from the left.", min=8,
        only="kind == model",
    )


@dataclasses.dataclass
class ProcessRewardConfig:
    path: str | None = option(
        None, "A process reward model (an `alignkit prm` run or model folder) whose step probabilities are step "
        "rewards: with the gae advantage, dense rewards at each step's last token (Math-Shepherd's step-by-step "
        "PPO); with group, DeepSeekMath's process-supervision advantages added to the outcome ones. A reply's "
        "steps are its non-empty lines, a closing 'The answer is' line not counted. null: no step rewards.",
    )
    weight: float = option(1.0, "w: the weight of the step rewards.", min=0, only="path != null")
    outcome_weight: float = option(
        1.0, "The weight of the outcome reward (the reward section's); 0: step rewards alone.", min=0,
        only="path != null",
    )
    batch_size: int = option(8, "Replies per process-reward-model forward pass.", min=1, only="path != null")
    max_length: int = option(
        1024, "Longest (prompt + steps) the process reward model reads; prompts cut from the left.", min=8,
        only="path != null",
    )


def _rl_data() -> RLDataConfig:
    return RLDataConfig(train="hh-rlhf-harmless", on_error="skip")


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
    data: RLDataConfig = dataclasses.field(default_factory=_rl_data)
    train: TrainConfig = dataclasses.field(default_factory=_rl_train)
    generation: GenerationConfig = dataclasses.field(default_factory=_rl_generation)
    rl: RLSettings = dataclasses.field(default_factory=RLSettings)
    reward: RewardSourceConfig = dataclasses.field(default_factory=RewardSourceConfig)
    process_reward: ProcessRewardConfig = dataclasses.field(default_factory=ProcessRewardConfig)
