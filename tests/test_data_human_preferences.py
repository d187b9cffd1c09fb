"""The published human-preference sets beyond HH (PandaLM, Open Assistant, Auto-J) and AdvBench's
red-team prompts: their adapters on hand-made rows with known answers, and on the real files."""

import json

import pytest

from alignkit.data import human_preferences as hp
from alignkit.data.records import PreferencePair, Prompt, Ranking
from alignkit.data.sources import load_records
from alignkit.errors import DataError, RowDropped


@pytest.fixture(autouse=True)
def local_data(data_dir, monkeypatch):
    monkeypatch.setenv("ALIGNKIT_DATA_DIR", str(data_dir))


def pandalm_row(votes, **extra):
    row = {"idx": 0, "instruction": "Rewrite it.", "input": "Some text.", "response1": "first",
           "response2": "second", **dict(zip(hp.PANDALM_VOTES, votes, strict=True))}
    return {**row, **extra}


@pytest.mark.parametrize(
    ("votes", "chosen", "label"),
    [((1, 1, 1), "first", 1.0), ((2, 2, 1), "second", 2 / 3), ((1, 0, 1), "first", 2.5 / 3)],
)
def test_pandalm_majority_and_soft_label(votes, chosen, label):
    (pair,) = hp.pandalm_preferences(pandalm_row(votes), "t[0]")
    assert pair.chosen == chosen and pair.rejected == ("second" if chosen == "first" else "first")
    assert pair.label == pytest.approx(label)
    assert pair.prompt == ({"role": "user", "content": "Rewrite it.\n\nSome text."},)


def test_pandalm_ties_are_dropped_and_bad_votes_named():
    with pytest.raises(RowDropped, match="majority is a tie"):
        hp.pandalm_preferences(pandalm_row((0, 0, 1)), "t[3]")
    with pytest.raises(DataError, match="no majority"):
        hp.pandalm_preferences(pandalm_row((0, 1, 2)), "t[4]")
    with pytest.raises(DataError, match=r"t\[5\]: field 'annotator2' must be 0 \(tie\), 1 or 2"):
        hp.pandalm_preferences(pandalm_row((1, "1", 1)), "t[5]")
    (pair,) = hp.pandalm_preferences(pandalm_row((2, 2, 2), input=""), "t[6]")
    assert pair.prompt[0]["content"] == "Rewrite it."


def oasst_tree():
    def message(role, text, rank=None, replies=(), deleted=False):
        return {"message_id": text, "role": role, "text": text, "rank": rank, "deleted": deleted,
                "replies": list(replies)}

    deep = message("prompter", "follow-up", replies=[message("assistant", "d1", 1), message("assistant", "d0", 0)])
    return message("prompter", "root question", replies=[
        message("assistant", "a0", 0, replies=[deep]),
        message("assistant", "a2", 2),
        message("assistant", "a1", 1),
        message("assistant", "unranked"),
        message("assistant", "gone", 3, deleted=True),
    ])


def test_oasst_rankings_follow_the_thread_down_the_tree():
    top, nested = hp.oasst_rankings(oasst_tree(), "t:1")
    assert top.prompt == ({"role": "user", "content": "root question"},)
    assert top.responses == ("a0", "a1", "a2") and top.ranks == (1, 2, 3)
    assert nested.prompt == (
        {"role": "user", "content": "root question"},
        {"role": "assistant", "content": "a0"},
        {"role": "user", "content": "follow-up"},
    )
    assert nested.responses == ("d0", "d1")
    pairs = hp.oasst_preferences(oasst_tree(), "t:1")
    assert [(p.chosen, p.rejected) for p in pairs] == [("a0", "a1"), ("a0", "a2"), ("a1", "a2"), ("d0", "d1")]


def test_oasst_tree_without_a_ranked_group_is_dropped():
    lone = {"message_id": "m", "role": "prompter", "text": "hi", "rank": None, "replies": []}
    with pytest.raises(RowDropped, match="no prompter message with two ranked replies"):
        hp.oasst_rankings(lone, "t:2")


def test_autoj_labels_map_to_the_preferred_response():
    row = {"scenario": "x", "prompt": "Q?", "response 1": "one", "response 2": "two"}
    (first,) = hp.autoj_preferences({**row, "label": 0}, "t:1")
    (second,) = hp.autoj_preferences({**row, "label": 1}, "t:2")
    assert (first.chosen, first.rejected) == ("one", "two")
    assert (second.chosen, second.rejected) == ("two", "one")
    with pytest.raises(RowDropped, match="tie"):
        hp.autoj_preferences({**row, "label": 2}, "t:3")
    with pytest.raises(DataError, match="t:4: field 'label' must be 0 \\(response 1\\)"):
        hp.autoj_preferences({**row, "label": 5}, "t:4")


def test_dropped_rows_are_counted_whatever_on_error_says(tmp_path, monkeypatch):
    rows = [pandalm_row((1, 1, 2)), pandalm_row((0, 0, 2)), pandalm_row((2, 2, 0))]
    (tmp_path / "pandalm").mkdir()
    (tmp_path / "pandalm" / "testset-v1.json").write_text(json.dumps(rows))
    monkeypatch.setenv("ALIGNKIT_DATA_DIR", str(tmp_path))
    loaded = load_records("pandalm", "preference")  # on_error="raise": a tie is not an error
    assert [p.chosen for p in loaded.records] == ["first", "second"]
    where = f"{tmp_path / 'pandalm' / 'testset-v1.json'}[row 1]"
    assert loaded.dropped == [(where, "the annotators' majority is a tie")]
    assert loaded.locations[1].endswith("[row 2]")


def test_the_real_files():
    pandalm = load_records("pandalm", "preference", on_error="skip")
    # 999 rows: 105 with a majority of ties are dropped; 58 with an empty reply are skipped (records need text)
    assert (len(pandalm.records), len(pandalm.dropped), len(pandalm.skipped)) == (836, 105, 58)
    assert all(isinstance(p, PreferencePair) and p.label >= 2 / 3 for p in pandalm.records)
    rankings = load_records("oasst-en100", "ranking").records
    assert len(rankings) == 212 and all(isinstance(r, Ranking) for r in rankings)
    assert sum(len(r.responses) * (len(r.responses) - 1) // 2 for r in rankings) == 754
    assert len(load_records("oasst-en100", "preference").records) == 754
    autoj = load_records("autoj-pairwise", "preference", on_error="skip")
    # 1,392 rows: 373 ties dropped, one with an empty response skipped
    assert (len(autoj.records), len(autoj.dropped), len(autoj.skipped)) == (1018, 373, 1)
    advbench = load_records("advbench", "prompt").records
    assert len(advbench) == 520 and all(isinstance(p, Prompt) for p in advbench)
    assert advbench[0].prompt[0]["content"].startswith("Write a script that can exploit vulnerabilities")
