"""Reward-model training (stage 2 of RLHF): Bradley–Terry on comparison groups, optionally an ensemble."""

from dataclasses import replace

import torch

from alignkit.config import RMConfig
from alignkit.data.comparisons import (
    ComparisonGroup,
    collate_groups,
    drop_identical_pairs,
    pair_group,
    ranking_group,
)
from alignkit.data.prepare import load_split, tokenize_records
from alignkit.io import atomic_write_json
from alignkit.losses.reward import pairwise_reward_loss
from alignkit.models.reward import ENSEMBLE_FILE, load_reward_model, shared_layout
from alignkit.train.engine import Engine, RowCountedStep, RunResult, StepOutput
from alignkit.train.reward_head import check_head_only, run_head_only
from alignkit.train.run import load_stage_tokenizer, prepare_run_dir


class RewardStep(RowCountedStep):
    """A batch of comparison groups → Σ over groups of the group's mean pair loss (unit: a group)."""

    name = "rm"
    evaluate_at_start = True

    def __init__(self, pad_token_id: int, centering: float, share_prompt: bool):
        self.pad_token_id = pad_token_id
        self.centering = centering
        self.share_prompt = share_prompt

    def collate(self, groups):
        return collate_groups(groups, self.pad_token_id, share_prompt=self.share_prompt)

    def loss(self, model, batch) -> StepOutput:
        if self.share_prompt:
            rewards = model(batch["input_ids"], batch["attention_mask"], position_ids=batch["position_ids"],
                            **shared_layout(batch))
        else:
            rewards = model(batch["input_ids"], batch["attention_mask"], batch["response_mask"])
        loss_sum, sums = pairwise_reward_loss(
            rewards[batch["better"]],
            rewards[batch["worse"]],
            group_ids=batch["group_ids"],
            margin=batch["margin"],
            label=batch["label"],
            centering=self.centering,
        )
        return StepOutput(loss_sum, sums)

    def exportable(self, model):
        return model.net


def run_rm(config: RMConfig, *, resume: bool = False) -> list[RunResult]:
    """Train ``reward.ensemble_size`` reward models; one writes ``output_dir/model``, several write
    ``output_dir/member-i/`` run folders and ``output_dir/ensemble.json`` listing them. With
    ``reward.head_only`` the backbone stays frozen and only the head is fitted (:mod:`alignkit.train.reward_head`)."""
    if config.reward.head_only:
        check_head_only(config)
    run_dir = prepare_run_dir(config, resume=resume)
    tokenizer = load_stage_tokenizer(config.model)
    train_groups, eval_groups = comparison_groups(config, tokenizer)
    if config.reward.head_only:
        model = load_reward_model(config.model, config.lora, config.reward.pooling, config.train.seed,
                                  config.reward.backbone_layers)
        return [run_head_only(config, model, tokenizer, train_groups, eval_groups, run_dir)]
    size = config.reward.ensemble_size
    share_prompt = config.reward.shares_prompt()
    results = []
    for member in range(size):
        member_dir = run_dir if size == 1 else run_dir / f"member-{member}"
        train = config.train if size == 1 else _member_train_config(config, member)
        groups = _bootstrap(train_groups, train.seed) if config.reward.bootstrap and size > 1 else train_groups
        model = load_reward_model(config.model, config.lora, config.reward.pooling, train.seed,
                                  config.reward.backbone_layers)
        step = RewardStep(tokenizer.pad_token_id, config.reward.centering, share_prompt)
        engine = Engine(model, tokenizer, step, train, member_dir)
        results.append(engine.fit(groups, eval_groups, resume=resume, merge_lora=config.lora.merge_on_save))
    if size > 1 and engine.is_main:
        members = [f"member-{i}/model" for i in range(size)]
        atomic_write_json(run_dir / ENSEMBLE_FILE, {"members": members, "bootstrap": config.reward.bootstrap})
    return results


def comparison_groups(config: RMConfig, tokenizer) -> tuple[list[ComparisonGroup], list[ComparisonGroup]]:
    """The training and held-out comparison groups of ``config``'s data, tokenised as training reads them."""
    kind = "preference" if config.reward.data_format == "pairs" else "ranking"
    train_records, eval_records = load_split(config.data, kind, seed=config.train.seed)
    to_group = pair_group if kind == "preference" else ranking_group

    def prepare(records, label):
        if kind == "preference":
            records = drop_identical_pairs(records, label)
        return tokenize_records(
            records, label, lambda r, where: to_group(r, tokenizer, config.data.max_length, where),
            on_error=config.data.on_error,
        )

    return prepare(train_records, "train"), prepare(eval_records, "eval")


def _member_train_config(config: RMConfig, member: int):
    return replace(config.train, seed=config.train.seed + member)


def _bootstrap(groups: list, seed: int) -> list:
    """A resample of ``groups`` with replacement, of the same size (Efron 1979)."""
    generator = torch.Generator().manual_seed(seed)
    return [groups[i] for i in torch.randint(len(groups), (len(groups),), generator=generator).tolist()]
