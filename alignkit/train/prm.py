"""``alignkit prm``: a process reward model from step-labelled solutions, on the one engine.

Each solution is rendered as a chat (the prompt, then its steps joined by ``data.separator`` as one
assistant reply) and the head is read at the last token of every labelled step
(:func:`~alignkit.data.tokenize.tokenize_steps`); the loss is the binary cross-entropy of each step's
label (:func:`~alignkit.losses.process.step_loss`), averaged over the labelled steps of an optimizer step.
Steps without a label (those after the first wrong one) are read by nothing; a solution without any
labelled step is an error (or skipped with ``data.on_error: skip``).
"""

from __future__ import annotations

import dataclasses

import torch

from alignkit.config import PRMConfig
from alignkit.data.collate import collate_steps
from alignkit.data.prepare import load_split, tokenize_records
from alignkit.data.records import StepSolution
from alignkit.data.tokenize import tokenize_steps
from alignkit.errors import DataError
from alignkit.losses.process import step_loss
from alignkit.models.process import load_process_reward_model, step_logits
from alignkit.train.engine import Engine, RunResult, StepOutput
from alignkit.train.run import load_stage_tokenizer, prepare_run_dir


@dataclasses.dataclass
class StepRow:
    """One tokenised solution: its token ids, and the position and label of each labelled step."""

    input_ids: list[int]
    positions: list[int]
    labels: list[float]
    truncated_tokens: int = 0


def step_row(record: StepSolution, tokenizer, max_length: int, separator: str, location: str) -> StepRow:
    """``record`` tokenised, keeping the steps that have a label."""
    if record.labels is None or all(label is None for label in record.labels):
        raise DataError(location, "no step labels (a process reward model learns from labelled steps)")
    tokens = tokenize_steps(record.prompt, record.steps, tokenizer, max_length=max_length, separator=separator,
                            location=location)
    kept = [(end, label) for end, label in zip(tokens.step_ends, record.labels, strict=True) if label is not None]
    return StepRow(tokens.input_ids, [end for end, _ in kept], [label for _, label in kept], tokens.truncated_tokens)


class PRMStep:
    """A batch of solutions → Σ over labelled steps of the step's cross-entropy (unit: a labelled step)."""

    name = "prm"
    evaluate_at_start = True

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def collate(self, rows: list[StepRow]) -> dict[str, torch.Tensor]:
        batch = collate_steps([r.input_ids for r in rows], [r.positions for r in rows], self.pad_token_id)
        batch["step_label"] = torch.tensor([y for r in rows for y in r.labels], dtype=torch.float32)
        return batch

    def count(self, batch) -> int:
        return int(batch["step_label"].numel())

    def tokens(self, batch) -> int:
        return int(batch["num_tokens"])

    def loss(self, model, batch) -> StepOutput:
        logits = step_logits(model, batch["input_ids"], batch["attention_mask"], batch["step_row"],
                             batch["step_column"])
        loss_sum, sums = step_loss(logits, batch["step_label"])
        return StepOutput(loss_sum, sums)

    def exportable(self, model):
        return model


def run_prm(config: PRMConfig, *, resume: bool = False) -> RunResult:
    """Train a process reward model on ``config.data`` and write the run folder."""
    run_dir = prepare_run_dir(config, resume=resume)
    tokenizer = load_stage_tokenizer(config.model)
    train_records, eval_records = load_split(config.data, "steps", seed=config.train.seed)

    def prepare(records, label):
        return tokenize_records(records, label, lambda r, where: step_row(
            r, tokenizer, config.data.max_length, config.data.separator, where), on_error=config.data.on_error)

    train_rows, eval_rows = prepare(train_records, "train"), prepare(eval_records, "eval")
    model = load_process_reward_model(config.model, config.lora, config.train.seed, config.data.separator)
    engine = Engine(model, tokenizer, PRMStep(tokenizer.pad_token_id), config.train, run_dir)
    return engine.fit(train_rows, eval_rows, resume=resume, merge_lora=config.lora.merge_on_save)
