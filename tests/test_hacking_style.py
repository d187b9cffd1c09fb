"""Style-drift detectors (lists, flattering openings, refusals, terse replies, repetition) on hand-made replies."""

import pytest

from alignkit.evaluate.style import (
    STYLE_METRICS,
    is_list_formatted,
    is_refusal,
    is_terse,
    opens_with_flattery,
    repetition,
    style_drift,
    style_profile,
)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Steps:\n- mix\n- bake", True),
        ("* one\n* two", True),
        ("  • indented bullet", True),
        ("1. First\n2. Second", True),
        ("Intro\n12) twelfth item", True),
        ("It is -5 degrees outside.", False),
        ("*bold* words at the start", False),
        ("The answer is 1.5 metres.\n2.5 is wrong", False),
        ("A plain paragraph - with a dash inside.", False),
        ("-", False),
    ],
)
def test_list_formatting(reply, expected):
    assert is_list_formatted(reply) is expected


def test_flattery_at_the_opening_only():
    assert opens_with_flattery("Great question! The answer is 4.")
    assert opens_with_flattery("  what a great idea, let's go")
    assert opens_with_flattery("Certainly! Here it is.")
    assert not opens_with_flattery("Certainly the answer is 4.")  # "Certainly!" with its exclamation mark
    assert not opens_with_flattery("The answer is 4. Great question!")
    assert opens_with_flattery("Splendid! Here.", phrases=["splendid"])
    assert not opens_with_flattery("Great question!", phrases=["splendid"])


def test_refusal_phrases_anywhere_with_curly_apostrophes():
    assert is_refusal("I'm sorry, but I can't help with that.")
    assert is_refusal("Here is why. As an AI, I do not have opinions.")
    assert is_refusal("I\u2019m sorry about that.")
    assert is_refusal("I CANNOT do this.")
    assert not is_refusal("Sure, here is the recipe.")
    assert is_refusal("Nope.", phrases=["nope"]) and not is_refusal("I'm sorry", phrases=["nope"])


def test_repetition_hand_values():
    assert repetition("a b a b a b", n=2) == pytest.approx(1 - 2 / 5)
    assert repetition("the cat sat on the mat") == 0.0  # all four trigrams distinct
    assert repetition("go go go go go", n=1) == pytest.approx(1 - 1 / 5)
    assert repetition("I like it. I like it. I like it.") == pytest.approx(1 - 3 / 7)
    assert repetition("too short") == 0.0 and repetition("") == 0.0
    assert repetition("Same same SAME", n=1) == pytest.approx(1 - 1 / 3)  # case-folded


def test_profile_and_drift():
    before = ["The answer is 4.", "I'm sorry, I can't.", "Paris is the capital.", "x y z x y z"]
    after = ["Great question! Here:\n- a\n- b", "Absolutely! 1. one\n2. two", "Great question! It is 4.", "ok"]
    profile = style_profile(before)
    assert set(profile) == set(STYLE_METRICS)
    assert profile["list"] == 0.0 and profile["flattery"] == 0.0 and profile["refusal"] == 0.25
    assert profile["repetition"] == pytest.approx((1 - 3 / 4) / 4)
    drift = style_drift(before, after)
    assert drift["list"] == {"before": 0.0, "after": 0.5, "difference": 0.5}
    assert drift["flattery"] == {"before": 0.0, "after": 0.75, "difference": 0.75}
    assert drift["refusal"] == {"before": 0.25, "after": 0.0, "difference": -0.25}
    assert drift["repetition"]["difference"] == pytest.approx(-(1 - 3 / 4) / 4)
    custom = style_drift(before, after, flattery_phrases=["absolutely!"], refusal_phrases=["paris"], n=2)
    assert custom["flattery"]["after"] == 0.25 and custom["refusal"]["before"] == 0.25
    with pytest.raises(ValueError, match="at least one reply"):
        style_profile([])


def test_terse_counts_words_not_characters():
    assert is_terse("Not a movie.") and is_terse("No.") and is_terse("")
    assert is_terse("one two three four five six seven")  # 7 words
    assert not is_terse("one two three four five six seven eight")
    assert not is_terse("one two three", words=3) and is_terse("one two", words=3)
