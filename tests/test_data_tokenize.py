"""Chat-template tokenisation: labels cover exactly the assistant replies and their end-of-turn token."""

import itertools

import pytest

from alignkit.data.readers import read_rows
from alignkit.data.records import Demonstration
from alignkit.data.sources import DATASETS
from alignkit.data.tokenize import tokenize_demonstration, tokenize_prompt
from alignkit.errors import AlignkitError, DataError
from alignkit.tensors import IGNORE_INDEX


def real_record(data_dir, name, kind, index):
    """Record ``index`` of a known dataset, read from the shared data folder through its adapter."""
    spec = DATASETS[name]
    location, row = next(itertools.islice(read_rows(str(data_dir / spec.local)), index, None))
    return spec.adapters[kind](row, location)[0]


@pytest.fixture(scope="module")
def hh_demo(data_dir):
    return real_record(data_dir, "hh-rlhf-harmless", "demonstration", 0)


@pytest.fixture(scope="module")
def alpaca_demo(data_dir):
    return real_record(data_dir, "alpaca-seed", "demonstration", 1)


def labelled_runs(tokenizer, example) -> list[str]:
    """The decoded text of each contiguous run of labelled tokens."""
    runs, current = [], []
    for token, label in zip(example.input_ids, example.labels, strict=True):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tokenizer.decode(run) for run in runs]


def test_single_turn_labels_reply_and_end_token(tokenizer, alpaca_demo):
    example = tokenize_demonstration(alpaca_demo, tokenizer, max_length=512)
    reply = alpaca_demo.messages[-1]["content"]
    assert labelled_runs(tokenizer, example) == [reply + "<|im_end|>"]
    assert example.truncated_tokens == 0
    first = next(t for t, label in enumerate(example.labels) if label != IGNORE_INDEX)
    # everything before the reply is the prompt with the assistant header, exactly as for generation
    assert example.input_ids[:first] == tokenize_prompt(alpaca_demo.messages[:-1], tokenizer)
    assert tokenizer.decode(example.input_ids[:first]).endswith("<|im_start|>assistant\n")


def test_multi_turn_all_versus_last(tokenizer, hh_demo):
    replies = [m["content"] + "<|im_end|>" for m in hh_demo.messages if m["role"] == "assistant"]
    assert len(replies) == 3
    every = tokenize_demonstration(hh_demo, tokenizer, max_length=1024)
    assert labelled_runs(tokenizer, every) == replies
    last = tokenize_demonstration(hh_demo, tokenizer, max_length=1024, loss_on="last_assistant")
    assert last.input_ids == every.input_ids
    assert labelled_runs(tokenizer, last) == replies[-1:]


def test_truncation_cuts_oldest_tokens_and_keeps_the_reply(tokenizer, hh_demo):
    full = tokenize_demonstration(hh_demo, tokenizer, max_length=1024)
    cut = tokenize_demonstration(hh_demo, tokenizer, max_length=len(full.input_ids) - 40)
    assert cut.truncated_tokens == 40
    assert cut.input_ids == full.input_ids[40:] and cut.labels == full.labels[40:]
    assert labelled_runs(tokenizer, cut)[-1] == hh_demo.messages[-1]["content"] + "<|im_end|>"


def test_too_long_even_after_truncation(tokenizer, hh_demo):
    full = tokenize_demonstration(hh_demo, tokenizer, max_length=1024)
    reply_tokens = sum(
        label != IGNORE_INDEX
        for label in tokenize_demonstration(
            hh_demo, tokenizer, max_length=1024, loss_on="last_assistant"
        ).labels
    )
    header = len(tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"])
    needed = header + reply_tokens + 1  # + the newline the template writes after <|im_end|>
    assert needed < len(full.input_ids)
    tokenize_demonstration(hh_demo, tokenizer, max_length=needed)  # fits exactly
    with pytest.raises(DataError) as info:
        tokenize_demonstration(hh_demo, tokenizer, max_length=needed - 1, location="hh.jsonl:1")
    assert str(info.value).startswith(f"hh.jsonl:1: example is {needed} tokens after truncation")
    assert str(info.value).endswith(f"max_length is {needed - 1}")


class TemplateOverride:
    """A tokenizer with another chat template (the shared fixture is left untouched)."""

    def __init__(self, tokenizer, template):
        self.tokenizer, self.chat_template = tokenizer, template

    def apply_chat_template(self, messages, **kwargs):
        return self.tokenizer.apply_chat_template(messages, chat_template=self.chat_template, **kwargs)

    def __call__(self, *args, **kwargs):
        return self.tokenizer(*args, **kwargs)


def test_template_that_is_not_prefix_stable(tokenizer, alpaca_demo):
    # renders the final message differently from earlier ones, like templates that drop old reasoning
    template = (
        "{% for m in messages %}{% if loop.last %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
        "{% else %}<|im_start|>{{ m.role }} (earlier)\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    with pytest.raises(DataError, match="x:1: the chat template is not prefix-stable"):
        tokenize_demonstration(
            alpaca_demo, TemplateOverride(tokenizer, template), max_length=512, location="x:1"
        )


def test_other_problems(tokenizer):
    starts_with_reply = Demonstration(({"role": "assistant", "content": "Hi"},))
    with pytest.raises(DataError, match="starts with an assistant message"):
        tokenize_demonstration(starts_with_reply, tokenizer, max_length=64)
    with pytest.raises(AlignkitError, match="has no chat template"):
        tokenize_demonstration(starts_with_reply, TemplateOverride(tokenizer, None), max_length=64)
    with pytest.raises(ValueError, match="loss_on must be one of"):
        tokenize_demonstration(starts_with_reply, tokenizer, max_length=64, loss_on="prompt")


def test_replies_to_one_prompt_keep_the_same_prompt_tokens_when_truncated(data_dir, tokenizer):
    """Chosen and rejected of different lengths lose the same oldest tokens, so they share one prompt."""
    from alignkit.data.comparisons import tokenize_responses

    rows = list(itertools.islice(read_rows(str(data_dir / "hh-rlhf" / "harmless-base.jsonl.gz")), 60))
    pairs = [DATASETS["hh-rlhf-harmless"].adapters["preference"](row, where)[0] for where, row in rows]
    truncated = 0
    for pair in pairs:
        try:
            chosen, rejected = tokenize_responses(pair.prompt, (pair.chosen, pair.rejected), tokenizer, 96, "pair")
        except DataError:
            continue  # a reply longer than 96 tokens on its own
        first_c = next(t for t, label in enumerate(chosen.labels) if label != IGNORE_INDEX)
        first_r = next(t for t, label in enumerate(rejected.labels) if label != IGNORE_INDEX)
        assert chosen.input_ids[:first_c] == rejected.input_ids[:first_r]
        assert max(len(chosen.input_ids), len(rejected.input_ids)) <= 96
        truncated += chosen.truncated_tokens > 0
    assert truncated >= 10  # the case that matters was exercised
