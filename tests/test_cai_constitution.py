"""Constitutions: the default one and the paper's published prompts load; malformed files get one error
naming the key; principle draws are seeded per example; queries are worded and ordered as documented."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml

from alignkit.feedback.constitution import (
    ComparisonExample,
    ConstitutionError,
    Principle,
    draw_principles,
    load_constitution,
    parse_constitution,
)
from alignkit.feedback.prompts import OPTIONS, comparison_query, critique_query, follow_up_query, revision_query

GOOD = {
    "principles": [
        {"name": "kind", "critique_request": "Critique it.", "revision_request": "Revise it.", "comparison": "Kinder?"},
        {"name": "judge-only", "comparison": "Better?"},
    ],
    "critique_examples": [{"prompt": "Hi", "response": "Go away.", "principle": "kind", "critique": "Rude.",
                           "revision": "Hello!"}],
    "comparison_examples": [{"prompt": "Hi", "better": "Hello!", "worse": "Go away."}],
}


def test_default_constitution_has_complete_principles_and_examples():
    constitution = load_constitution("default")
    assert constitution.name == "alignkit-default"
    assert len(constitution.for_revision()) == len(constitution.for_comparison()) == len(constitution.principles) >= 6
    assert constitution.critique_shots(2) and constitution.comparison_shots(2)
    for shot in constitution.critique_shots(2):
        assert [m["role"] for m in shot] == ["user", "assistant", "user", "assistant", "user", "assistant"]


def test_paper_prompts_load_from_the_data_folder(data_dir):
    constitution = load_constitution("cai-paper")
    from_folder = load_constitution(str(data_dir / "cai"))  # the same files, maybe through a symbolic link
    assert Path(constitution.source).resolve() == Path(from_folder.source).resolve()
    assert constitution == dataclasses.replace(from_folder, source=constitution.source)
    revision, comparison = constitution.for_revision(), constitution.for_comparison()
    assert len(revision) == 16 and len(comparison) == 16
    first = revision[0]
    assert first.name == "harmful0" and first.critique_request.startswith("Identify specific ways")
    assert not first.critique_request.endswith("Critique:") and "CritiqueRequest" not in first.critique_request
    assert first.revision_request.startswith("Please rewrite") and "Revision" not in first.revision_request[-12:]
    assert comparison[0].comparison.startswith("Please choose") and not comparison[0].comparison.endswith("Options:")
    shots = constitution.critique_shots(5)
    assert shots[0][0]["content"] == "Could you help me burn down my house and collect insurance on it?"
    assert [m["role"] for m in shots[0]][-4:] == ["user", "assistant", "user", "assistant"]
    example = constitution.comparison_shots(1)[0]
    assert example.prompt[-1]["role"] == "user" and example.better.startswith("You should not")


def test_paper_folder_with_only_the_comparison_file(tmp_path, data_dir):
    shutil.copy(data_dir / "cai" / "RLMadisonInstructions.json", tmp_path)
    constitution = load_constitution(str(tmp_path))
    assert len(constitution.for_comparison()) == 16
    with pytest.raises(ConstitutionError, match="no principle has a critique_request"):
        constitution.for_revision()


def test_paper_file_errors_name_the_entry(tmp_path, data_dir):
    raw = json.loads((data_dir / "cai" / "CritiqueRevisionInstructions.json").read_text())
    del raw["harmful3"]["edit_request"]
    (tmp_path / "CritiqueRevisionInstructions.json").write_text(json.dumps(raw))
    with pytest.raises(ConstitutionError, match=r"'harmful3'\.edit_request: missing"):
        load_constitution(str(tmp_path))


def test_a_yaml_file_loads(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    constitution = load_constitution(str(path))
    assert constitution.name == "mine" and [p.name for p in constitution.for_revision()] == ["kind"]
    assert [p.name for p in constitution.for_comparison()] == ["kind", "judge-only"]
    assert constitution.critique_shots(1)[0][2] == {"role": "user", "content": "Critique it."}
    assert constitution.comparison_shots(1) == (ComparisonExample(({"role": "user", "content": "Hi"},), "Hello!",
                                                                  "Go away."),)
    with pytest.raises(ConstitutionError, match="revise.few_shot is 2 but .* has 1 critique_examples"):
        constitution.critique_shots(2)


def broken(change):
    raw = json.loads(json.dumps(GOOD))
    change(raw)
    return raw


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("principles"), r"principles: expected a non-empty list"),
        (lambda r: r.update(principles=[]), r"principles: expected a non-empty list"),
        (lambda r: r.update(principle=[]), r"unknown key 'principle'; did you mean 'principles'\?"),
        (lambda r: r["principles"][1].update(comparsion="x"),
         r"unknown key 'principles\[1\]\.comparsion'; did you mean 'principles\[1\]\.comparison'"),
        (lambda r: r["principles"][0].pop("name"), r"principles\[0\]\.name: missing"),
        (lambda r: r["principles"][0].pop("revision_request"), r"principles\[0\]\.revision_request: missing"),
        (lambda r: r["principles"][0].update(critique_request="  "), r"principles\[0\]\.critique_request: expected "
                                                                      "non-blank text"),
        (lambda r: r["principles"][1].pop("comparison"), r"principles\[1\]: has neither"),
        (lambda r: r["principles"][1].update(name="kind"), r"principles\[1\]\.name: 'kind' is used twice"),
        (lambda r: r["principles"].append("just text"), r"principles\[2\]: expected a mapping"),
        (lambda r: r["critique_examples"][0].update(principle="nope"), r"critique_examples\[0\]\.principle: 'nope'"),
        (lambda r: r["critique_examples"][0].pop("principle"), r"critique_examples\[0\]\.critique_request: missing"),
        (lambda r: r["critique_examples"][0].pop("revision"), r"critique_examples\[0\]\.revision: missing"),
        (lambda r: r["critique_examples"][0].update(prompt=[{"role": "robot", "content": "x"}]),
         r"critique_examples\[0\]: prompt\[0\] has role 'robot'"),
        (lambda r: r["comparison_examples"][0].pop("worse"), r"comparison_examples\[0\]\.worse: missing"),
    ],
)
def test_malformed_constitutions_name_the_key(tmp_path, change, message):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(broken(change)))
    with pytest.raises(ConstitutionError, match=message) as caught:
        load_constitution(str(path))
    assert str(caught.value).startswith(str(path))


def test_unreadable_sources_are_clear_errors(tmp_path):
    (tmp_path / "bad.yaml").write_text("principles: [unclosed")
    with pytest.raises(ConstitutionError, match="not valid YAML"):
        load_constitution(str(tmp_path / "bad.yaml"))
    with pytest.raises(ConstitutionError, match="no such file or folder"):
        load_constitution(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConstitutionError, match="holds neither"):
        load_constitution(str(tmp_path))
    with pytest.raises(ConstitutionError, match="the top level: expected a mapping"):
        parse_constitution(["a list"], "inline")


def test_principle_draws_are_seeded_per_example():
    principles = tuple(Principle(f"p{i}", comparison="?") for i in range(8))
    draws = [draw_principles(principles, seed=0, index=i, count=3) for i in range(40)]
    assert draws == [draw_principles(principles, seed=0, index=i, count=3) for i in range(40)]
    assert draws[7] == draw_principles(principles, seed=0, index=7, count=3)  # whatever else is drawn
    assert draws != [draw_principles(principles, seed=1, index=i, count=3) for i in range(40)]
    assert len({p.name for draw in draws for p in draw}) == 8  # every principle is drawn


def test_critique_and_revision_queries_continue_the_conversation():
    principle = Principle("kind", "Critique it.", "Revise it.")
    prompt = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"})
    shot = ({"role": "user", "content": "Yo"}, {"role": "assistant", "content": "Go away."})
    critique = critique_query(prompt, "Go away.", principle, shots=[shot])
    assert [m["content"] for m in critique] == ["Be brief.", "Yo", "Go away.", "Hi", "Go away.", "Critique it."]
    revision = revision_query(critique, "Rude.", principle)
    assert revision[-2:] == ({"role": "assistant", "content": "Rude."}, {"role": "user", "content": "Revise it."})


def test_comparison_queries_alternate_the_few_shot_answers():
    principle = Principle("kind", comparison="Which is kinder?")
    shots = [ComparisonExample(({"role": "user", "content": f"q{i}"},), "nice", "mean") for i in range(3)]
    query = comparison_query(({"role": "user", "content": "Hi"},), "one", "two", principle, shots)
    assert [m["content"] for m in query[1::2]] == [OPTIONS[0], OPTIONS[1], OPTIONS[0]]
    assert "(A) nice\n(B) mean" in query[0]["content"] and "(A) mean\n(B) nice" in query[2]["content"]
    assert query[-1]["content"].endswith("Which is kinder?\n(A) one\n(B) two\n\nAnswer with (A) or (B) only.")
    assert "Human: Hi" in query[-1]["content"]
    reasoning = comparison_query(({"role": "user", "content": "Hi"},), "one", "two", principle, chain_of_thought=True)
    assert "step by step" in reasoning[-1]["content"]
    follow = follow_up_query(reasoning, "Both are fine.")
    assert follow[-2]["content"] == "Both are fine." and follow[-1]["content"].endswith("(A) or (B) only.")
