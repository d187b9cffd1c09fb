"""Comparison groups: what a reward model trains on.

A group is one prompt with K tokenised responses and the (better, worse) pairs among them. A
preference pair is a group with K = 2 and one pair; a ranking of K responses gives all pairs of
responses with different ranks (ties dropped and counted). Keeping a ranking's pairs together in
one batch element, each weighted 1/(number of pairs), follows InstructGPT (Ouyang et al. 2022):
shuffling the pairs of one prompt apart lets the model see each response many times per epoch
and overfits.
"""

import math
from dataclasses import dataclass

import torch

from alignkit.console import console
from alignkit.data.collate import collate
from alignkit.data.records import Demonstration, PreferencePair, Ranking, ranking_to_pairs
from alignkit.data.shared_prefix import collate_shared_prefix
from alignkit.data.tokenize import TokenizedExample, tokenize_demonstration
from alignkit.tensors import IGNORE_INDEX


@dataclass
class ComparisonGroup:
    sequences: list[TokenizedExample]
    pairs: list[tuple[int, int]]  # (better, worse) indices into sequences
    margins: list[float]  # NaN: no margin
    labels: list[float]  # NaN: no soft label (the pair's order is certain)
    dropped_ties: int = 0

    @property
    def num_tokens(self) -> int:
        return sum(len(s.input_ids) for s in self.sequences)


def tokenize_response(
    prompt, response: str, tokenizer, max_length: int, location: str, finished: bool = True
) -> TokenizedExample:
    """Prompt + assistant reply with the chat template; labels mark the reply (used by mean pooling).
    ``finished=False``: a reply cut before it ended, rendered without the end-of-turn token."""
    record = Demonstration(tuple(prompt) + ({"role": "assistant", "content": response},))
    return tokenize_demonstration(record, tokenizer, max_length=max_length, loss_on="last_assistant",
                                  location=location, finished=finished)


def tokenize_responses(prompt, responses, tokenizer, max_length: int, location: str) -> list[TokenizedExample]:
    """Several replies to one prompt, each as :func:`tokenize_response`, with the *same* prompt tokens.

    Left truncation cuts each sequence by its own excess; replies of different lengths would then be
    compared under different prompts. Here every sequence loses c = the largest excess, so all keep
    the same prompt suffix. (Each sequence is checked to fit on its own first; the prompt is shared,
    so a cut that leaves the longest one's final reply whole leaves every reply whole.)
    """
    sequences = [tokenize_response(prompt, text, tokenizer, max_length, location) for text in responses]
    cut = max(s.truncated_tokens for s in sequences)
    return [TokenizedExample(s.input_ids[cut - s.truncated_tokens:], s.labels[cut - s.truncated_tokens:], cut)
            for s in sequences]


def pair_group(pair: PreferencePair, tokenizer, max_length: int, location: str) -> ComparisonGroup:
    sequences = tokenize_responses(pair.prompt, (pair.chosen, pair.rejected), tokenizer, max_length, location)
    margin = math.nan if pair.margin is None else float(pair.margin)
    label = math.nan if pair.label is None else float(pair.label)
    return ComparisonGroup(sequences, [(0, 1)], [margin], [label])


def ranking_group(ranking: Ranking, tokenizer, max_length: int, location: str) -> ComparisonGroup:
    pairs, ties = ranking_to_pairs(ranking.ranks, location=location)
    sequences = tokenize_responses(ranking.prompt, ranking.responses, tokenizer, max_length, location)
    return ComparisonGroup(sequences, pairs, [math.nan] * len(pairs), [math.nan] * len(pairs), ties)


def drop_identical_pairs(records: list[tuple[PreferencePair, str]], label: str) -> list:
    """``(pair, location)`` items without the pairs whose chosen and rejected are the same text
    (they teach nothing); how many were dropped is printed."""
    kept = [(r, where) for r, where in records if r.chosen.strip() != r.rejected.strip()]
    if len(kept) < len(records):
        console.print(f"[yellow]{label}: skipped {len(records) - len(kept)} pairs with identical chosen and rejected")
    return kept


def collate_groups(
    groups: list[ComparisonGroup], pad_token_id: int, *, share_prompt: bool = False
) -> dict[str, torch.Tensor]:
    """All responses of all groups as one right-padded batch, and the pairs as indices into it.

    Returns input_ids, attention_mask, response_mask (B, T); better, worse, group_ids, margin,
    label (P,); num_rows (groups) and num_tokens (scalars). With ``share_prompt``, each group is one
    row whose prompt is computed once (:func:`~alignkit.data.shared_prefix.collate_shared_prefix`, no
    response_mask), the pairs indexing its sequences in the same order.
    """
    rows, better, worse, group_ids, margins, labels = [], [], [], [], [], []
    for g, group in enumerate(groups):
        offset = len(rows)
        rows += group.sequences
        for (b, w), margin, label in zip(group.pairs, group.margins, group.labels, strict=True):
            better.append(offset + b)
            worse.append(offset + w)
            group_ids.append(g)
            margins.append(margin)
            labels.append(label)
    if share_prompt:
        batch = collate_shared_prefix([group.sequences for group in groups], pad_token_id)
    else:
        batch = collate(rows, pad_token_id)
        batch["response_mask"] = batch.pop("labels") != IGNORE_INDEX
    batch.update(
        better=torch.tensor(better),
        worse=torch.tensor(worse),
        group_ids=torch.tensor(group_ids),
        margin=torch.tensor(margins, dtype=torch.float32),
        label=torch.tensor(labels, dtype=torch.float32),
        num_rows=torch.tensor(len(groups)),
        num_tokens=torch.tensor(sum(group.num_tokens for group in groups)),
    )
    return batch
