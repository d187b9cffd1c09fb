"""Chat-template tokenisation with loss masks.

A demonstration is rendered with the tokenizer's own chat template and tokenised once. Its labels copy
the token ids of each assistant reply -- the reply text and the end-of-turn token the template writes
after it (``<|im_end|>`` for ChatML), so the model learns to stop -- and are ``IGNORE_INDEX`` everywhere
else: system and user turns, and each reply's header (``<|im_start|>assistant\\n``).

Replies are located by rendering prefixes of the conversation: ``messages[:i]`` with the generation
prompt ends where reply ``i`` starts, and ``messages[:i + 1]`` ends after its end-of-turn token(s)
(trailing whitespace such as the newline after ``<|im_end|>`` is left unlabelled). This needs a
*prefix-stable* template (rendering earlier turns the same whatever follows), which is checked.
"""

from __future__ import annotations

import bisect
import dataclasses

from alignkit.data.records import Demonstration
from alignkit.errors import AlignkitError, DataError
from alignkit.tensors import IGNORE_INDEX  # the label of positions left out of the loss

LOSS_ON = ("all_assistant", "last_assistant")


@dataclasses.dataclass
class TokenizedExample:
    """One tokenised sequence.

    ``labels[t]`` is ``input_ids[t]`` where the token is trained on and ``IGNORE_INDEX`` elsewhere
    (not shifted: the model or loss shifts). ``truncated_tokens``: how many tokens were cut from the left.
    """

    input_ids: list[int]
    labels: list[int]
    truncated_tokens: int = 0


def tokenize_demonstration(
    record: Demonstration,
    tokenizer,
    *,
    max_length: int,
    loss_on: str = "all_assistant",
    location: str = "",
    finished: bool = True,
) -> TokenizedExample:
    """Tokenise ``record`` with ``tokenizer``'s chat template and label its assistant replies.

    ``loss_on``: ``"all_assistant"`` labels every assistant reply, ``"last_assistant"`` only the final one.
    ``finished=False``: the final message is an assistant reply cut before it ended (a sample that hit its
    token limit); it is rendered as the chat up to its reply header followed by its text, without the
    end-of-turn token(s) the template writes after a reply, so it does not read as a finished turn.
    A sequence longer than ``max_length`` loses its oldest tokens (from the left); the final reply and
    its header are always kept whole, and when they alone exceed ``max_length`` a DataError names
    ``location``. The tokenizer must be a fast one (it must return character offsets).
    """
    if loss_on not in LOSS_ON:
        raise ValueError(f"loss_on must be one of {', '.join(LOSS_ON)}, got {loss_on!r}")
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    location = location or "demonstration"
    messages = [dict(m) for m in record.messages]
    if finished:
        text = _render(tokenizer, messages)
    elif messages[-1]["role"] == "assistant":
        text = _render(tokenizer, messages[:-1], add_generation_prompt=True) + messages[-1]["content"]
    else:
        raise DataError(location, "an unfinished reply must be the last message, from the assistant")
    spans = _assistant_spans(tokenizer, messages, text, location, open_end=not finished)
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoding["input_ids"])
    starts = [start for start, _ in encoding["offset_mapping"]]  # a token belongs where it begins
    labels = [IGNORE_INDEX] * len(ids)
    for _, reply_start, reply_end in spans if loss_on == "all_assistant" else spans[-1:]:
        for t in range(bisect.bisect_left(starts, reply_start), bisect.bisect_left(starts, reply_end)):
            labels[t] = ids[t]
    if len(ids) <= max_length:
        return TokenizedExample(ids, labels, 0)
    final_header = bisect.bisect_left(starts, spans[-1][0])
    needed = len(ids) - final_header
    if needed > max_length:
        raise DataError(
            location,
            f"example is {needed} tokens after truncation (its final assistant reply with the reply header "
            f"alone); max_length is {max_length}",
        )
    cut = len(ids) - max_length
    return TokenizedExample(ids[cut:], labels[cut:], cut)


@dataclasses.dataclass
class StepTokens:
    """A step-by-step solution tokenised for a process reward model: ``step_ends[k]`` is the position of
    the token that holds step k's last character (where the model is read for that step)."""

    input_ids: list[int]
    step_ends: list[int]
    truncated_tokens: int = 0


def tokenize_steps(prompt, steps, tokenizer, *, max_length: int, separator: str = "\n",
                   location: str = "") -> StepTokens:
    """The chat of ``prompt`` and one assistant reply, ``separator.join(steps)``, tokenised, with the
    position of each step's last token. A causal model read there has seen the prompt and steps 1..k only.
    Too long, it loses its oldest prompt tokens; when the reply and its header alone exceed ``max_length``,
    or the chat template rewrites the reply's text, a DataError names ``location``."""
    location = location or "solution"
    reply = separator.join(steps)
    messages = [dict(m) for m in prompt] + [{"role": "assistant", "content": reply}]
    text = _render(tokenizer, messages)
    header_start, reply_start, _ = _assistant_spans(tokenizer, messages, text, location)[-1]
    if text[reply_start:reply_start + len(reply)] != reply:
        raise DataError(location, "the chat template changes the reply's text, so its steps cannot be located "
                                  "(expected the steps verbatim in the rendered chat)")
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoding["input_ids"])
    starts = [start for start, _ in encoding["offset_mapping"]]
    ends, end = [], reply_start
    for k, step in enumerate(steps):
        end += len(step) + (len(separator) if k else 0)
        ends.append(bisect.bisect_right(starts, end - 1) - 1)
    cut, header = max(0, len(ids) - max_length), bisect.bisect_left(starts, header_start)
    if cut > header:
        raise DataError(location, f"the steps and the reply header alone are {len(ids) - header} tokens; "
                                  f"max_length is {max_length}")
    return StepTokens(ids[cut:], [e - cut for e in ends], cut)


def tokenize_prompt(prompt_messages, tokenizer) -> list[int]:
    """Token ids of a prompt (chat messages) followed by the assistant header, ready for generation."""
    text = _render(tokenizer, [dict(m) for m in prompt_messages], add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    if getattr(tokenizer, "chat_template", None) is None:
        raise AlignkitError(
            f"{getattr(tokenizer, 'name_or_path', 'tokenizer')}: has no chat template "
            "(expected a chat model's tokenizer, with a template in its chat_template.jinja)"
        )
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def _assistant_spans(
    tokenizer, messages: list[dict], text: str, location: str, open_end: bool = False
) -> list[tuple[int, int, int]]:
    """``(header_start, reply_start, reply_end)`` character offsets in ``text`` of each assistant reply;
    with ``open_end`` the last reply runs to the end of ``text`` (it has no end-of-turn)."""

    def prefix_end(count: int, generation_prompt: bool) -> int:
        prefix = _render(tokenizer, messages[:count], add_generation_prompt=generation_prompt)
        if not text.startswith(prefix):
            raise DataError(
                location,
                f"the chat template is not prefix-stable: rendering the first {count} message(s) does not "
                "give a prefix of the whole conversation, so assistant replies cannot be located "
                "(expected a template that renders earlier turns the same whatever follows)",
            )
        return len(prefix)

    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        if i == 0:
            raise DataError(
                location, "the conversation starts with an assistant message (expected a user turn first)"
            )
        header_start = prefix_end(i, False)
        reply_start = prefix_end(i, True)
        reply_end = len(text) if open_end and i == len(messages) - 1 else prefix_end(i + 1, False)
        while reply_end > reply_start and text[reply_end - 1].isspace():
            reply_end -= 1
        spans.append((header_start, reply_start, reply_end))
    return spans
