"""Adapters for published sets of human preferences beyond HH-RLHF: PandaLM, Open Assistant, Auto-J.

Each turns one raw row of the set, as published, into typed records (:mod:`alignkit.data.records`);
:mod:`alignkit.data.sources` registers them under short names. Comparisons the raters called a tie
give no pair: the row is dropped and counted (:class:`~alignkit.errors.RowDropped`), never silently.

- PandaLM test set (Wang et al. 2023): three annotators per comparison, each ``1`` (response1 better),
  ``2`` (response2 better) or ``0`` (tie). The pair follows the majority (two or three agreeing votes;
  a majority of ties is dropped); its soft ``label`` is the share of the three votes for the chosen
  reply, a tie vote counting half (``(2 + ½) / 3`` for ``1, 1, 0``).
- Open Assistant ranked replies (Köpf et al. 2023): trees of messages; the assistant replies to one
  prompter message carry ``rank`` 0 (best), 1, ...; the prompt is the whole thread from the root down to
  that prompter message. Unranked (``null``) and deleted replies are left out; a group needs two replies.
- Auto-J pairwise test set (Li et al. 2023): one label per comparison, ``0`` (response 1 preferred),
  ``1`` (response 2 preferred) or ``2`` (tie).
"""

from __future__ import annotations

from alignkit.data.records import RECORD_TYPES, ranking_to_pairs, typed_field
from alignkit.errors import DataError, RowDropped

PANDALM_VOTES = ("annotator1", "annotator2", "annotator3")


# ---------------------------------------------------------------- PandaLM


def pandalm_preferences(row: dict, location: str) -> list:
    """One pair from a PandaLM comparison: the majority's reply is chosen (module doc)."""
    votes = [typed_field(row, name, int, location, "0 (tie), 1 or 2") for name in PANDALM_VOTES]
    if any(v not in (0, 1, 2) for v in votes):
        raise DataError(location, f"annotator labels must be 0 (tie), 1 or 2, got {votes}")
    instruction = typed_field(row, "instruction", str, location, "a string")
    given = row.get("input") or ""
    if not isinstance(given, str):
        raise DataError(location, f"field 'input' must be a string, got {given!r:.60}")
    prompt = f"{instruction}\n\n{given}" if given.strip() else instruction
    replies = {1: typed_field(row, "response1", str, location, "a string"),
               2: typed_field(row, "response2", str, location, "a string")}
    majority = max((0, 1, 2), key=votes.count)
    if votes.count(majority) < 2:
        raise DataError(location, f"annotator labels {votes} have no majority (expected two of three to agree)")
    if majority == 0:
        raise RowDropped(location, "the annotators' majority is a tie")
    winner = majority
    share = (votes.count(winner) + 0.5 * votes.count(0)) / len(votes)
    row_out = {"prompt": prompt, "chosen": replies[winner], "rejected": replies[3 - winner],
               "label": share}
    return [RECORD_TYPES["preference"].from_row(row_out, location)]


# ---------------------------------------------------------------- Open Assistant

_OASST_ROLES = {"prompter": "user", "assistant": "assistant"}


def oasst_rankings(row: dict, location: str) -> list:
    """Every ranked group of assistant replies in one conversation tree, as rankings (module doc)."""
    rankings: list = []
    _walk_oasst(row, (), location, rankings)
    if not rankings:
        raise RowDropped(location, "the tree has no prompter message with two ranked replies")
    return rankings


def oasst_preferences(row: dict, location: str) -> list:
    """The rankings of :func:`oasst_rankings` as all pairs of distinct ranks (InstructGPT's K-choose-2)."""
    pairs = []
    for ranking in oasst_rankings(row, location):
        for better, worse in ranking_to_pairs(ranking.ranks, location)[0]:
            row_out = {"prompt": list(ranking.prompt), "chosen": ranking.responses[better],
                       "rejected": ranking.responses[worse]}
            pairs.append(RECORD_TYPES["preference"].from_row(row_out, location))
    return pairs


def _walk_oasst(message: dict, thread: tuple, location: str, out: list) -> None:
    role = message.get("role")
    if role not in _OASST_ROLES:
        raise DataError(location, f"message {message.get('message_id')!r} has role {role!r} "
                        "(expected 'prompter' or 'assistant')")
    text = typed_field(message, "text", str, location, "a string")
    thread = (*thread, {"role": _OASST_ROLES[role], "content": text})
    replies = message.get("replies") or []
    if not isinstance(replies, list):
        raise DataError(location, f"'replies' of message {message.get('message_id')!r} must be a list")
    if role == "prompter":
        ranked = [r for r in replies if r.get("rank") is not None and not r.get("deleted")]
        if len(ranked) >= 2:
            order = sorted(ranked, key=lambda r: r["rank"])
            row_out = {"prompt": list(thread), "responses": [r["text"] for r in order],
                       "ranks": list(range(1, len(order) + 1))}
            out.append(RECORD_TYPES["ranking"].from_row(row_out, location))
    for reply in replies:
        _walk_oasst(reply, thread, location, out)


# ---------------------------------------------------------------- Auto-J


def autoj_preferences(row: dict, location: str) -> list:
    """One pair from an Auto-J comparison (module doc); label 2, a tie, is dropped."""
    label = typed_field(row, "label", int, location, "0, 1 or 2")
    if label not in (0, 1, 2):
        raise DataError(location, f"field 'label' must be 0 (response 1), 1 (response 2) or 2 (tie), got {label}")
    if label == 2:
        raise RowDropped(location, "the label is a tie")
    first = typed_field(row, "response 1", str, location, "a string")
    second = typed_field(row, "response 2", str, location, "a string")
    chosen, rejected = (first, second) if label == 0 else (second, first)
    row_out = {"prompt": typed_field(row, "prompt", str, location, "a string"), "chosen": chosen, "rejected": rejected}
    return [RECORD_TYPES["preference"].from_row(row_out, location)]
