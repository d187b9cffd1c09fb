"""What both ``alignkit cai`` commands do around their work: the output folder and its config, the
records to work on, the seeds of each sampling call, progress, and writing JSON lines atomically."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import yaml

from alignkit.config import DataConfig, to_dict
from alignkit.console import progress
from alignkit.data.prepare import load_split
from alignkit.feedback.backends import build_backend
from alignkit.feedback.config import FeedbackDataConfig
from alignkit.io import atomic_write_text


def prepare_output(config) -> Path:
    """``config.output_dir``, created, with the resolved ``config.yaml`` written into it."""
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False))
    return out


def feedback_records(data: FeedbackDataConfig, kind: str, seed: int) -> list[tuple[object, str]]:
    """``(record, location)`` of ``kind`` from the training split of ``data.train`` (the split alignkit rm/dpo
    make with the same seed and eval_fraction), after ``skip_examples`` and ``max_examples``."""
    config = DataConfig(train=data.train, eval_fraction=data.eval_fraction, skip_examples=data.skip_examples,
                        max_examples=data.max_examples, on_error=data.on_error)
    train, _ = load_split(config, kind, seed=seed)
    return train


def call_seed(base: int, *parts: object) -> int:
    """A sampling seed for one call, derived from ``base`` and the call's place (chunk, step): the same
    everywhere (CRC-32 of the text, not Python's salted hash)."""
    return zlib.crc32(":".join(map(str, (base, *parts))).encode()) & 0x7FFFFFFF


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """``rows`` as JSON lines at ``path``, atomically."""
    return atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


@contextmanager
def open_backend(config, out: Path, backend=None) -> Iterator:
    """``backend`` when given (the caller keeps it), else the one ``config.feedback`` names, closed on exit."""
    if backend is not None:
        yield backend
        return
    backend = build_backend(config.feedback, out)
    try:
        yield backend
    finally:
        if hasattr(backend, "close"):
            backend.close()


def in_chunks(description: str, items: Sequence, size: int, work: Callable[[int, Sequence], list]) -> list:
    """``work(first_index, chunk)`` over consecutive chunks of ``size`` items, results concatenated, with a
    progress bar."""
    results: list = []
    with progress(description, len(items)) as advance:
        for first in range(0, len(items), size):
            chunk = items[first : first + size]
            results += work(first, chunk)
            advance(len(chunk))
    return results


def backend_stats(backend) -> dict:
    """Request counts of an HTTP backend (requests sent, cache hits, retries); empty for a local model."""
    return {name: getattr(backend, name) for name in ("requests", "cache_hits", "retries") if hasattr(backend, name)}
