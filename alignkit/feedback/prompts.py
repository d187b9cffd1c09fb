"""The wording of AI-feedback queries, as chat messages any feedback backend can answer.

Critique and revision (Bai et al. 2022, section 3) continue the conversation: the prompt, the reply as an
assistant turn, the principle's critique request as a user turn (the critique is the reply to it), then
the revision request (the revision is the reply to that). Few-shot examples come first, as earlier turns.

A comparison (section 4) is one user turn: the conversation as a transcript, the principle's question and
the two replies as options ``(A)`` and ``(B)``, ending with a request to answer with one of them; the
label is read from the probabilities of the options at the start of the reply. With chain of thought the
model first answers a request to reason, and the options are scored after a follow-up question.
"""

from __future__ import annotations

from collections.abc import Sequence

from alignkit.feedback.constitution import ComparisonExample, Principle

OPTIONS = ("(A)", "(B)")
ANSWER_REQUEST = "Answer with (A) or (B) only."
REASON_REQUEST = "Think it through step by step, then say which response is better."
FOLLOW_UP = "So which response is better? Answer with (A) or (B) only."
_SPEAKERS = {"user": "Human", "assistant": "Assistant", "system": "System"}


def transcript(messages: Sequence[dict]) -> str:
    """``"Human: ...\\n\\nAssistant: ..."``: one paragraph per message (system messages as ``System:``)."""
    return "\n\n".join(f"{_SPEAKERS[m['role']]}: {m['content']}" for m in messages)


def completion_text(messages: Sequence[dict]) -> str:
    """A chat as plain text for a completions endpoint: ``"\\n\\nHuman: ...\\n\\nAssistant:"``, ending with
    the header of the reply to write (the format of HH-RLHF and the Constitutional AI prompts)."""
    return "\n\n" + transcript(messages) + "\n\nAssistant:"


def _turn(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def _after_shots(shots: Sequence[Sequence[dict]], conversation: Sequence[dict]) -> tuple[dict, ...]:
    """Few-shot turns, then ``conversation``; system messages of the conversation go first of all."""
    system = tuple(m for m in conversation if m["role"] == "system")
    rest = tuple(m for m in conversation if m["role"] != "system")
    return system + tuple(m for shot in shots for m in shot) + rest


def critique_query(
    prompt: Sequence[dict], reply: str, principle: Principle, shots: Sequence[Sequence[dict]] = ()
) -> tuple[dict, ...]:
    """The chat whose answer is the critique of ``reply`` under ``principle``."""
    return _after_shots(shots, (*prompt, _turn("assistant", reply), _turn("user", principle.critique_request)))


def revision_query(critique_chat: tuple[dict, ...], critique: str, principle: Principle) -> tuple[dict, ...]:
    """The chat whose answer is the revision: the critique chat, the critique, the revision request."""
    return critique_chat + (_turn("assistant", critique), _turn("user", principle.revision_request))


def comparison_question(prompt: Sequence[dict], reply_a: str, reply_b: str, principle: Principle) -> str:
    """The multiple-choice question: the conversation, the principle's question, the options."""
    return (f"Consider this conversation between a human and an AI assistant:\n\n{transcript(prompt)}\n\n"
            f"{principle.comparison}\n{OPTIONS[0]} {reply_a}\n{OPTIONS[1]} {reply_b}")


def comparison_query(
    prompt: Sequence[dict], reply_a: str, reply_b: str, principle: Principle,
    shots: Sequence[ComparisonExample] = (), chain_of_thought: bool = False,
) -> tuple[dict, ...]:
    """The chat asking which of ``reply_a`` (option A) and ``reply_b`` (option B) is better under
    ``principle``. Few-shot examples are asked under the same principle and answered, the better reply
    placed first in even-numbered examples and second in odd ones (so they teach no position)."""
    turns = []
    for i, shot in enumerate(shots):
        a, b = (shot.better, shot.worse) if i % 2 == 0 else (shot.worse, shot.better)
        question = comparison_question(shot.prompt, a, b, principle)
        turns += [_turn("user", f"{question}\n\n{ANSWER_REQUEST}"), _turn("assistant", OPTIONS[i % 2])]
    request = REASON_REQUEST if chain_of_thought else ANSWER_REQUEST
    question = comparison_question(prompt, reply_a, reply_b, principle)
    return (*turns, _turn("user", f"{question}\n\n{request}"))


def follow_up_query(query: tuple[dict, ...], reasoning: str) -> tuple[dict, ...]:
    """Chain of thought: the comparison chat, the model's reasoning, then the request for the answer."""
    return query + (_turn("assistant", reasoning), _turn("user", FOLLOW_UP))
