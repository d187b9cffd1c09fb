"""From a data config to the examples a stage trains on: load, split, tokenise, report.

Skipped records (``on_error: skip``) and truncated examples are counted and printed, never hidden.
"""

from collections.abc import Callable
from typing import Any

from rich.console import Console

from alignkit.config import DataConfig
from alignkit.data.sources import load_records
from alignkit.data.split import holdout_split
from alignkit.errors import DataError

console = Console(stderr=True)


def load_split(data: DataConfig, kind: str, *, seed: int) -> tuple[list, list]:
    """Training and evaluation records of ``kind``: ``data.eval`` if given, else a held-out split."""
    loaded = load_records(data.train, kind, on_error=data.on_error)
    _report_skipped(data.train, loaded.skipped)
    if data.eval is not None:
        held = load_records(data.eval, kind, on_error=data.on_error)
        _report_skipped(data.eval, held.skipped)
        train, evaluation = loaded.records, held.records
    else:
        train, evaluation = holdout_split(loaded.records, data.eval_fraction, seed)
    if data.max_examples is not None:
        train = train[: data.max_examples]
    console.print(f"data: {data.train}: {len(train)} training and {len(evaluation)} evaluation records")
    return train, evaluation


def tokenize_records(
    records: list, label: str, tokenize: Callable[[Any, str], Any], *, on_error: str
) -> list:
    """Apply ``tokenize(record, location)`` to each record; skip (and count) failures when asked.

    Each example may carry ``truncated_tokens``; how many were truncated is reported.
    """
    examples, skipped = [], []
    for index, record in enumerate(records):
        where = f"{label} record {index}"
        try:
            examples.append(tokenize(record, where))
        except DataError as exc:
            if on_error == "raise":
                raise
            skipped.append((exc.location, exc.problem))
    _report_skipped(label, skipped)
    if not examples:
        raise DataError(label, "no usable examples after tokenisation")
    truncated = [e.truncated_tokens for e in examples if getattr(e, "truncated_tokens", 0)]
    if truncated:
        console.print(
            f"[yellow]{label}: {len(truncated)} of {len(examples)} examples truncated "
            f"({sum(truncated)} prompt tokens cut from the left)"
        )
    return examples


def _report_skipped(source: str, skipped: list[tuple[str, str]]) -> None:
    if not skipped:
        return
    console.print(f"[yellow]{source}: skipped {len(skipped)} bad records, e.g.")
    for location, reason in skipped[:3]:
        console.print(f"  {location}: {reason}")
