"""DPO side by side: TRL's DPOTrainer on exactly the tokens alignkit's DPO stage trains on.

The same config gives the same held-out split, the same pairs, the same chat-template rendering
and left truncation (alignkit's tokeniser; TRL receives ``prompt_ids``/``chosen_ids``/
``rejected_ids`` and does not tokenise again), the same model, LoRA targets, reference model,
loss (dpo, cdpo, ipo or hinge), beta and optimiser settings:

    pip install -e '.[bench]'
    python benchmarks/dpo_trl.py --config configs/dpo-smollm2-hh.yaml --out runs/dpo-trl
    alignkit eval winrate --policy runs/dpo-trl --baseline smollm2-135m --judge runs/rm-smollm2-hh \
        --data runs/dpo-trl/heldout.jsonl

``--set key=value`` overrides the config as in the alignkit CLI; ``--max-steps N`` times N steps only;
``--set train.max_minutes=M`` stops training after the step that crosses M minutes, as it stops alignkit's.
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
from trl import DPOConfig as TRLDPOConfig
from trl import DPOTrainer

from alignkit.config import DPOConfig, load_config
from alignkit.data.prepare import load_split
from alignkit.models import load_causal_lm, load_tokenizer, resolve_model_path, save_model
from alignkit.models.lora import lora_targets

if __package__ in (None, ""):  # run as a script: make the benchmarks package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.data import tokenize_pairs  # noqa: E402
from benchmarks.trl_budget import add_time_budget, tokens_trained  # noqa: E402


class PretokenizedDPOTrainer(DPOTrainer):
    """TRL 1.16's DPOTrainer always re-tokenises from ``prompt``/``chosen``/``rejected`` text (its own template,
    no say in truncation). Our rows are already in its tokenised form, so they are kept as they are."""

    def _prepare_dataset(self, dataset, *args, **kwargs):
        return dataset


def loss_settings(preference) -> dict:
    """TRL's loss_type (and loss_weights) for alignkit's preference.loss."""
    eps = preference.label_smoothing
    if preference.loss == "cdpo" and eps > 0:
        if eps >= 0.5:
            raise SystemExit("cdpo with label_smoothing 0.5 cannot be written with TRL's losses")
        # TRL 1.16's "sigmoid" ignores label_smoothing. "robust" is (-(1-e) logsig(bh) + e logsig(-bh)) / (1-2e), so
        # 2(1-e) sigmoid - (1-2e) robust = -(1-e) logsig(bh) - e logsig(-bh): cDPO exactly.
        return {"loss_type": ["sigmoid", "robust"], "loss_weights": [2 * (1 - eps), -(1 - 2 * eps)]}
    names = {"dpo": "sigmoid", "cdpo": "sigmoid", "ipo": "ipo", "hinge": "hinge"}
    if preference.loss not in names:
        raise SystemExit(f"preference.loss {preference.loss!r}: this benchmark runs dpo, cdpo, ipo and hinge "
                         "(TRL has KTO, ORPO and SimPO as other trainers or loss variants)")
    return {"loss_type": [names[preference.loss]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--max-steps", type=int)
    args = parser.parse_args()
    config = load_config(DPOConfig, args.config, args.set)
    t, lora, pref = config.train, config.lora, config.preference
    losses = loss_settings(pref)
    reference = {"auto": "adapter" if lora.enabled else "copy"}.get(pref.reference, pref.reference)
    if reference == "none" or (reference == "adapter" and not lora.enabled):
        raise SystemExit(f"preference.reference {reference!r} does not fit lora.enabled={lora.enabled}")
    if t.batch_size % t.micro_batch_size:
        raise SystemExit("train.batch_size must be a multiple of train.micro_batch_size (one process here)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = load_tokenizer(resolve_model_path(config.model.name, config.model.cache_dir))
    train, held_out = load_split(config.data, "preference", seed=t.seed)
    rows, tokens = tokenize_pairs(train, "train", tokenizer, config)
    eval_rows = tokenize_pairs(held_out, "eval", tokenizer, config)[0] if held_out else []
    with (out / "heldout.jsonl").open("w") as f:
        for record, _ in held_out:
            f.write(json.dumps({"prompt": list(record.prompt), "chosen": record.chosen, "rejected": record.rejected}))
            f.write("\n")

    torch.manual_seed(t.seed)
    model = load_causal_lm(config.model)
    # copy: a frozen second model. TRL's defaults give the others: adapter (LoRA, adapters disabled) and
    # precomputed (the starting policy's log-probs, one pass before training).
    ref_model = load_causal_lm(config.model) if reference == "copy" else None
    peft_config = LoraConfig(task_type="CAUSAL_LM", r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                             **lora_targets(model, lora)) if lora.enabled else None
    max_steps = args.max_steps or t.max_steps
    trainer_args = TRLDPOConfig(
        output_dir=str(out / "trainer"), per_device_train_batch_size=t.micro_batch_size,
        per_device_eval_batch_size=t.micro_batch_size, gradient_accumulation_steps=t.batch_size // t.micro_batch_size,
        learning_rate=t.learning_rate, adam_beta1=t.adam_beta1, adam_beta2=t.adam_beta2, weight_decay=t.weight_decay,
        num_train_epochs=t.epochs, max_steps=max_steps or -1, warmup_steps=t.warmup_steps,
        lr_scheduler_type="constant_with_warmup" if t.schedule == "constant" else t.schedule,
        max_grad_norm=t.max_grad_norm or 0.0, seed=t.seed, beta=pref.beta, label_smoothing=pref.label_smoothing,
        **losses, precompute_ref_log_probs=reference == "precomputed",
        max_length=None,  # alignkit truncated already (from the left); TRL would cut sequence ends
        # TRL defaults to bf16 mixed precision, gradient checkpointing and zeroed dropout; follow alignkit's config.
        bf16=config.model.dtype == "bfloat16", gradient_checkpointing=config.model.gradient_checkpointing,
        disable_dropout=False, logging_steps=1, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True,
    )
    start = time.perf_counter()  # includes TRL's reference pass over train and eval pairs when precomputed
    trainer = PretokenizedDPOTrainer(
        model=model, ref_model=ref_model, args=trainer_args, train_dataset=Dataset.from_list(rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None, processing_class=tokenizer,
        peft_config=peft_config,
    )
    budget = add_time_budget(trainer, t.max_minutes)
    setup_seconds, start = time.perf_counter() - start, time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    if eval_rows:
        trainer.evaluate()
    save_model(trainer.model, tokenizer, out / "model")  # LoRA merged

    # Tokens as alignkit counts them: chosen + rejected sequences (the unlabelled newline included).
    stopped = budget is not None and budget.stopped
    trained = tokens_trained(tokens, len(rows), t.epochs, result.global_step, t.batch_size,
                             cut_short=stopped or bool(max_steps))
    logged = {key: value for entry in trainer.state.log_history for key, value in entry.items()}  # last of each
    report = {
        "loss": pref.loss, "trl_loss_type": losses["loss_type"], "reference": reference,
        "pairs": len(rows), "eval_pairs": len(eval_rows), "steps": result.global_step,
        "setup_seconds": setup_seconds, "train_seconds": seconds, "seconds_per_step": seconds / result.global_step,
        "tokens_per_second": trained / seconds,
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "train_loss": result.training_loss,
        "max_minutes": t.max_minutes, "stopped_at_budget": stopped,
        **{key: logged.get(key) for key in ("rewards/accuracies", "rewards/margins", "eval_loss",
                                            "eval_rewards/accuracies", "eval_rewards/margins")},
    }
    (out / "trl_report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
