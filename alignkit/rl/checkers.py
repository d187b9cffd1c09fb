"""Verifiable rewards: checkers that compare a reply with a known answer.

GSM8K (Cobbe et al. 2021) answers are numbers. A reply's answer is the number after the last
"The answer is" / "####" / "answer:" marker when there is one (what alignkit's GSM8K demonstrations
teach), else the last number in the reply. Numbers compare as values after removing thousands
separators, a leading "$" and a trailing "." ("1,000" = "1000.0" = "$1000").
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_NUMBER = r"-?\$?\d[\d,]*(?:\.\d+)?"
_MARKED = re.compile(r"(?:the answer is|####|answer:)\s*(" + _NUMBER + ")", re.IGNORECASE)
_ANY = re.compile(_NUMBER)


def _value(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", "").replace("$", "").rstrip("."))
    except InvalidOperation:
        return None


def extract_answer(reply: str) -> str | None:
    """The final numeric answer of ``reply`` (module docstring), as written; None when it has no number."""
    marked = _MARKED.findall(reply)
    if marked:
        return marked[-1]
    numbers = _ANY.findall(reply)
    return numbers[-1] if numbers else None


def answer_value(reply: str) -> str | None:
    """The reply's final answer as a canonical value (``"1,000"``, ``"1000.0"`` and ``"$1000"`` all ``"1000"``),
    so that equal answers are equal strings (what a majority vote counts); None when it has none."""
    found = extract_answer(reply)
    value = None if found is None else _value(found)
    return None if value is None else format(value.normalize(), "f")


def gsm8k_correct(reply: str, reference: str) -> bool:
    """True when the reply's final number equals ``reference`` (GSM8K's text after ``####``) as a value."""
    found = extract_answer(reply)
    expected = _value(reference.strip())
    return found is not None and expected is not None and _value(found) == expected
