"""Supervised fine-tuning (stage 1 of RLHF): prompt-masked cross-entropy on demonstrations, the output
layer run on the response positions only."""

import torch

from alignkit.config import SFTConfig
from alignkit.data.collate import collate
from alignkit.data.packing import concatenate, pack_examples
from alignkit.data.prepare import load_split, tokenize_records
from alignkit.data.tokenize import tokenize_demonstration
from alignkit.losses.sft import next_token_targets, token_correct, token_nll
from alignkit.models.output_layer import logits_at
from alignkit.tensors import IGNORE_INDEX
from alignkit.train.engine import Engine, RunResult, StepOutput
from alignkit.train.run import load_stage_tokenizer, load_trainable_model, prepare_run_dir


class SFTStep:
    """A batch of tokenised demonstrations → summed NLL over response tokens (the loss unit)."""

    name = "sft"
    evaluate_at_start = True

    def __init__(self, pad_token_id: int, padding_free: bool = False):
        self.pad_token_id, self.padding_free = pad_token_id, padding_free

    def collate(self, rows):
        batch = collate([concatenate(rows)] if self.padding_free else rows, self.pad_token_id)
        batch["num_tokens"] = torch.tensor(sum(len(row.input_ids) for row in rows))
        return batch

    def count(self, batch) -> int:
        return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())

    def tokens(self, batch) -> int:
        return int(batch["num_tokens"])

    def loss(self, model, batch) -> StepOutput:
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
        rows, columns, targets = next_token_targets(batch["labels"])
        logits = logits_at(model, rows, columns, **inputs, use_cache=False)  # (N, V): response positions only
        return StepOutput(token_nll(logits, targets), {"token_accuracy": token_correct(logits, targets)})

    def exportable(self, model):
        return model


def run_sft(config: SFTConfig, *, resume: bool = False) -> RunResult:
    """Fine-tune ``config.model`` on ``config.data`` and write the run folder."""
    run_dir = prepare_run_dir(config, resume=resume)
    tokenizer = load_stage_tokenizer(config.model)
    train_records, eval_records = load_split(config.data, "demonstration", seed=config.train.seed)

    def prepare(records, label):
        examples = tokenize_records(
            records, label, lambda r, where: tokenize_demonstration(
                r, tokenizer, max_length=config.data.max_length, loss_on=config.data.loss_on, location=where
            ),
            on_error=config.data.on_error,
        )
        return pack_examples(examples, config.data.max_length) if config.data.packing else examples

    train_rows, eval_rows = prepare(train_records, "train"), prepare(eval_records, "eval")
    model = load_trainable_model(config.model, config.lora, config.train.seed)
    engine = Engine(model, tokenizer, SFTStep(tokenizer.pad_token_id, config.data.padding_free), config.train, run_dir)
    return engine.fit(train_rows, eval_rows, resume=resume, merge_lora=config.lora.merge_on_save)
