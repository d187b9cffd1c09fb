"""Record kinds: every accepted row form, and a clear DataError for every bad one."""

import re

import pytest

from alignkit.data.records import (
    RECORD_TYPES,
    Demonstration,
    PreferencePair,
    Prompt,
    Ranking,
    StepSolution,
    UnpairedFeedback,
    as_messages,
)
from alignkit.errors import DataError

WHERE = "data.jsonl:3"


def error(record_type, row) -> str:
    with pytest.raises(DataError) as info:
        record_type.from_row(row, WHERE)
    assert info.value.location == WHERE
    return str(info.value)


def test_as_messages_string_and_list():
    assert as_messages("Hi", WHERE) == ({"role": "user", "content": "Hi"},)
    given = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi", "name": "x"}]
    assert as_messages(given, WHERE) == (
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    )


@pytest.mark.parametrize(
    "value, expected",
    [
        (3, "must be a string or a list of messages"),
        ([], "empty list"),
        (["hi"], "prompt[0] must be a message"),
        ([{"role": "bot", "content": "x"}], "role 'bot' (expected one of system, user, assistant)"),
        ([{"role": "user"}], "prompt[0] has no 'content'"),
        ([{"role": "user", "content": "  \n"}], "prompt[0] content is empty"),
        ([{"role": "user", "content": 5}], "prompt[0] content must be a string, got int"),
    ],
)
def test_as_messages_rejects(value, expected):
    with pytest.raises(DataError, match=re.escape(expected)):
        as_messages(value, WHERE)


def test_demonstration_forms():
    flat = Demonstration.from_row({"prompt": "Q", "response": "A", "system": "S"}, WHERE)
    assert flat.messages == (
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A"},
    )
    chat = Demonstration.from_row({"messages": list(flat.messages)}, WHERE)
    assert chat == flat


def test_demonstration_errors():
    assert error(Demonstration, {"prompt": "Q"}) == (
        "data.jsonl:3: missing field 'response' (expected 'prompt' and 'response', or 'messages')"
    )
    assert "response must be a string, got list" in error(Demonstration, {"prompt": "Q", "response": ["A"]})
    assert "response is empty" in error(Demonstration, {"prompt": "Q", "response": "   "})
    ends_with_user = {"messages": [{"role": "assistant", "content": "A"}, {"role": "user", "content": "Q"}]}
    assert "expected an assistant reply last" in error(Demonstration, ends_with_user)
    assert "both 'system'" in error(
        Demonstration,
        {
            "prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
            "response": "A",
            "system": "T",
        },
    )


def test_preference_pair_forms():
    pair = PreferencePair.from_row(
        {"prompt": "Q", "chosen": "A", "rejected": "A", "margin": 2, "label": 0.75}, WHERE
    )
    assert pair == PreferencePair(
        ({"role": "user", "content": "Q"},), "A", "A", 2.0, 0.75
    )  # identical is fine
    user = {"role": "user", "content": "Q"}
    conversations = {
        "chosen": [user, {"role": "assistant", "content": "good"}],
        "rejected": [user, {"role": "assistant", "content": "bad"}],
    }
    assert PreferencePair.from_row(conversations, WHERE) == PreferencePair((user,), "good", "bad")
    trl_style = {
        "prompt": [user],
        "chosen": [{"role": "assistant", "content": "good"}],
        "rejected": [{"role": "assistant", "content": "bad"}],
    }
    assert PreferencePair.from_row(trl_style, WHERE) == PreferencePair((user,), "good", "bad")


def test_preference_pair_errors():
    assert "missing field 'rejected'" in error(PreferencePair, {"prompt": "Q", "chosen": "A"})
    assert "chosen is empty" in error(PreferencePair, {"prompt": "Q", "chosen": "", "rejected": "B"})
    assert "label must be a probability in [0, 1]" in error(
        PreferencePair, {"prompt": "Q", "chosen": "A", "rejected": "B", "label": 1.5}
    )
    assert "margin must be a finite number" in error(
        PreferencePair, {"prompt": "Q", "chosen": "A", "rejected": "B", "margin": "big"}
    )
    user = {"role": "user", "content": "Q"}
    other = {"role": "user", "content": "R"}
    assert "share every message" in error(
        PreferencePair,
        {
            "chosen": [user, {"role": "assistant", "content": "a"}],
            "rejected": [other, {"role": "assistant", "content": "b"}],
        },
    )


def test_ranking():
    ranking = Ranking.from_row({"prompt": "Q", "responses": ["a", "b", "c"], "ranks": [2, 1, 2]}, WHERE)
    assert ranking.ranks == (2, 1, 2) and ranking.responses == ("a", "b", "c")
    assert "at least 2" in error(Ranking, {"prompt": "Q", "responses": ["a"], "ranks": [1]})
    assert "3 ranks for 2 responses" in error(
        Ranking, {"prompt": "Q", "responses": ["a", "b"], "ranks": [1, 2, 3]}
    )
    assert "integers >= 1" in error(Ranking, {"prompt": "Q", "responses": ["a", "b"], "ranks": [0, 1]})
    assert "responses[1] is empty" in error(
        Ranking, {"prompt": "Q", "responses": ["a", " "], "ranks": [1, 2]}
    )


def test_unpaired_feedback():
    record = UnpairedFeedback.from_row({"prompt": "Q", "completion": "A", "desirable": False}, WHERE)
    assert record.desirable is False
    assert (
        UnpairedFeedback.from_row({"prompt": "Q", "completion": "A", "label": True}, WHERE).desirable is True
    )
    assert "desirable must be true or false, got 1" in error(
        UnpairedFeedback, {"prompt": "Q", "completion": "A", "desirable": 1}
    )
    assert "missing field 'desirable'" in error(UnpairedFeedback, {"prompt": "Q", "completion": "A"})


def test_step_solution():
    record = StepSolution.from_row(
        {"prompt": "Q", "steps": ["s1", "s2", "s3", "s4"], "labels": [True, 0.25, 0, None], "answer": "4"}, WHERE
    )
    assert record.labels == (1.0, 0.25, 0.0, None) and record.answer == "4"
    assert StepSolution.from_row({"prompt": "Q", "steps": ["s1"]}, WHERE).labels is None
    assert "1 labels for 2 steps" in error(StepSolution, {"prompt": "Q", "steps": ["a", "b"], "labels": [1]})
    assert "from 0 (wrong) to 1 (right)" in error(StepSolution, {"prompt": "Q", "steps": ["a"], "labels": [2]})
    assert "from 0 (wrong) to 1 (right)" in error(StepSolution, {"prompt": "Q", "steps": ["a"], "labels": ["+"]})
    assert "at least one step" in error(StepSolution, {"prompt": "Q", "steps": []})


def test_registry_names_every_kind():
    assert {
        "demonstration": Demonstration,
        "preference": PreferencePair,
        "ranking": Ranking,
        "unpaired": UnpairedFeedback,
        "steps": StepSolution,
        "prompt": Prompt,
    } == RECORD_TYPES


def test_prompt_records_carry_an_optional_reference_answer():
    assert Prompt.from_row({"prompt": "2+2?", "answer": "4"}, "f:1") == Prompt(
        prompt=({"role": "user", "content": "2+2?"},), answer="4")
    assert Prompt.from_row({"prompt": "Hi"}, "f:2").answer is None
    assert "missing field 'prompt'" in error(Prompt, {"answer": "4"})
    assert "answer is empty" in error(Prompt, {"prompt": "Q", "answer": " "})
