"""Packing: several tokenised examples per row, with no attention across their boundaries.

Why position ids are enough (transformers 5): when a model is called with ``attention_mask=None``,
``position_ids`` and no cache, ``transformers.masking_utils._preprocess_mask_arguments`` passes the
position ids to ``find_packed_sequence_indices``, which starts a new sequence wherever a position does
not follow the previous one by exactly 1. ``create_causal_mask`` then ANDs the causal mask with "same
sequence" (``packed_sequence_mask_function``), giving a block-diagonal causal mask, and rotary
embeddings see each example's own positions 0, 1, 2, ... So a packed row computes exactly what the
examples would compute one at a time.

Call the model with ``use_cache=False``: the cache default comes from ``config.use_cache`` (true for
most causal LMs), and when a cache is created the packed-sequence check is skipped, which silently
falls back to one causal mask over the whole row (attention leaks across examples).

The first label of every packed example is set to ``IGNORE_INDEX``: that token is never predicted when
the example stands alone, and in a row the position before it belongs to the previous example.
"""

from __future__ import annotations

import dataclasses

from alignkit.data.tokenize import TokenizedExample
from alignkit.errors import DataError
from alignkit.tensors import IGNORE_INDEX


@dataclasses.dataclass
class PackedRow:
    """Examples laid end to end; ``position_ids`` restart at 0 at the start of each example."""

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]


def pack_examples(examples: list[TokenizedExample], max_length: int) -> list[PackedRow]:
    """Pack ``examples`` in order into rows of at most ``max_length`` tokens.

    Greedy and order-preserving: an example goes into the current row if it fits, else it starts a new
    row. An empty example, or one longer than ``max_length``, raises DataError (truncate when tokenising).
    """
    rows: list[PackedRow] = []
    current = PackedRow([], [], [])
    for index, example in enumerate(examples):
        size = len(example.input_ids)
        if not 0 < size <= max_length:
            raise DataError(
                f"example {index}", f"is {size} tokens (expected 1 to the packing max_length, {max_length})"
            )
        if current.input_ids and len(current.input_ids) + size > max_length:
            rows.append(current)
            current = PackedRow([], [], [])
        _append(current, example)
    if current.input_ids:
        rows.append(current)
    return rows


def concatenate(rows: list[TokenizedExample | PackedRow]) -> PackedRow:
    """``rows`` end to end as one packed row (padding-free batching): each example keeps its own
    positions 0, 1, 2, ..., and a packed row its own segments."""
    joined = PackedRow([], [], [])
    for row in rows:
        if isinstance(row, PackedRow):
            joined.input_ids.extend(row.input_ids)
            joined.labels.extend(row.labels)
            joined.position_ids.extend(row.position_ids)
        else:
            _append(joined, row)
    return joined


def _append(row: PackedRow, example: TokenizedExample) -> None:
    row.input_ids.extend(example.input_ids)
    row.labels.extend([IGNORE_INDEX, *example.labels[1:]])
    row.position_ids.extend(range(len(example.input_ids)))
