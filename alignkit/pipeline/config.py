"""The config of ``alignkit pipeline``: one section per stage, each that stage's own config."""

from __future__ import annotations

import dataclasses
import typing
from typing import Literal

from alignkit.config import DPOConfig, RLConfig, RMConfig, SFTConfig, option


@dataclasses.dataclass
class PipelineEvalConfig:
    """The pipeline's last stage: the held-out accuracy of the reward model and of the judge (as ``alignkit
    eval rm``), and the win rate of the PPO and the DPO policy over the SFT policy judged by the judge (as
    ``alignkit eval hacking``) on the prompts of the reward model's held-out split; with ``red_team``, also
    the red-team and over-refusal figures of each policy and of the SFT policy."""

    num_prompts: int = option(
        100, "Win rates on the first N distinct prompts of the reward model's held-out split (there are at most "
        "rm.data.max_eval_examples).", min=1,
    )
    max_new_tokens: int = option(128, "Longest sampled reply in tokens.", min=1)
    temperature: float = option(0.7, "Sampling temperature of every policy; 0 is greedy decoding.", min=0)
    seed: int = option(0, "Seed of the sampling (the same for every policy).")
    batch_size: int = option(32, "Prompts per generate call.", min=1)
    max_prompt_length: int = option(512, "Longest prompt in tokens; longer ones lose their oldest tokens.", min=1)
    red_team: str | None = option(
        None, "Adversarial prompts (a dataset name such as advbench, or a .jsonl of prompts) for the red-team "
        "figures of eval hacking (null: none).")
    benign: str | None = option(
        None, "Ordinary requests (e.g. alpaca-seed) for the over-refusal rate and the judge's red-team threshold.",
        only="red_team != null")
    max_red_team: int | None = option(
        None, "Use the first N prompts of red_team and of benign (null: all).", min=1, only="red_team != null")


PIPELINE_STAGES = ("sft", "rm", "judge", "ppo", "dpo", "eval")
DEFAULT_STAGES = ("sft", "rm", "ppo", "dpo", "eval")
"""The judge is opted into: it needs a window of the training split disjoint from the reward model's."""


@dataclasses.dataclass
class PipelineConfig:
    """The RLHF pipeline in one command: SFT; a reward model and PPO from the SFT model; a second reward
    model, the judge, on pairs disjoint from the first one's; DPO from the SFT model beside PPO; then the
    evaluation, whose win rates the judge scores (never the reward model PPO trained on; without a judge
    stage they fall back to it, said as not independent). Each section is the config of that stage's own
    command. The keys of ``WIRED`` link the stages and are set from output_dir (each stage writes
    output_dir/<stage>; rm, judge, ppo and dpo start from output_dir/sft/model; ppo is scored by
    output_dir/rm); setting one is an error, so a config always says what runs."""

    WIRED: typing.ClassVar[dict[str, str]] = {
        "sft.output_dir": "sft",
        "rm.output_dir": "rm",
        "rm.model.name": "sft/model",
        "judge.output_dir": "judge",
        "judge.model.name": "sft/model",
        "ppo.output_dir": "ppo",
        "ppo.model.name": "sft/model",
        "ppo.reward.path": "rm",
        "dpo.output_dir": "dpo",
        "dpo.model.name": "sft/model",
    }

    output_dir: str = option(
        "runs/pipeline", "Root folder: each stage writes its run folder output_dir/<stage> (sft, rm, judge, ppo, dpo, "
        "eval)."
    )
    stages: list[Literal["sft", "rm", "judge", "ppo", "dpo", "eval"]] = option(
        list(DEFAULT_STAGES),
        "Stages to run, always in the order sft, rm, judge, ppo, dpo, eval (judge: a second reward model on "
        "training pairs disjoint from rm's, the independent judge of the win rates). A finished stage folder is "
        "reused, a half-finished one resumes from its last checkpoint; a stage left out must have finished "
        "before when a listed stage needs it.",
    )
    sft: SFTConfig = dataclasses.field(default_factory=SFTConfig)
    rm: RMConfig = dataclasses.field(default_factory=RMConfig)
    judge: RMConfig = dataclasses.field(default_factory=RMConfig)
    ppo: RLConfig = dataclasses.field(default_factory=RLConfig)
    dpo: DPOConfig = dataclasses.field(default_factory=DPOConfig)
    eval: PipelineEvalConfig = dataclasses.field(default_factory=PipelineEvalConfig)
