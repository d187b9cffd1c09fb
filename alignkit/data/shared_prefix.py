"""Sequences that share a prompt, with the prompt computed once: one row per group.

The chosen and rejected replies of a preference pair follow the same prompt, so a padded batch of
[chosen, rejected] runs the prompt through the model twice. Here a group of sequences becomes one row

    [left padding | shared prefix (s tokens) | rest of sequence 1 | rest of sequence 2 | ... | padding]

where the shared prefix is the group's longest common prefix, cut at the first labelled token so that
every labelled token lies in its own sequence's segment. Position ids continue from the prefix in every
segment (each segment starts at position s), and the attention mask lets a token see the prefix and the
earlier tokens of its own segment only: each sequence's log-probabilities are exactly those it has
alone, and the prompt's keys and values are shared. Rows are left-padded so that every prefix ends at
the same column S; no labelled token is predicted from a column before S - 1, so the output layer needs
only the columns from S - 1 on (``logits_from``).

The labelled tokens are listed flat, N of them over the batch: ``target_row``, ``target_column`` (the
column, counted from ``logits_from``, whose logits predict the token), ``target_token`` and
``target_sequence`` (the sequence's index in the batch, groups in order, sequences in group order).
Per sequence, ``sequence_row`` and ``sequence_end`` give the row and column of its last token (where a
reward model with last-token pooling reads its reward); per labelled token, ``reply_row``, ``reply_column``
and ``reply_sequence`` give the row and column of the token itself and its sequence (what a reward model
with mean pooling averages over).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from alignkit.data.tokenize import TokenizedExample
from alignkit.tensors import IGNORE_INDEX


def shared_prefix_length(sequences: Sequence[TokenizedExample]) -> int:
    """Tokens at the start that every sequence has in common, up to the first labelled token of any."""
    limit = min(_first_label(s) for s in sequences)
    first = sequences[0].input_ids
    length = 0
    while length < limit and all(s.input_ids[length] == first[length] for s in sequences[1:]):
        length += 1
    return length


def _first_label(sequence: TokenizedExample) -> int:
    return next((t for t, label in enumerate(sequence.labels) if label != IGNORE_INDEX), len(sequence.labels))


def collate_shared_prefix(groups: list[Sequence[TokenizedExample]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Groups of sequences → ``input_ids``, ``position_ids`` (R, L), a boolean ``attention_mask``
    (R, 1, L, L; True where a query may attend to a key), ``logits_from`` and the flat targets (N,).

    A padding query attends to itself only, so no row of the mask is empty. The model takes the mask
    through :func:`alignkit.models.attention.model_attention_mask` (eager attention would add a boolean).
    """
    prefixes = [shared_prefix_length(group) for group in groups]
    rests = [sum(len(s.input_ids) - s_len for s in group) for group, s_len in zip(groups, prefixes, strict=True)]
    end_of_prefix = max(prefixes)
    first_kept = max(end_of_prefix - 1, 0)
    length = end_of_prefix + max(rests)
    rows = len(groups)
    input_ids = torch.full((rows, length), pad_token_id, dtype=torch.long)
    position_ids = torch.zeros((rows, length), dtype=torch.long)
    segment = torch.full((rows, length), -1, dtype=torch.long)  # -1 padding, 0 prefix, k + 1 sequence k
    targets: list[tuple[int, int, int, int]] = []
    ends: list[tuple[int, int]] = []
    replies: list[tuple[int, int, int]] = []
    sequence_index = 0
    for r, (group, s_len) in enumerate(zip(groups, prefixes, strict=True)):
        start = end_of_prefix - s_len
        input_ids[r, start:end_of_prefix] = torch.tensor(group[0].input_ids[:s_len], dtype=torch.long)
        position_ids[r, start:end_of_prefix] = torch.arange(s_len)
        segment[r, start:end_of_prefix] = 0
        column = end_of_prefix
        for k, sequence in enumerate(group):
            rest = sequence.input_ids[s_len:]
            input_ids[r, column:column + len(rest)] = torch.tensor(rest, dtype=torch.long)
            position_ids[r, column:column + len(rest)] = torch.arange(s_len, s_len + len(rest))
            segment[r, column:column + len(rest)] = k + 1
            for t in range(max(s_len, 1), len(sequence.labels)):
                if sequence.labels[t] != IGNORE_INDEX:
                    source = start + t - 1 if t - 1 < s_len else column + t - 1 - s_len
                    targets.append((r, source - first_kept, sequence.labels[t], sequence_index))
            replies += [(r, column + t - s_len, sequence_index) for t in range(s_len, len(sequence.labels))
                        if sequence.labels[t] != IGNORE_INDEX]
            column += len(rest)
            ends.append((r, column - 1 if rest else end_of_prefix - 1))
            sequence_index += 1
    target_row, target_column, target_token, target_sequence = (
        torch.tensor(values, dtype=torch.long) for values in zip(*targets, strict=True)
    ) if targets else (torch.zeros(0, dtype=torch.long) for _ in range(4))
    reply_row, reply_column, reply_sequence = (
        torch.tensor(values, dtype=torch.long) for values in zip(*replies, strict=True)
    ) if replies else (torch.zeros(0, dtype=torch.long) for _ in range(3))
    return {
        "input_ids": input_ids,
        "position_ids": position_ids,
        "attention_mask": _segment_mask(segment),
        "logits_from": torch.tensor(first_kept),
        "target_row": target_row,
        "target_column": target_column,
        "target_token": target_token,
        "target_sequence": target_sequence,
        "num_sequences": torch.tensor(sequence_index),
        "sequence_row": torch.tensor([row for row, _ in ends], dtype=torch.long),
        "sequence_end": torch.tensor([end for _, end in ends], dtype=torch.long),
        "reply_row": reply_row,
        "reply_column": reply_column,
        "reply_sequence": reply_sequence,
    }


def _segment_mask(segment: torch.Tensor) -> torch.Tensor:
    """(R, L) segment ids → (R, 1, L, L): causal, within the query's segment or the prefix, not padding."""
    length = segment.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    query, key = segment.unsqueeze(2), segment.unsqueeze(1)
    visible = causal & (key >= 0) & ((key == 0) | (key == query))
    padding_self = (query < 0) & torch.eye(length, dtype=torch.bool)
    return (visible | padding_self).unsqueeze(1)
