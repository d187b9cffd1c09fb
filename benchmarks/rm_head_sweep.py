"""Which block, pooling and ridge a frozen-backbone reward model (``reward.head_only``) should use: a sweep.

One pass of the frozen model over every response of a reward-model config's comparisons keeps, for each
block b, its hidden states through the final norm (what ``reward.backbone_layers: b`` reads), pooled both
ways (``last`` token, ``mean`` over the reply). For each pooling, block and ``head_l2`` the head is fitted
with alignkit's own :func:`~alignkit.train.reward_head.fit_head`: the mean accuracy of 5-fold
cross-validation on the training groups (what a user may choose by), then the fit on all of them scored on
the held-out split: accuracy with its continuity-corrected Wilson interval, and the length-balanced
accuracy (mean of the accuracies on the pairs whose chosen reply is the longer and the shorter one).

    python benchmarks/rm_head_sweep.py --config configs/rm-smollm2-hh.yaml --out runs/rm-head-sweep

Writes ``OUT/sweep.json`` (every row) and prints a Markdown table; the config's ``reward`` section is not
read (the sweep is over it), its model, data and ``train.seed`` (the split) and ``micro_batch_size`` are.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from alignkit.config import RMConfig, load_config
from alignkit.evaluate.intervals import wilson_cc_interval
from alignkit.evaluate.reward_metrics import length_balanced_accuracy
from alignkit.io import atomic_write_json
from alignkit.models.attention import model_attention_mask
from alignkit.models.reward import load_reward_model
from alignkit.train.reward import comparison_groups
from alignkit.train.reward_head import (
    GroupFeatures,
    by_length,
    fit_head,
    group_features,
    head_metrics,
    select_groups,
)
from alignkit.train.run import load_stage_tokenizer

POOLINGS = ("last", "mean")


def block_encoder(model):
    """Each response's hidden state after every block, through the final norm, pooled both ways: (B, L, 2, d)."""
    net = model.hf_model
    backbone = getattr(net, net.base_model_prefix)

    def encode(batch):
        mask = batch["attention_mask"]
        out = backbone(input_ids=batch["input_ids"], attention_mask=model_attention_mask(net, mask),
                       output_hidden_states=True, use_cache=False)
        blocks = [backbone.norm(h) for h in out.hidden_states[1:-1]] + [out.last_hidden_state]
        states = torch.stack(blocks, 1)  # (B, L, T, d)
        last = states[torch.arange(states.size(0)), :, mask.sum(-1) - 1]
        weights = batch["response_mask"].to(states.dtype)[:, None, :, None]
        mean = (states * weights).sum(2) / weights.sum(2).clamp(min=1.0)
        return torch.stack([last, mean], 2)

    return encode


def cross_validated_accuracy(data: GroupFeatures, l2: float, folds: torch.Tensor) -> float:
    accuracies = []
    for fold in range(int(folds.max()) + 1):
        w = fit_head(select_groups(data, folds != fold), l2)
        accuracies.append(head_metrics(w, select_groups(data, folds == fold), 0.0)["accuracy"])
    return sum(accuracies) / len(accuracies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--blocks", default="3,6,9,12,15,18,21,24,27,30", help="blocks to fit heads on")
    parser.add_argument("--l2", default="0.1,0.3,1,3,10", help="head_l2 values")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    config = load_config(RMConfig, args.config, args.set)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    blocks, l2s = [int(b) for b in args.blocks.split(",")], [float(x) for x in args.l2.split(",")]

    start = time.perf_counter()
    tokenizer = load_stage_tokenizer(config.model)
    train_groups, held_groups = (by_length(g) for g in comparison_groups(config, tokenizer))
    model = load_reward_model(config.model, dataclasses.replace(config.lora, enabled=False), "mean", config.train.seed)
    encode, batch = block_encoder(model), config.train.micro_batch_size
    train = group_features(encode, train_groups, tokenizer.pad_token_id, batch, "training responses")
    held = group_features(encode, held_groups, tokenizer.pad_token_id, batch, "held-out responses")
    pooling_seconds = time.perf_counter() - start
    folds = torch.randperm(train.groups, generator=torch.Generator().manual_seed(config.train.seed)) % args.folds

    rows = []
    for p, pooling in enumerate(POOLINGS):
        for block in blocks:
            fit_data = dataclasses.replace(train, features=train.features[:, block - 1, p])
            held_data = dataclasses.replace(held, features=held.features[:, block - 1, p])
            for l2 in l2s:
                w = fit_head(fit_data, l2)
                rewards = held_data.features @ w
                chosen, rejected = rewards[held_data.better], rewards[held_data.worse]
                accuracy = head_metrics(w, held_data, 0.0)["accuracy"]
                balanced = length_balanced_accuracy(chosen, rejected, held.lengths[held_data.better],
                                                    held.lengths[held_data.worse])
                row = {"pooling": pooling, "block": block, "head_l2": l2,
                       "cv_accuracy": cross_validated_accuracy(fit_data, l2, folds),
                       "held_out_accuracy": accuracy,
                       "held_out_interval": list(wilson_cc_interval(accuracy * held.groups, held.groups)),
                       "length_balanced_accuracy": balanced["length_balanced_accuracy"],
                       "length_balanced_interval": balanced["length_balanced_interval"]}
                rows.append(row)
                print(json.dumps(row), flush=True)
    report = {"config": args.config, "overrides": args.set, "train_groups": train.groups,
              "held_out_groups": held.groups, "pooling_seconds": pooling_seconds,
              "total_seconds": time.perf_counter() - start, "rows": rows}
    atomic_write_json(out / "sweep.json", report)
    print(markdown(rows))


def markdown(rows: list[dict]) -> str:
    """One line per row; the row with the best cross-validated accuracy of each pooling in bold."""
    best = {p: max((r for r in rows if r["pooling"] == p), key=lambda r: r["cv_accuracy"]) for p in POOLINGS}
    lines = ["| pooling | block | head_l2 | 5-fold CV accuracy | held-out accuracy (95%) | length-balanced (95%) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        cells = [r["pooling"], str(r["block"]), f"{r['head_l2']:g}", f"{r['cv_accuracy']:.3f}",
                 f"{r['held_out_accuracy']:.3f} ({r['held_out_interval'][0]:.3f}–{r['held_out_interval'][1]:.3f})",
                 f"{r['length_balanced_accuracy']:.3f} ({r['length_balanced_interval'][0]:.3f}–"
                 f"{r['length_balanced_interval'][1]:.3f})"]
        if r is best[r["pooling"]]:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
