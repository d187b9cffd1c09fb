"""Does more human preference data help a frozen-backbone reward model, and how does one trained on HH
do on other people's preferences? A measurement of the head-only recipe (``reward.head_only``).

The config's frozen model pools every response once, as ``alignkit rm`` does: HH's training and held-out
splits, and every comparison of each ``--extra`` dataset (all of it: these sets are only ever trained on or
scored, never split). Each set's features are cached in ``OUT/features-<name>-<digest>.pt``, the digest
of the model settings and of the tokenised comparisons themselves, so a rerun (or a run with one more
set) pools only what is new, and changed data or settings are pooled again. Then, with the config's ``head_l2``:

- the head fitted on HH's training split alone, scored on HH's held-out split (accuracy with its
  continuity-corrected Wilson interval, and the length-balanced accuracy) and on each extra set (accuracy
  with its interval: how an HH-trained model does on other people's preferences);
- the head fitted on HH's training split plus each extra set, and plus all of them, scored on HH's
  held-out split: whether the extra data helps on HH (the held-out split is the same in every row), with
  the Spearman correlation of its rewards and the responses' lengths there.

With ``--set reward.length_covariate=true`` every head is fitted beside the length term (as ``alignkit rm``
fits it) from the same cached features, so the second run only fits.

    python benchmarks/rm_more_data.py --config configs/rm-smollm2-hh.yaml \\
        --extra pandalm,oasst-en100,autoj-pairwise --out runs/rm-more-data

Each extra set is read in the format its reader gives first (``oasst-en100``: rankings, each reply pooled
once; the others: pairs). Writes ``OUT/more_data.json`` and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from pathlib import Path

import torch

from alignkit.config import RMConfig, load_config, to_dict
from alignkit.data.sources import DATASETS
from alignkit.evaluate.intervals import wilson_cc_interval
from alignkit.evaluate.reward_metrics import length_balanced_accuracy, spearman
from alignkit.io import atomic_write_json
from alignkit.models.reward import load_reward_model
from alignkit.processes import process_state
from alignkit.train.reward import comparison_groups
from alignkit.train.reward_head import (
    GroupFeatures,
    by_length,
    check_head_only,
    fit_head,
    fit_head_beside_length,
    group_features,
    head_metrics,
    pooled_encoder,
)
from alignkit.train.run import load_stage_tokenizer


def extra_config(config: RMConfig, name: str) -> RMConfig:
    """``config`` reading all of data source ``name`` as training data: a named dataset in its reader's first
    format, a file as pairs."""
    ranked = name in DATASETS and next(iter(DATASETS[name].adapters)) == "ranking"
    data_format = "rankings" if ranked else "pairs"
    data = dataclasses.replace(config.data, train=name, eval_fraction=0.0, skip_examples=0, max_examples=None,
                               max_eval_examples=None, extra_train=[])
    return dataclasses.replace(config, data=data, reward=dataclasses.replace(config.reward, data_format=data_format))


def concatenated(parts: list[GroupFeatures]) -> GroupFeatures:
    """One GroupFeatures of several, responses and groups renumbered after those before them."""
    fields: dict[str, list[torch.Tensor]] = {k: [] for k in ("features", "better", "worse", "group_ids", "margin",
                                                             "label", "lengths")}
    responses = groups = 0
    for part in parts:
        fields["features"].append(part.features)
        fields["better"].append(part.better + responses)
        fields["worse"].append(part.worse + responses)
        fields["group_ids"].append(part.group_ids + groups)
        fields["margin"].append(part.margin)
        fields["label"].append(part.label)
        fields["lengths"].append(part.lengths)
        responses, groups = responses + part.features.size(0), groups + part.groups
    return GroupFeatures(**{k: torch.cat(v) for k, v in fields.items()}, groups=groups,
                         tokens=sum(p.tokens for p in parts))


def scored(w: torch.Tensor, data: GroupFeatures) -> dict:
    """Pair accuracy of the head ``w`` on ``data`` (each group's pairs averaged, then the groups: ranking
    groups weighted as training weighs them) with the Wilson interval of that share over the groups (exact
    for pairs; for rankings an approximation that counts each group once)."""
    accuracy = head_metrics(w, data, 0.0)["accuracy"]
    return {"groups": data.groups, "accuracy": accuracy,
            "interval": list(wilson_cc_interval(accuracy * data.groups, data.groups))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--extra", required=True, help="comma-separated dataset names")
    parser.add_argument("--out", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    args = parser.parse_args()
    config = load_config(RMConfig, args.config, args.set)
    check_head_only(config)
    extras = args.extra.split(",")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tokenizer = load_stage_tokenizer(config.model)
    model = load_reward_model(config.model, dataclasses.replace(config.lora, enabled=False), config.reward.pooling,
                              config.train.seed, backbone_layers=config.reward.backbone_layers)
    model.to(process_state().device)
    encode = pooled_encoder(model)

    def features(name: str, groups: list) -> GroupFeatures:
        """The pooled features of ``groups``, from the cache when the same settings pooled the same tokens."""
        digest = hashlib.sha256(json.dumps([
            to_dict(config.model), config.reward.pooling, config.reward.backbone_layers,
            [(g.pairs, g.margins, g.labels, [(s.input_ids, s.labels) for s in g.sequences]) for g in groups],
        ], default=str).encode()).hexdigest()[:16]
        path = out / f"features-{Path(name).name}-{digest}.pt"
        if path.is_file():
            return GroupFeatures(**torch.load(path))
        pooled = group_features(encode, groups, tokenizer.pad_token_id, config.train.micro_batch_size, name,
                                share_prompt=config.reward.shares_prompt())
        torch.save(dataclasses.asdict(pooled), path)
        return pooled

    hh_train_groups, hh_held_groups = (by_length(g) for g in comparison_groups(config, tokenizer))
    hh_train, hh_held = features("hh-train", hh_train_groups), features("hh-held-out", hh_held_groups)
    extra = {name: features(name, comparison_groups(extra_config(config, name), tokenizer)[0]) for name in extras}
    pooling_seconds = time.perf_counter() - start

    def on_hh(w: torch.Tensor) -> dict:
        rewards = hh_held.features @ w
        balanced = length_balanced_accuracy(rewards[hh_held.better], rewards[hh_held.worse],
                                            hh_held.lengths[hh_held.better], hh_held.lengths[hh_held.worse])
        return {**scored(w, hh_held), "length_balanced_accuracy": balanced["length_balanced_accuracy"],
                "length_balanced_interval": balanced["length_balanced_interval"],
                "reward_length_spearman": spearman(rewards, hh_held.lengths)}

    l2, beside_length = config.reward.head_l2, config.reward.length_covariate

    def fit(data: GroupFeatures) -> torch.Tensor:
        return fit_head_beside_length(data, l2)[0] if beside_length else fit_head(data, l2)

    hh_only = fit(hh_train)
    trained_on = {"hh": hh_only,
                  **{f"hh + {name}": fit(concatenated([hh_train, data])) for name, data in extra.items()}}
    if len(extra) > 1:
        trained_on["hh + " + " + ".join(extra)] = fit(concatenated([hh_train, *extra.values()]))
    report = {"config": args.config, "overrides": args.set, "head_l2": l2, "length_covariate": beside_length,
              "groups": {"hh-train": hh_train.groups, "hh-held-out": hh_held.groups,
                         **{name: data.groups for name, data in extra.items()}},
              "hh_model_on": {name: scored(hh_only, data) for name, data in extra.items()},
              "on_hh_held_out": {label: on_hh(w) for label, w in trained_on.items()},
              "pooling_seconds": pooling_seconds, "total_seconds": time.perf_counter() - start}
    atomic_write_json(out / "more_data.json", report)
    print(json.dumps(report, indent=1))
    print(markdown(report))


def markdown(report: dict) -> str:
    """The two tables of ``more_data.json``."""
    def cell(figure, low_high):
        return f"{figure:.3f} ({low_high[0]:.3f}–{low_high[1]:.3f})"

    lines = ["| trained on | groups | HH held-out accuracy (95%) | length-balanced (95%) | Spearman(reward, length) |",
             "| --- | --- | --- | --- | --- |"]
    groups = report["groups"]
    for label, row in report["on_hh_held_out"].items():
        trained = sum(groups["hh-train" if part == "hh" else part] for part in label.split(" + "))
        lines.append(f"| {label} | {trained} | {cell(row['accuracy'], row['interval'])} | "
                     f"{cell(row['length_balanced_accuracy'], row['length_balanced_interval'])} | "
                     f"{row['reward_length_spearman']:.3f} |")
    lines += ["", "| HH-trained head on | groups | accuracy (95%) |", "| --- | --- | --- |"]
    for name, row in report["hh_model_on"].items():
        lines.append(f"| {name} | {row['groups']} | {cell(row['accuracy'], row['interval'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
