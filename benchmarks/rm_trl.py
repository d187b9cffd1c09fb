"""Reward-model training side by side: TRL's RewardTrainer on exactly the tokens alignkit trains on.

The same config gives the same held-out split, the same pairs, the same chat-template rendering
and left truncation (alignkit's tokeniser; TRL receives ``chosen_ids``/``rejected_ids``), the same
model, LoRA targets and optimiser settings. Both models are then scored by the same code:

    pip install -e '.[bench]'
    python benchmarks/rm_trl.py --config configs/rm-smollm2-hh.yaml --out runs/rm-trl
    alignkit eval rm --model runs/rm-trl --data runs/rm-trl/heldout.jsonl
    alignkit eval rm --model runs/rm-smollm2-hh --data runs/rm-trl/heldout.jsonl

``--set key=value`` overrides the config as ``alignkit rm --set`` does (a sweep runs one config many ways);
with ``lora.enabled: false`` TRL fine-tunes every weight. ``--set train.max_minutes=M`` stops training at that
wall-clock budget (after the step that crosses it), as it does alignkit's, so both toolkits can be compared at the
same time budget.
"""

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForSequenceClassification
from trl import RewardConfig, RewardTrainer

from alignkit.config import RMConfig, load_config
from alignkit.data.comparisons import drop_identical_pairs, pair_group
from alignkit.data.prepare import load_split, tokenize_records
from alignkit.models import load_tokenizer, resolve_model_path, save_model
from alignkit.models.lora import lora_targets

if __package__ in (None, ""):  # run as a script: make the benchmarks package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.data import reward_rows  # noqa: E402
from benchmarks.trl_budget import add_time_budget, tokens_trained  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    args = parser.parse_args()
    config = load_config(RMConfig, args.config, args.set)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    path = resolve_model_path(config.model.name, config.model.cache_dir)
    tokenizer = load_tokenizer(path)
    train, held_out = load_split(config.data, "preference", seed=config.train.seed)
    groups = tokenize_records(
        drop_identical_pairs(train, "train"), "train",
        lambda r, where: pair_group(r, tokenizer, config.data.max_length, where), on_error=config.data.on_error,
    )
    rows = reward_rows(groups)
    tokens = sum(g.num_tokens for g in groups)
    with (out / "heldout.jsonl").open("w") as f:
        for record, _ in held_out:
            f.write(json.dumps({"prompt": list(record.prompt), "chosen": record.chosen, "rejected": record.rejected}))
            f.write("\n")

    torch.manual_seed(config.train.seed)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32)
    lora = config.lora
    peft_config = None
    if lora.enabled:
        peft_config = LoraConfig(task_type="SEQ_CLS", r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                 **lora_targets(model, lora))
    t = config.train
    trainer_args = RewardConfig(
        output_dir=str(out / "trainer"), per_device_train_batch_size=t.micro_batch_size,
        gradient_accumulation_steps=t.batch_size // t.micro_batch_size, learning_rate=t.learning_rate,
        num_train_epochs=t.epochs, max_steps=t.max_steps or -1, warmup_steps=t.warmup_steps,
        lr_scheduler_type="constant_with_warmup" if t.schedule == "constant" else t.schedule,
        max_grad_norm=t.max_grad_norm, weight_decay=t.weight_decay, seed=t.seed, max_length=None,
        # TRL defaults to bf16 mixed precision and gradient checkpointing; match alignkit's config instead.
        bf16=config.model.dtype == "bfloat16", gradient_checkpointing=config.model.gradient_checkpointing,
        logging_steps=1, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True,
    )
    trainer = RewardTrainer(model=model, args=trainer_args, train_dataset=Dataset.from_list(rows),
                            processing_class=tokenizer, peft_config=peft_config)
    budget = add_time_budget(trainer, t.max_minutes)
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    save_model(trainer.model, tokenizer, out / "model")
    stopped = budget is not None and budget.stopped
    trained = tokens_trained(tokens, len(rows), t.epochs, result.global_step, t.batch_size,
                             cut_short=stopped or t.max_steps is not None)
    report = {
        "pairs": len(rows),
        "steps": result.global_step,
        "train_seconds": seconds,
        "tokens_per_second": trained / seconds,
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "train_loss": result.training_loss,
        "max_minutes": t.max_minutes,
        "stopped_at_budget": stopped,
    }
    (out / "trl_report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
