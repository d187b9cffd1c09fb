"""Preference rows: what the DPO family trains on.

A row holds the tokenised sequences of one prompt, each rendered with the chat template and labelled
on its final reply only; all sequences of a row lose the same number of oldest prompt tokens, so
they share one prompt (:func:`~alignkit.data.comparisons.tokenize_responses`):

- a *pair* row (DPO, cDPO, IPO, hinge, ORPO, SimPO): (chosen, rejected);
- a *KTO* row: the replies of one prompt, each flagged desirable or not (chosen and rejected of a
  pair, or the single reply of an unpaired record), followed by one *mismatched* sequence: this
  prompt with the first reply of the next record, from which KTO estimates KL(π_θ ‖ π_ref)
  (Ethayarajh et al. 2024, §4.1). The pairing is fixed by data order, so the reference model's
  log-probabilities of every sequence can be computed once and cached.

``reference_logps`` holds the reference model's summed log-probability of each sequence once it has
been precomputed (:mod:`alignkit.models.reference`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from alignkit.data.collate import collate
from alignkit.data.comparisons import tokenize_responses
from alignkit.data.prepare import tokenize_records
from alignkit.data.records import PreferencePair, UnpairedFeedback
from alignkit.data.shared_prefix import collate_shared_prefix
from alignkit.data.tokenize import TokenizedExample
from alignkit.errors import DataError


@dataclass
class PreferenceRow:
    sequences: tuple[TokenizedExample, ...]
    desirable: tuple[bool, ...] = ()  # KTO: one flag per reply; the last sequence (mismatched) has none
    reference_logps: tuple[float, ...] | None = None

    @property
    def replies(self) -> tuple[TokenizedExample, ...]:
        return self.sequences[: len(self.desirable)] if self.desirable else self.sequences

    @property
    def num_tokens(self) -> int:
        """Tokens of the sequences the policy trains on (a KTO row's mismatched sequence excluded)."""
        return sum(len(s.input_ids) for s in self.replies)


def pair_rows(records: list, tokenizer, max_length: int, *, label: str, on_error: str) -> list[PreferenceRow]:
    """``(PreferencePair, location)`` items → (chosen, rejected) rows."""

    def tokenize(pair: PreferencePair, where: str) -> PreferenceRow:
        texts = (pair.chosen, pair.rejected)
        return PreferenceRow(tuple(tokenize_responses(pair.prompt, texts, tokenizer, max_length, where)))

    return tokenize_records(records, label, tokenize, on_error=on_error)


def kto_rows(records: list, tokenizer, max_length: int, *, label: str, on_error: str) -> list[PreferenceRow]:
    """``(PreferencePair | UnpairedFeedback, location)`` items → KTO rows.

    A pair gives its chosen reply as desirable and its rejected reply as undesirable; an unpaired
    record gives its one reply. Record i's mismatched sequence is its prompt with the first reply of
    record i + 1 (the last wraps to the first). Raises DataError when fewer than two records remain
    or when the rows hold no desirable or no undesirable reply (KTO needs both).
    """
    if len(records) < 2:
        raise DataError(label, f"KTO needs at least 2 records to pair prompts with other replies, got {len(records)}")
    replies = [_replies(record) for record, _ in records]
    shifted = [((record, replies[(i + 1) % len(records)][0][0]), where) for i, (record, where) in enumerate(records)]

    def tokenize(item, where: str) -> PreferenceRow:
        record, other_reply = item
        texts, flags = zip(*_replies(record), strict=True)
        sequences = tokenize_responses(record.prompt, (*texts, other_reply), tokenizer, max_length, where)
        return PreferenceRow(tuple(sequences), desirable=tuple(flags))

    rows = tokenize_records(shifted, label, tokenize, on_error=on_error)
    flags = [flag for row in rows for flag in row.desirable]
    if all(flags) or not any(flags):
        missing = "undesirable" if all(flags) else "desirable"
        raise DataError(label, f"KTO needs desirable and undesirable replies; the {len(flags)} replies include "
                               f"no {missing} one")
    return rows


def _replies(record: PreferencePair | UnpairedFeedback) -> list[tuple[str, bool]]:
    if isinstance(record, PreferencePair):
        return [(record.chosen, True), (record.rejected, False)]
    return [(record.completion, record.desirable)]


def collate_pairs(
    rows: list[PreferenceRow], pad_token_id: int, *, share_prompt: bool = False
) -> dict[str, torch.Tensor]:
    """Pair rows → one batch of sequences [c_0, r_0, c_1, r_1, ...]: right-padded (input_ids,
    attention_mask, labels: (2P, T)), or with ``share_prompt`` one row per pair whose prompt is computed
    once (:mod:`alignkit.data.shared_prefix`); reference_logps (2P,) when precomputed; num_rows (pairs)
    and num_tokens (both sequences of every pair, the prompt counted twice)."""
    if share_prompt:
        batch = collate_shared_prefix([row.sequences for row in rows], pad_token_id)
    else:
        batch = collate([s for row in rows for s in row.sequences], pad_token_id)
    if rows[0].reference_logps is not None:
        batch["reference_logps"] = torch.tensor([v for row in rows for v in row.reference_logps], dtype=torch.float32)
    batch["num_rows"] = torch.tensor(len(rows))
    batch["num_tokens"] = torch.tensor(sum(row.num_tokens for row in rows))
    return batch


def collate_kto(rows: list[PreferenceRow], pad_token_id: int) -> dict[str, torch.Tensor]:
    """KTO rows → the replies as one batch (input_ids, attention_mask, labels (S, T); desirable,
    row_ids (S,)), the mismatched sequences as another (``mismatched_`` keys, (R, T')), the
    reference log-probs of both when precomputed, num_rows and num_tokens (replies only)."""
    batch = collate([s for row in rows for s in row.replies], pad_token_id)
    mismatched = collate([row.sequences[-1] for row in rows], pad_token_id)
    batch.update({f"mismatched_{key}": value for key, value in mismatched.items()})
    batch["desirable"] = torch.tensor([flag for row in rows for flag in row.desirable])
    batch["row_ids"] = torch.tensor([i for i, row in enumerate(rows) for _ in row.desirable])
    if rows[0].reference_logps is not None:
        batch["reference_logps"] = torch.tensor(
            [v for row in rows for v in row.reference_logps[:-1]], dtype=torch.float32)
        batch["mismatched_reference_logps"] = torch.tensor(
            [row.reference_logps[-1] for row in rows], dtype=torch.float32)
    batch["num_rows"] = torch.tensor(len(rows))
    batch["num_tokens"] = torch.tensor(sum(row.num_tokens for row in rows))
    return batch
