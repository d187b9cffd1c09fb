"""A reward model with a frozen backbone: pooled features computed once, the linear head fitted exactly.

Every response's pooled hidden state h (:meth:`RewardModel.pooled`: the last token or the mean over the
response, after the backbone's final norm) is computed once, without gradients. With r = w · h the head
then minimises the loss ``alignkit rm`` trains with (:func:`~alignkit.losses.reward.pairwise_reward_loss`:
Bradley–Terry, margins, soft labels, rankings' pair weights, centring) over the G training groups, plus a
ridge penalty on standardised features:

    J(w) = L_sum(w) / G  +  (λ/2) Σ_j (σ_j w_j)²

σ_j is the standard deviation of feature j over the training responses. J is convex in w, so L-BFGS in
float64 finds its optimum; the result is written into the score head, so the saved folder is an ordinary
reward model whose rewards are exactly w · h. This is a linear probe (Alain & Bengio 2016) fitted by
regularised logistic regression on feature differences: minutes on a CPU where fine-tuning takes hours.

With ``reward.length_covariate`` the fit has one more, unpenalised term: rewards w · h + c · z(ℓ), z the
response length ℓ (tokens) standardised over the training responses. The share of the preferences that
reply length explains linearly goes to c; w is fitted to the rest, and only w is saved, so the reward
model does not score a reply higher for being shorter or longer as such (adjusting for a confounder
as regression does; the length term is reported as ``length_coefficient_per_100_tokens``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import torch

from alignkit.config import RMConfig
from alignkit.console import console, progress, summary_table
from alignkit.data.comparisons import ComparisonGroup, collate_groups
from alignkit.errors import ConfigError
from alignkit.io import atomic_write_json
from alignkit.losses.reward import pairwise_reward_loss
from alignkit.models.loading import save_model
from alignkit.models.reward import RewardModel, shared_layout
from alignkit.processes import process_state
from alignkit.tensors import IGNORE_INDEX
from alignkit.train.engine import RunResult, peak_memory_mb
from alignkit.train.reporting import MetricsLog

STEPPED_TRAIN_KEYS = ("epochs", "max_steps", "max_minutes", "batch_size", "learning_rate", "weight_decay",
                      "adam_beta1", "adam_beta2", "warmup_steps", "schedule", "max_grad_norm", "eval_every",
                      "save_every")


@dataclasses.dataclass
class GroupFeatures:
    """Pooled features of every response of some comparison groups, and their pairs as indices into them."""

    features: torch.Tensor  # (N, hidden) float64
    better: torch.Tensor  # (P,)
    worse: torch.Tensor  # (P,)
    group_ids: torch.Tensor  # (P,)
    margin: torch.Tensor  # (P,) NaN: none
    label: torch.Tensor  # (P,) NaN: none
    lengths: torch.Tensor  # (N,) float64 response tokens
    groups: int
    tokens: int


def check_head_only(config: RMConfig) -> None:
    """A head-only fit has no optimiser steps, adapters or ensemble seeds: settings for those are refused."""
    if config.lora.enabled:
        raise ConfigError("lora.enabled: reward.head_only freezes the backbone, so there is nothing for LoRA to "
                          "adapt; set lora.enabled to false")
    if config.reward.ensemble_size > 1:
        raise ConfigError("reward.ensemble_size: members fitted head-only on the same features would be the same "
                          "model; use 1 with reward.head_only")
    if process_state().num_processes > 1:
        raise ConfigError("reward.head_only fits the head in one process; run it without torchrun/accelerate launch")
    defaults = RMConfig().train
    moved = [key for key in STEPPED_TRAIN_KEYS if getattr(config.train, key) != getattr(defaults, key)]
    if moved:
        raise ConfigError(f"train.{moved[0]}: reward.head_only fits the head exactly, without optimiser steps, so "
                          f"{', '.join('train.' + k for k in moved)} would do nothing; leave them unset "
                          "(reward.head_l2 sets the fit)")


def by_length(groups: list[ComparisonGroup]) -> list[ComparisonGroup]:
    """The groups by their longest sequence, shortest first (a stable sort: sorting again changes nothing)."""
    return sorted(groups, key=lambda group: max(len(s.input_ids) for s in group.sequences))


@torch.no_grad()
def group_features(encode: Callable[[dict[str, torch.Tensor]], torch.Tensor], groups: list[ComparisonGroup],
                   pad_token_id: int, batch_groups: int, label: str, share_prompt: bool = False) -> GroupFeatures:
    """``encode(batch)`` of every response of ``groups`` (a batch of :func:`collate_groups` in, padded or with
    ``share_prompt`` in the shared-prompt layout; one feature row per response out, any trailing shape),
    ``batch_groups`` groups at a time, shortest groups first so that a batch pads little (the result lists
    the groups in that order)."""
    groups = by_length(groups)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("features", "better", "worse", "group_ids",
                                                            "margin", "label", "lengths")}
    responses = tokens = 0
    with progress(f"pooling {label}", len(groups)) as advance:
        for start in range(0, len(groups), batch_groups):
            chunk = groups[start:start + batch_groups]
            batch = collate_groups(chunk, pad_token_id, share_prompt=share_prompt)
            parts["features"].append(encode(batch).double().cpu())
            for key, offset in (("better", responses), ("worse", responses), ("group_ids", start)):
                parts[key].append(batch[key] + offset)
            parts["margin"].append(batch["margin"])
            parts["label"].append(batch["label"])
            parts["lengths"].append(torch.tensor([response_tokens(s) for group in chunk for s in group.sequences],
                                                 dtype=torch.float64))
            responses += sum(len(group.sequences) for group in chunk)
            tokens += int(batch["num_tokens"])
            advance(len(chunk))
    return GroupFeatures(**{k: torch.cat(v) for k, v in parts.items()}, groups=len(groups), tokens=tokens)


def response_tokens(sequence) -> int:
    """How many tokens of a tokenised comparison sequence are its response (the labelled ones)."""
    return sum(label != IGNORE_INDEX for label in sequence.labels)


def pooled_encoder(model: RewardModel) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """The frozen model's h_pool of each response of a batch: what its score head reads."""
    model.eval()
    device = next(model.parameters()).device

    def encode(batch):
        batch = {key: value.to(device) for key, value in batch.items()}
        if "position_ids" in batch:  # the shared-prompt layout
            return model.pooled(batch["input_ids"], batch["attention_mask"], position_ids=batch["position_ids"],
                                **shared_layout(batch))
        return model.pooled(batch["input_ids"], batch["attention_mask"], batch["response_mask"])

    return encode


def select_groups(data: GroupFeatures, keep: torch.Tensor) -> GroupFeatures:
    """The groups whose ``keep`` entry (indexed by group id) is true, with their responses renumbered."""
    kept_pairs = keep[data.group_ids]
    rows = torch.unique(torch.cat([data.better[kept_pairs], data.worse[kept_pairs]]))
    new_row = torch.full((data.features.size(0),), -1, dtype=torch.long)
    new_row[rows] = torch.arange(rows.numel())
    new_group = torch.cumsum(keep.long(), 0) - 1
    return GroupFeatures(features=data.features[rows], better=new_row[data.better[kept_pairs]],
                         worse=new_row[data.worse[kept_pairs]], group_ids=new_group[data.group_ids[kept_pairs]],
                         margin=data.margin[kept_pairs], label=data.label[kept_pairs], lengths=data.lengths[rows],
                         groups=int(keep.sum()),
                         tokens=0)


def head_objective(w: torch.Tensor, data: GroupFeatures, l2: float, scale: torch.Tensor,
                   centering: float = 0.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """J(w) = L_sum(w) / G + (λ/2) Σ_j (σ_j w_j)², and the per-group metric means (accuracy, margin)."""
    rewards = data.features @ w
    loss_sum, sums = pairwise_reward_loss(rewards[data.better], rewards[data.worse], group_ids=data.group_ids,
                                          margin=data.margin, label=data.label, centering=centering)
    penalty = 0.5 * l2 * ((scale * w) ** 2).sum()
    return loss_sum / data.groups + penalty, {k: v / data.groups for k, v in sums.items()}


def feature_scale(data: GroupFeatures) -> torch.Tensor:
    """σ_j: each feature's standard deviation over the responses (1 where a feature is constant)."""
    spread = data.features.std(0)
    return torch.where(spread > 0, spread, torch.ones_like(spread))


def fit_head(data: GroupFeatures, l2: float, centering: float = 0.0, max_iter: int = 500,
             unpenalised: int = 0) -> torch.Tensor:
    """argmin_w J(w) by L-BFGS with a strong-Wolfe line search, from w = 0; float64, shape (features,).
    The last ``unpenalised`` features are left out of the ridge term."""
    w = torch.zeros(data.features.size(1), dtype=torch.float64, requires_grad=True)
    scale = feature_scale(data)
    if unpenalised:
        scale[-unpenalised:] = 0.0
    optimizer = torch.optim.LBFGS([w], max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                                  history_size=20, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss, _ = head_objective(w, data, l2, scale, centering)
        loss.backward()
        return loss

    optimizer.step(closure)
    return w.detach()


def fit_head_beside_length(data: GroupFeatures, l2: float, centering: float = 0.0) -> tuple[torch.Tensor, float]:
    """argmin over (w, c) of J with rewards w · h + c · z(ℓ), z = (ℓ - mean ℓ) / sd ℓ over the responses and c
    unpenalised: w (shape (hidden,)) and the length term as reward per token, c / sd ℓ."""
    spread = float(data.lengths.std())
    if not spread > 0:
        raise ConfigError("reward.length_covariate: every training response has the same length, so length "
                          "cannot be told apart from a constant; set it to false")
    z = (data.lengths - data.lengths.mean()) / spread
    both = fit_head(dataclasses.replace(data, features=torch.cat([data.features, z.unsqueeze(1)], 1)), l2,
                    centering, unpenalised=1)
    return both[:-1], float(both[-1]) / spread


def head_metrics(w: torch.Tensor, data: GroupFeatures, centering: float) -> dict[str, float]:
    """The engine's eval metrics of rewards w · h: loss (without the ridge term), accuracy, margin."""
    loss, sums = head_objective(w, data, 0.0, torch.ones_like(w), centering)
    return {"loss": float(loss), **{k: float(v) for k, v in sums.items()}}


def run_head_only(config: RMConfig, model: RewardModel, tokenizer, train_groups: list, eval_groups: list,
                  run_dir: Path) -> RunResult:
    """Fit the head of ``model`` on ``train_groups``; write the run folder contract (config.yaml is already
    there): model/, metrics.jsonl (step 0: the zero head; step 1: the fitted one) and eval.json.
    ``config`` has passed :func:`check_head_only`."""
    device = process_state().device
    model.to(device)
    start = time.perf_counter()
    encode = pooled_encoder(model)

    def pool(groups, label):
        return group_features(encode, groups, tokenizer.pad_token_id, config.train.micro_batch_size, label,
                              share_prompt=config.reward.shares_prompt())

    train = pool(train_groups, "training responses")
    held = pool(eval_groups, "held-out responses") if eval_groups else None
    console.print(f"rm: pooled features of {train.features.size(0)} training responses "
                  f"in {time.perf_counter() - start:.0f} s; fitting the head")
    centering = config.reward.centering
    zero = torch.zeros(train.features.size(1), dtype=torch.float64)
    length_term = {}
    if config.reward.length_covariate:
        w, per_token = fit_head_beside_length(train, config.reward.head_l2, centering)
        length_term = {"length_coefficient_per_100_tokens": 100 * per_token}
    else:
        w = fit_head(train, config.reward.head_l2, centering)
    seconds = time.perf_counter() - start

    def held_out(head: torch.Tensor) -> dict[str, float]:
        metrics = {f"eval_{k}": v for k, v in head_metrics(head, held, centering).items()}
        return {**metrics, "eval_examples": held.groups}

    before, after = (held_out(zero), held_out(w)) if held else ({}, {})
    first, last = head_metrics(zero, train, centering)["loss"], head_metrics(w, train, centering)["loss"]
    with torch.no_grad():
        score = model.hf_model.score.weight
        score.copy_(w.to(score.dtype).unsqueeze(0))
    save_model(model.net, tokenizer, run_dir / "model")
    log = MetricsLog(run_dir, resume_step=None, tensorboard=config.train.tensorboard)
    log.log(0, {"loss": first, **before})
    log.log(1, {"loss": last, **after})
    log.close()
    result = RunResult(steps=1, planned_steps=1, train_seconds=seconds, tokens_per_second=train.tokens / seconds,
                       peak_memory_mb=peak_memory_mb(device), first_loss=first, last_loss=last,
                       eval_before=before, eval_after=after)
    report = {**result.report(), "head_l2": config.reward.head_l2, **length_term}
    atomic_write_json(run_dir / "eval.json", report)
    console.print(summary_table(f"rm (head only): {run_dir}", report))
    return result
