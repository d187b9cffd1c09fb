"""From a data config to the examples a stage trains on: load, split, tokenise, report.

Skipped records (``on_error: skip``) and truncated examples are counted and printed, never hidden.
"""

from collections.abc import Callable
from typing import Any

from alignkit.config import DataConfig
from alignkit.console import console
from alignkit.data.sources import load_records
from alignkit.data.split import holdout_split
from alignkit.errors import DataError


def load_split(data: DataConfig, kind: str, *, seed: int) -> tuple[list, list]:
    """Training and evaluation ``(record, location)`` pairs of ``kind``: ``data.eval`` if given, else
    a held-out split of ``data.train``; the records of ``data.extra_train`` follow the training ones."""
    loaded = _load(data.train, kind, data.on_error)
    if data.eval is not None:
        train, evaluation = loaded, _load(data.eval, kind, data.on_error)
    else:
        train, evaluation = holdout_split(loaded, data.eval_fraction, seed)
    train = train[data.skip_examples :][: data.max_examples]
    evaluation = evaluation[: data.max_eval_examples]
    console.print(f"data: {data.train}: {len(train)} training and {len(evaluation)} evaluation records")
    for source in data.extra_train:
        extra = _load(source, kind, data.on_error)
        console.print(f"data: {source}: {len(extra)} more training records")
        train = train + extra
    return train, evaluation


def _load(source: str, kind: str, on_error: str) -> list[tuple[Any, str]]:
    loaded = load_records(source, kind, on_error=on_error)
    _report_skipped(source, loaded.skipped)
    if loaded.dropped:
        reasons = sorted({reason for _, reason in loaded.dropped})
        console.print(f"{source}: dropped {len(loaded.dropped)} rows by the dataset's rules ({'; '.join(reasons)})")
    return list(zip(loaded.records, loaded.locations, strict=True))


def tokenize_records(
    records: list[tuple[Any, str]], label: str, tokenize: Callable[[Any, str], Any], *, on_error: str
) -> list:
    """Apply ``tokenize(record, location)`` to each ``(record, location)``; skip (and count) failures
    when asked. Each example may carry ``truncated_tokens``; how many were truncated is reported.
    """
    examples, skipped = [], []
    for record, where in records:
        try:
            examples.append(tokenize(record, where))
        except DataError as exc:
            if on_error == "raise":
                raise
            skipped.append((exc.location, exc.problem))
    _report_skipped(label, skipped)
    if records and not examples:
        raise DataError(label, f"none of the {len(records)} records is usable after tokenisation")
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
