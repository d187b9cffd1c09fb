"""A sampled solution's steps, and the token at which each one ends.

A solution's steps are its non-empty lines; a closing line that states the answer ("The answer is 7.") is
not a step (a process reward model scores the reasoning, a checker the answer). For step rewards in RL,
step k ends at the first token whose decoded prefix reaches the end of the step's line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_LINE = re.compile(r"[^\n]+")
_ANSWER_LINE = "the answer is"


def step_spans(text: str) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the steps of ``text``, each its line stripped of surrounding
    whitespace; blank lines and a closing answer line left out."""
    spans = []
    for match in _LINE.finditer(text):
        line = match.group()
        if line.strip():
            start = match.start() + len(line) - len(line.lstrip())
            spans.append((start, match.start() + len(line.rstrip())))
    if spans and text[spans[-1][0]:spans[-1][1]].lower().startswith(_ANSWER_LINE):
        spans.pop()
    return spans


def solution_steps(text: str) -> list[str]:
    """The steps of ``text`` (:func:`step_spans`) as strings."""
    return [text[start:end] for start, end in step_spans(text)]


def step_token_ends(token_ids: Sequence[int], tokenizer, text: str) -> list[int]:
    """For each step of ``text`` (the decoding of ``token_ids``, special tokens skipped), the index of the
    token at which it ends: the first whose decoded prefix is at least as long as the step's end."""
    ends = [end for _, end in step_spans(text)]
    out, token, decoded = [], 0, 0
    for end in ends:
        while decoded < end and token < len(token_ids):
            token += 1
            decoded = len(tokenizer.decode(token_ids[:token], skip_special_tokens=True))
        out.append(max(token - 1, 0))
    return out
