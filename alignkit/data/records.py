"""Typed records: one frozen dataclass per kind of training data.

Every stage of the pipeline consumes one of these kinds:

- :class:`Demonstration` (SFT): a chat that ends with the assistant reply to imitate;
- :class:`PreferencePair` (reward model, DPO family): a prompt with a chosen and a rejected reply;
- :class:`Ranking` (reward model from K-wise comparisons): a prompt with K ranked replies;
- :class:`UnpairedFeedback` (KTO): a prompt with one reply marked desirable or not;
- :class:`StepSolution` (process reward models, verifiable maths): a prompt with a step-by-step answer;
- :class:`Prompt` (RL): a prompt to sample replies to, with an optional reference answer for a checker.

Each class builds itself from a plain row (a dict read from JSON, parquet or a ``datasets`` table) with
``from_row(row, location)``. ``location`` names where the row came from (``"data.jsonl:17"``,
``"dataset[row 17]"``); every problem raises :class:`~alignkit.errors.DataError` with that location and
what was expected. Texts are kept exactly as given; a text that is empty after stripping is an error.

A chat message is a dict ``{"role": "system" | "user" | "assistant", "content": str}``; other keys of
a message are dropped. A prompt is a tuple of messages (the conversation before the reply).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from alignkit.errors import DataError

ROLES = ("system", "user", "assistant")


# ---------------------------------------------------------------- field checks


def _field(row: dict, name: str, location: str, expected: str) -> Any:
    """``row[name]``; a missing field raises DataError that says which fields the row form needs."""
    if name not in row or row[name] is None:
        raise DataError(location, f"missing field '{name}' (expected {expected})")
    return row[name]


def typed_field(row: dict, name: str, kinds: type | tuple, location: str, expected: str) -> Any:
    """``row[name]`` when it is of ``kinds`` (never a bool, unless ``kinds`` is bool); otherwise DataError saying
    what was ``expected``. For the adapters of published sets, whose fields have fixed types."""
    value = row.get(name)
    if not isinstance(value, kinds) or (isinstance(value, bool) and kinds is not bool):
        raise DataError(location, f"field '{name}' must be {expected}, got {value!r:.60}")
    return value


def _text(value: Any, what: str, location: str) -> str:
    """A non-blank string, returned unchanged."""
    if not isinstance(value, str):
        raise DataError(location, f"{what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise DataError(location, f"{what} is empty (expected non-blank text)")
    return value


def _texts(value: Any, what: str, location: str) -> tuple[str, ...]:
    """A list of non-blank strings."""
    if not isinstance(value, (list, tuple)):
        raise DataError(location, f"{what} must be a list of strings, got {type(value).__name__}")
    return tuple(_text(item, f"{what}[{i}]", location) for i, item in enumerate(value))


def _number(value: Any, what: str, location: str) -> float:
    """A finite int or float (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(location, f"{what} must be a finite number, got {value!r}")
    return float(value)


def as_messages(value: Any, location: str, what: str = "prompt") -> tuple[dict, ...]:
    """Chat messages from a string (one user message) or a list of ``{"role", "content"}`` dicts.

    Each message must have a role in :data:`ROLES` and non-blank string content; the result holds
    only those two keys. An empty list is an error.
    """
    if isinstance(value, str):
        return ({"role": "user", "content": _text(value, what, location)},)
    if not isinstance(value, (list, tuple)):
        raise DataError(
            location, f"{what} must be a string or a list of messages, got {type(value).__name__}"
        )
    if not value:
        raise DataError(location, f"{what} is an empty list (expected at least one message)")
    messages = []
    for i, message in enumerate(value):
        where = f"{what}[{i}]"
        if not isinstance(message, dict):
            raise DataError(
                location, f"{where} must be a message {{'role': ..., 'content': ...}}, got {message!r:.60}"
            )
        role = message.get("role")
        if role not in ROLES:
            raise DataError(location, f"{where} has role {role!r} (expected one of {', '.join(ROLES)})")
        if "content" not in message:
            raise DataError(location, f"{where} has no 'content' (expected a string)")
        messages.append({"role": role, "content": _text(message["content"], f"{where} content", location)})
    return tuple(messages)


# ---------------------------------------------------------------- record kinds


@dataclasses.dataclass(frozen=True)
class Demonstration:
    """A chat to imitate; it contains at least one assistant message and ends with one.

    Row forms: ``{"messages": [...]}``, or ``{"prompt": str | messages, "response": str}`` with an
    optional ``"system"`` string placed first.
    """

    messages: tuple[dict, ...]

    @classmethod
    def from_row(cls, row: dict, location: str) -> Demonstration:
        if "messages" in row:
            messages = as_messages(row["messages"], location, "messages")
        else:
            expected = "'prompt' and 'response', or 'messages'"
            prompt = as_messages(_field(row, "prompt", location, expected), location)
            response = _text(_field(row, "response", location, expected), "response", location)
            system = row.get("system")
            if system is not None:
                if prompt[0]["role"] == "system":
                    raise DataError(location, "both 'system' and a system message in 'prompt' (expected one)")
                prompt = ({"role": "system", "content": _text(system, "system", location)},) + prompt
            messages = prompt + ({"role": "assistant", "content": response},)
        if messages[-1]["role"] != "assistant":
            raise DataError(
                location,
                f"messages end with a {messages[-1]['role']} message (expected an assistant reply last)",
            )
        return cls(messages=messages)


@dataclasses.dataclass(frozen=True)
class PreferencePair:
    """A prompt and two replies, ``chosen`` judged better than ``rejected``.

    ``margin`` (optional): how much better, in the rater's units (used by margin losses).
    ``label`` (optional): probability in [0, 1] that ``chosen`` is better (a soft label).
    Identical ``chosen`` and ``rejected`` texts are allowed (real data has a few).

    Row forms: ``{"prompt": str | messages, "chosen": str, "rejected": str}`` with optional ``"margin"``
    and ``"label"``; or, as in many chat preference sets, ``"chosen"`` and ``"rejected"`` given as full
    conversations (lists of messages) that end with the assistant reply. Then ``"prompt"`` may be left
    out and is the shared conversation before the reply, which must be the same in both.
    """

    prompt: tuple[dict, ...]
    chosen: str
    rejected: str
    margin: float | None = None
    label: float | None = None

    @classmethod
    def from_row(cls, row: dict, location: str) -> PreferencePair:
        expected = "'prompt', 'chosen' and 'rejected'"
        chosen = _field(row, "chosen", location, expected)
        rejected = _field(row, "rejected", location, expected)
        if isinstance(chosen, (list, tuple)) and isinstance(rejected, (list, tuple)):
            prompt, chosen, rejected = _split_conversations(row, chosen, rejected, location)
        else:
            prompt = as_messages(_field(row, "prompt", location, expected), location)
            chosen = _text(chosen, "chosen", location)
            rejected = _text(rejected, "rejected", location)
        margin = row.get("margin")
        label = row.get("label")
        if margin is not None:
            margin = _number(margin, "margin", location)
        if label is not None:
            label = _number(label, "label", location)
            if not 0.0 <= label <= 1.0:
                raise DataError(location, f"label must be a probability in [0, 1], got {label}")
        return cls(prompt=prompt, chosen=chosen, rejected=rejected, margin=margin, label=label)


def _split_conversations(row: dict, chosen: Any, rejected: Any, location: str) -> tuple:
    """(prompt, chosen reply, rejected reply) from two full conversations ending with the replies."""
    chosen_msgs = as_messages(chosen, location, "chosen")
    rejected_msgs = as_messages(rejected, location, "rejected")
    for what, msgs in (("chosen", chosen_msgs), ("rejected", rejected_msgs)):
        if msgs[-1]["role"] != "assistant":
            raise DataError(location, f"{what} conversation must end with an assistant message")
    if row.get("prompt") is not None:
        prompt = as_messages(row["prompt"], location)
        if chosen_msgs[:-1] not in ((), prompt) or rejected_msgs[:-1] not in ((), prompt):
            raise DataError(location, "chosen/rejected conversations do not start with 'prompt'")
    else:
        prompt = chosen_msgs[:-1]
        if not prompt or rejected_msgs[:-1] != prompt:
            raise DataError(
                location,
                "without 'prompt', chosen and rejected must be conversations that share every message "
                "but the last assistant reply",
            )
    return prompt, chosen_msgs[-1]["content"], rejected_msgs[-1]["content"]


@dataclasses.dataclass(frozen=True)
class Ranking:
    """A prompt and K >= 2 replies with ranks: 1 is best, equal ranks are ties.

    Row form: ``{"prompt": str | messages, "responses": [str, ...], "ranks": [int, ...]}``.
    """

    prompt: tuple[dict, ...]
    responses: tuple[str, ...]
    ranks: tuple[int, ...]

    @classmethod
    def from_row(cls, row: dict, location: str) -> Ranking:
        expected = "'prompt', 'responses' and 'ranks'"
        prompt = as_messages(_field(row, "prompt", location, expected), location)
        responses = _texts(_field(row, "responses", location, expected), "responses", location)
        ranks = _field(row, "ranks", location, expected)
        if len(responses) < 2:
            raise DataError(location, f"responses has {len(responses)} item(s) (expected at least 2)")
        if not isinstance(ranks, (list, tuple)) or any(
            isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in ranks
        ):
            raise DataError(location, f"ranks must be a list of integers >= 1 (1 = best), got {ranks!r:.80}")
        if len(ranks) != len(responses):
            raise DataError(
                location, f"{len(ranks)} ranks for {len(responses)} responses (expected one each)"
            )
        return cls(prompt=prompt, responses=responses, ranks=tuple(ranks))


@dataclasses.dataclass(frozen=True)
class UnpairedFeedback:
    """A prompt and one completion marked desirable (thumbs up) or not.

    Row form: ``{"prompt": str | messages, "completion": str, "desirable": bool}``; ``"label"`` (bool)
    is accepted in place of ``"desirable"``, as in TRL's unpaired-preference datasets.
    """

    prompt: tuple[dict, ...]
    completion: str
    desirable: bool

    @classmethod
    def from_row(cls, row: dict, location: str) -> UnpairedFeedback:
        expected = "'prompt', 'completion' and 'desirable' (or 'label')"
        prompt = as_messages(_field(row, "prompt", location, expected), location)
        completion = _text(_field(row, "completion", location, expected), "completion", location)
        key = "label" if "label" in row and "desirable" not in row else "desirable"
        desirable = _field(row, key, location, expected)
        if not isinstance(desirable, bool):
            raise DataError(location, f"{key} must be true or false, got {desirable!r}")
        return cls(prompt=prompt, completion=completion, desirable=desirable)


@dataclasses.dataclass(frozen=True)
class StepSolution:
    """A prompt and a step-by-step solution.

    ``labels`` (optional): one per step: 1 a right step, 0 a wrong one, a number in between a soft label
    (the share of rollouts from that step that reach the right answer), None a step nobody labelled (those
    after the first wrong step, where a labeller stops); booleans are accepted.
    ``answer`` (optional): the final answer, for checking against a reference.

    Row form: ``{"prompt": str | messages, "steps": [str, ...], "labels": [1, 0, null, ...], "answer": str}``;
    the public forms of step labels read as this one through :mod:`alignkit.data.step_labels`.
    """

    prompt: tuple[dict, ...]
    steps: tuple[str, ...]
    labels: tuple[float | None, ...] | None = None
    answer: str | None = None

    @classmethod
    def from_row(cls, row: dict, location: str) -> StepSolution:
        expected = "'prompt' and 'steps'"
        prompt = as_messages(_field(row, "prompt", location, expected), location)
        steps = _texts(_field(row, "steps", location, expected), "steps", location)
        if not steps:
            raise DataError(location, "steps is an empty list (expected at least one step)")
        labels = row.get("labels")
        if labels is not None:
            if not isinstance(labels, (list, tuple)) or not all(_is_step_label(label) for label in labels):
                raise DataError(location, f"labels must be a list of one label per step, each a number from 0 (wrong) "
                                          f"to 1 (right), true/false or null (not labelled), got {labels!r:.80}")
            if len(labels) != len(steps):
                raise DataError(location, f"{len(labels)} labels for {len(steps)} steps (expected one each)")
            labels = tuple(None if label is None else float(label) for label in labels)
        answer = row.get("answer")
        if answer is not None:
            answer = _text(answer, "answer", location)
        return cls(prompt=prompt, steps=steps, labels=labels, answer=answer)


def _is_step_label(label: Any) -> bool:
    """None, a bool, or a number from 0 to 1."""
    return label is None or isinstance(label, bool) or (isinstance(label, (int, float)) and 0 <= label <= 1)


@dataclasses.dataclass(frozen=True)
class Prompt:
    """A prompt for the policy to answer (RL), with an optional reference ``answer`` that a verifiable
    reward (e.g. the GSM8K checker) compares the reply with.

    Row form: ``{"prompt": str | messages, "answer": str}`` (``answer`` optional).
    """

    prompt: tuple[dict, ...]
    answer: str | None = None

    @classmethod
    def from_row(cls, row: dict, location: str) -> Prompt:
        prompt = as_messages(_field(row, "prompt", location, "'prompt' (and optionally 'answer')"), location)
        answer = row.get("answer")
        if answer is not None:
            answer = _text(answer, "answer", location)
        return cls(prompt=prompt, answer=answer)


def ranking_to_pairs(ranks: Sequence[int], location: str = "") -> tuple[list[tuple[int, int]], int]:
    """All preference pairs implied by a ranking of K responses, and how many tied pairs were dropped.

    ``ranks[i]`` is response i's rank: 1 is best, a larger number is worse, equal numbers are ties.
    Returns the pairs ``(better_index, worse_index)`` over responses with different ranks, in order
    of (i, j) with i < j, so K·(K-1)/2 pairs when nothing is tied. Raises :class:`DataError` naming
    ``location`` when fewer than two distinct ranks leave no pair at all.
    """
    if len(set(ranks)) < 2:
        raise DataError(location, f"ranking needs at least two distinct ranks, got {list(ranks)}")
    pairs: list[tuple[int, int]] = []
    ties = 0
    for i in range(len(ranks)):
        for j in range(i + 1, len(ranks)):
            if ranks[i] < ranks[j]:
                pairs.append((i, j))
            elif ranks[j] < ranks[i]:
                pairs.append((j, i))
            else:
                ties += 1
    return pairs, ties



RECORD_TYPES = {
    "demonstration": Demonstration,
    "preference": PreferencePair,
    "ranking": Ranking,
    "unpaired": UnpairedFeedback,
    "steps": StepSolution,
    "prompt": Prompt,
}
