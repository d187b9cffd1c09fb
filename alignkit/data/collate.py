"""Batching: right-pad token rows into tensors for the model."""

from __future__ import annotations

import torch

from alignkit.data.packing import PackedRow
from alignkit.data.tokenize import TokenizedExample
from alignkit.tensors import IGNORE_INDEX


def collate(rows: list[TokenizedExample | PackedRow], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad ``rows`` to the longest and stack them into ``(batch, length)`` long tensors.

    Always returns ``input_ids`` (padding = ``pad_token_id``) and ``labels`` (padding = ``IGNORE_INDEX``).
    For :class:`TokenizedExample` rows it adds ``attention_mask`` (1 on tokens, 0 on padding).
    For :class:`PackedRow` rows it adds ``position_ids`` and no ``attention_mask``: the model derives a
    block-diagonal mask from the restarting positions (see :mod:`alignkit.data.packing`). Padding gets
    positions 0, 1, 2, ... of its own, so it is one more segment that attends only to itself.
    """
    if not rows:
        raise ValueError("collate needs at least one row")
    packed = isinstance(rows[0], PackedRow)
    if any(isinstance(row, PackedRow) != packed for row in rows):
        raise ValueError("collate got a mix of PackedRow and TokenizedExample rows (expected one kind)")
    length = max(len(row.input_ids) for row in rows)
    input_ids = torch.full((len(rows), length), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row.input_ids)] = torch.tensor(row.input_ids, dtype=torch.long)
        labels[i, : len(row.labels)] = torch.tensor(row.labels, dtype=torch.long)
    batch = {"input_ids": input_ids, "labels": labels}
    if packed:
        positions = torch.arange(length).repeat(len(rows), 1)
        for i, row in enumerate(rows):
            n = len(row.position_ids)
            positions[i, :n] = torch.tensor(row.position_ids, dtype=torch.long)
            positions[i, n:] = torch.arange(length - n)
        batch["position_ids"] = positions
    else:
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rows):
            mask[i, : len(row.input_ids)] = 1
        batch["attention_mask"] = mask
    return batch


def collate_steps(sequences: list[list[int]], positions: list[list[int]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` and ``attention_mask`` of token ``sequences``, and the (``step_row``,
    ``step_column``) of every position of ``positions`` (per sequence, the steps a process reward model is
    read at), in order; ``num_tokens`` counts the real tokens."""
    batch = collate([TokenizedExample(ids, [IGNORE_INDEX] * len(ids)) for ids in sequences], pad_token_id)
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
            "step_row": torch.tensor([i for i, at in enumerate(positions) for _ in at], dtype=torch.long),
            "step_column": torch.tensor([column for at in positions for column in at], dtype=torch.long),
            "num_tokens": torch.tensor(sum(len(ids) for ids in sequences))}
