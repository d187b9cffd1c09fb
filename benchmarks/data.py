"""The tokens every benchmark trains on, made by alignkit's tokeniser and handed to TRL pre-tokenised.

Both toolkits see the same records: the first ``BATCH`` usable records of the real data (Alpaca seed
tasks, HH-RLHF harmless pairs, GSM8K questions from ``../shared/data``), in file order, no held-out
split. :class:`Inputs` holds the data section (the stage's own class) that makes an alignkit stage read
exactly those records (``max_examples`` counts the skipped ones before them) and TRL's rows of the
same token ids. Since a step takes ``BATCH`` rows, every step of a run trains on the same batch.

Also here, because ``benchmarks/dpo_trl.py`` and ``rm_trl.py`` share them: alignkit pairs as rows of TRL's
``DPOTrainer`` (:func:`to_row`, :func:`tokenize_pairs`) and ``RewardTrainer`` (:func:`reward_rows`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from alignkit.config import ComparisonDataConfig, DataConfig, RLDataConfig, SFTDataConfig
from alignkit.data.comparisons import drop_identical_pairs, pair_group
from alignkit.data.prepare import load_split, tokenize_records
from alignkit.data.tokenize import tokenize_demonstration
from alignkit.errors import DataError
from alignkit.rl.generation import prompt_token_rows
from alignkit.tensors import IGNORE_INDEX
from benchmarks.spec import BATCH, MAX_LENGTH, RL_NEW_TOKENS, RL_PROMPTS, SEED

SOURCES = {"sft": "alpaca-seed", "rm": "hh-rlhf-harmless", "dpo": "hh-rlhf-harmless", "grpo": "gsm8k",
           "ppo": "gsm8k"}


@dataclass
class Inputs:
    data: DataConfig  # what the alignkit stage reads
    rows: list[dict]  # TRL's pre-tokenised rows of the same records
    tokens: int | None  # non-pad tokens of the sequences alignkit trains on per step (None for RL: sampled)


def bench_reward(prompts, completions, **_) -> list[float]:
    """The RL workloads' reward: distinct words in a completion. Cheap, and it varies within a group, so
    GRPO's advantages are not all zero. alignkit passes Completion objects, TRL passes strings."""
    return [float(len(set(getattr(c, "text", c).split()))) for c in completions]


def stage_data(stage: str, max_examples: int | None) -> DataConfig:
    """The data section of ``stage``'s config (RL's prompts are cut by generation.max_prompt_length instead)."""
    common = {"train": SOURCES[stage], "eval_fraction": 0.0, "max_examples": max_examples, "on_error": "skip"}
    if stage in ("grpo", "ppo"):
        return RLDataConfig(**common)
    data_config = SFTDataConfig if stage == "sft" else ComparisonDataConfig
    return data_config(**common, max_length=MAX_LENGTH)


def inputs(stage: str, tokenizer) -> Inputs:
    """The records and TRL rows of ``stage`` (sft, rm, dpo, grpo or ppo)."""
    if stage == "sft":
        return _sft_inputs(tokenizer)
    if stage in ("rm", "dpo"):
        return _pair_inputs(stage, tokenizer)
    return _prompt_inputs(stage, tokenizer)


def _first_usable(stage: str, kind: str, make: Callable) -> tuple[int, list]:
    """``BATCH`` items ``make(record, where)`` gives for the first records of ``stage``'s data that it does not
    refuse (None or DataError, as the stage skips them), and how many records that took."""
    records, _ = load_split(stage_data(stage, None), kind, seed=SEED)
    items = []
    for seen, (record, where) in enumerate(records, start=1):
        try:
            item = make(record, where)
        except DataError:
            continue
        if item is not None:
            items.append(item)
        if len(items) == BATCH:
            return seen, items
    raise SystemExit(f"{SOURCES[stage]}: fewer than {BATCH} usable records of at most {MAX_LENGTH} tokens")


def _sft_inputs(tokenizer) -> Inputs:
    count, examples = _first_usable("sft", "demonstration", lambda r, where: tokenize_demonstration(
        r, tokenizer, max_length=MAX_LENGTH, location=where))
    rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    return Inputs(stage_data("sft", count), rows, sum(len(e.input_ids) for e in examples))


def _pair_inputs(stage: str, tokenizer) -> Inputs:
    def make(pair, where):
        if pair.chosen.strip() == pair.rejected.strip():  # dropped by the stage (drop_identical_pairs)
            return None
        return pair_group(pair, tokenizer, MAX_LENGTH, where)

    count, groups = _first_usable(stage, "preference", make)
    if stage == "rm":
        rows = reward_rows(groups)
    else:
        rows = [to_row(g) for g in groups]
        if None in rows:
            raise SystemExit("a benchmark pair's chosen and rejected do not share their prompt tokens")
    return Inputs(stage_data(stage, count), rows, sum(g.num_tokens for g in groups))


def _prompt_inputs(stage: str, tokenizer) -> Inputs:
    data = stage_data(stage, RL_PROMPTS)
    records, _ = load_split(data, "prompt", seed=SEED)
    ids = prompt_token_rows([p.prompt for p, _ in records], tokenizer, MAX_LENGTH - RL_NEW_TOKENS)
    # TRL's dataset holds a text key per prompt; the trainer maps it back to these ids (no re-tokenising).
    rows = [{"prompt": f"[{i}] " + tokenizer.decode(row), "prompt_ids": row} for i, row in enumerate(ids)]
    return Inputs(data, rows, None)


def reward_rows(groups) -> list[dict]:
    """Rows of TRL's ``RewardTrainer`` (``chosen_ids``/``rejected_ids``) for alignkit pair groups."""
    return [{"chosen_ids": g.sequences[0].input_ids, "rejected_ids": g.sequences[1].input_ids} for g in groups]


def to_row(group) -> dict | None:
    """TRL's row for one alignkit pair (None if chosen and rejected differ in their prompt tokens): the prompt
    is what precedes the first labelled token; the completion ends with the last one (the end-of-turn), since
    alignkit does not score the newline after it, and TRL scores all completion tokens (IPO divides by their number).
    """
    parts = []
    for seq in group.sequences:
        labelled = [i for i, label in enumerate(seq.labels) if label != IGNORE_INDEX]
        start, end = labelled[0], labelled[-1] + 1
        if len(labelled) != end - start:
            raise SystemExit("a reply's labelled tokens are not contiguous; TRL's completion mask cannot express that")
        parts.append((seq.input_ids[:start], seq.input_ids[start:end]))
    (prompt, chosen), (rejected_prompt, rejected) = parts
    return {"prompt_ids": prompt, "chosen_ids": chosen, "rejected_ids": rejected} if prompt == rejected_prompt else None


def tokenize_pairs(records, label, tokenizer, config) -> tuple[list[dict], int]:
    """TRL rows of ``records`` tokenised as alignkit does, and their tokens (chosen + rejected, as alignkit counts)."""
    tokenize = lambda r, where: (where, pair_group(r, tokenizer, config.data.max_length, where))  # noqa: E731
    items = tokenize_records(drop_identical_pairs(records, label), label, tokenize, on_error=config.data.on_error)
    rows = [to_row(group) for _, group in items]
    bad = [where for (where, _), row in zip(items, rows, strict=True) if row is None]
    if bad:
        raise SystemExit(
            f"{label}: in {len(bad)} of {len(items)} pairs chosen and rejected do not share their prompt tokens "
            f"(left truncation cut them differently), e.g. {', '.join(bad[:3])}; TRL needs one prompt per pair"
        )
    return rows, sum(group.num_tokens for _, group in items)
