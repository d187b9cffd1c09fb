"""Readers (jsonl, jsonl.gz, parquet, dataset folders) and known-dataset adapters, on real rows."""

import gzip
import itertools
import json
import re

import pytest
from helpers import write_jsonl

from alignkit.data import sources
from alignkit.data.readers import read_rows
from alignkit.data.records import Demonstration, PreferencePair, StepSolution, UnpairedFeedback
from alignkit.data.sources import load_records, parse_hh_dialogue
from alignkit.errors import DataError


@pytest.fixture(scope="module")
def hh_rows(data_dir):
    with gzip.open(data_dir / "hh-rlhf" / "harmless-base.jsonl.gz", "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in itertools.islice(lines, 5)]


@pytest.fixture(autouse=True)
def local_data(data_dir, monkeypatch):
    monkeypatch.setenv("ALIGNKIT_DATA_DIR", str(data_dir))


# ---------------------------------------------------------------- readers


@pytest.mark.parametrize("name", ["small.jsonl", "small.jsonl.gz"])
def test_jsonl_rows_and_line_numbers(tmp_path, hh_rows, name):
    path = tmp_path / name
    write_jsonl(path, hh_rows[:2])
    if name.endswith(".jsonl"):  # a blank line is skipped but still counted
        path.write_text(path.read_text().replace("\n", "\n\n", 1))
    got = list(read_rows(str(path)))
    assert [row for _, row in got] == hh_rows[:2]
    assert [loc for loc, _ in got] == [f"{path}:1", f"{path}:{3 if name.endswith('.jsonl') else 2}"]


def test_parquet_rows(tmp_path, hh_rows):
    import pyarrow
    import pyarrow.parquet

    path = tmp_path / "small.parquet"
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(hh_rows), path)
    got = list(read_rows(str(path)))
    assert [row for _, row in got] == hh_rows
    assert got[4][0] == f"{path}[row 4]"


def test_saved_dataset_folders(tmp_path, hh_rows):
    import datasets

    table = datasets.Dataset.from_list(hh_rows)
    table.save_to_disk(str(tmp_path / "one"))
    datasets.DatasetDict({"train": table, "test": table.select([0])}).save_to_disk(str(tmp_path / "two"))
    assert [row for _, row in read_rows(str(tmp_path / "one"))] == hh_rows
    test_rows = list(read_rows(str(tmp_path / "two"), split="test"))
    assert test_rows == [(f"{tmp_path / 'two'}[row 0]", hh_rows[0])]
    with pytest.raises(DataError, match="no split 'validation' \\(this dataset has: train, test\\)"):
        list(read_rows(str(tmp_path / "two"), split="validation"))


def test_folder_of_data_files(tmp_path, hh_rows):
    folder = tmp_path / "files"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", hh_rows)
    assert [row for _, row in read_rows(str(tmp_path / "files"))] == hh_rows


def test_malformed_lines_name_file_and_line(tmp_path, hh_rows):
    path = write_jsonl(tmp_path / "bad.jsonl", hh_rows[:2])
    path.write_text(path.read_text() + '{"chosen": "x",\n[1, 2]\n')
    with pytest.raises(DataError) as info:
        list(read_rows(str(path)))
    assert str(info.value).startswith(f"{path}:3: not valid JSON")
    assert "expected one JSON object per line" in str(info.value)
    skipped = []
    assert len(list(read_rows(str(path), skipped=skipped))) == 2
    assert skipped[1] == (f"{path}:4", "expected a JSON object per line, got a JSON list")


def test_missing_and_unsupported_sources(tmp_path):
    with pytest.raises(DataError, match="no such file or folder \\(a data source is a .jsonl"):
        list(read_rows(str(tmp_path / "nope.jsonl")))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="unsupported file type"):
        list(read_rows(str(tmp_path / "notes.txt")))
    (tmp_path / "broken.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="broken.jsonl.gz:1: cannot read this line"):
        list(read_rows(str(tmp_path / "broken.jsonl.gz")))


# ---------------------------------------------------------------- load_records on plain files


def test_load_records_from_a_file_and_skip_mode(tmp_path):
    rows = [
        {"prompt": "Q1", "chosen": "good", "rejected": "bad"},
        {"prompt": "Q2", "chosen": "good"},
        {"prompt": "Q3", "chosen": "  ", "rejected": "bad"},
        {"prompt": "Q4", "chosen": "fine", "rejected": "worse", "label": 0.9},
    ]
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    path.write_text(path.read_text() + "{oops\n")
    with pytest.raises(DataError, match=f"{path}:2: missing field 'rejected'"):
        load_records(str(path), "preference")
    loaded = load_records(str(path), "preference", on_error="skip")
    assert [r.prompt[0]["content"] for r in loaded.records] == ["Q1", "Q4"]
    assert [loc for loc, _ in loaded.skipped] == [f"{path}:2", f"{path}:3", f"{path}:5"]
    assert "chosen is empty" in loaded.skipped[1][1] and "not valid JSON" in loaded.skipped[2][1]


def test_load_records_with_nothing_left(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "Q"}])
    with pytest.raises(
        DataError, match="no demonstration records \\(1 rows skipped; first skipped: .*missing field"
    ):
        load_records(str(path), "demonstration", on_error="skip")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no demonstration records \\(0 rows skipped"):
        load_records(str(tmp_path / "empty.jsonl"), "demonstration")
    with pytest.raises(DataError, match="unknown record kind 'sft'"):
        load_records(str(path), "sft")
    with pytest.raises(
        DataError, match="gsm8k: provides 'steps' or 'demonstration' or 'prompt' records, not 'preference'"
    ):
        load_records("gsm8k", "preference")


# ---------------------------------------------------------------- known datasets


def test_alpaca_seed_demonstrations():
    loaded = load_records("alpaca-seed", "demonstration")
    assert len(loaded.records) >= 175 and not loaded.skipped
    first = loaded.records[0].messages
    assert [m["role"] for m in first] == ["user", "assistant"]
    assert first[0]["content"].startswith("Is there anything I can eat for a breakfast")
    with_input = loaded.records[1].messages[0]["content"]
    assert with_input == "What is the relation between the given pairs?\n\nNight : Day :: Right : Left"


def test_alpaca_flat_rows_from_the_hub_copy():
    row = {"instruction": "Add.", "input": "", "output": "Done."}
    (record,) = sources.DATASETS["alpaca-seed"].adapters["demonstration"](row, "tatsu-lab/alpaca[row 0]")
    assert record == Demonstration(
        ({"role": "user", "content": "Add."}, {"role": "assistant", "content": "Done."})
    )


def test_hh_preferences_on_real_rows(hh_rows):
    loaded = load_records("hh-rlhf-harmless", "preference", on_error="skip")
    pair = loaded.records[0]
    assert isinstance(pair, PreferencePair)
    chosen_text = hh_rows[0]["chosen"]
    last = chosen_text.rfind("\n\nAssistant:")
    assert pair.chosen == chosen_text[last + len("\n\nAssistant:") :].strip()
    assert [m["role"] for m in pair.prompt] == ["user", "assistant", "user", "assistant", "user"]
    assert pair.prompt[-1]["content"] == "I feel much better when I get drunk and consume a lot of alcohol."
    assert pair.chosen not in {m["content"] for m in pair.prompt}
    # the real file has 4 empty chosen replies and 3 pairs whose dialogues differ before the final reply
    assert len(loaded.records) + len(loaded.skipped) == 2023
    reasons = [reason for _, reason in loaded.skipped]
    assert sum("chosen reply is empty" in r for r in reasons) == 4
    assert sum("differ before the last 'Assistant:' turn" in r for r in reasons) == 3
    expected = "harmless-base.jsonl.gz:76: chosen reply is empty (expected text after the last 'Assistant:')"
    with pytest.raises(DataError, match=re.escape(expected)):
        load_records("hh-rlhf-harmless", "preference")


def test_hh_demonstrations_and_unpaired(hh_rows):
    demos = load_records("hh-rlhf-harmless", "demonstration", on_error="skip").records
    assert isinstance(demos[0], Demonstration) and len(demos[0].messages) == 6
    assert demos[0].messages[-1]["content"].startswith("Sounds like alcohol is something you use")
    unpaired = load_records("hh-rlhf-harmless", "unpaired", on_error="skip").records
    assert isinstance(unpaired[0], UnpairedFeedback)
    assert [(u.desirable, u.completion[:20]) for u in unpaired[:2]] == [
        (True, "Sounds like alcohol "),
        (False, "I’m glad that you’re"),
    ]


def test_hh_dialogue_parsing_edge_cases():
    prompt, reply = parse_hh_dialogue("\n\nHuman:  hi  there \n\nAssistant:   hello  \n", "x")
    assert prompt == ({"role": "user", "content": "hi  there"},) and reply == "hello"
    prompt, _ = parse_hh_dialogue("\n\nHuman: a  Human: b\n\nAssistant: c", "x")  # inline marker is text
    assert prompt == ({"role": "user", "content": "a  Human: b"},)
    with pytest.raises(DataError, match="must start with 'Human:'"):
        parse_hh_dialogue("Hello\n\nAssistant: c", "x")
    with pytest.raises(DataError, match="must end with an 'Assistant:' turn"):
        parse_hh_dialogue("\n\nHuman: a", "x")


def test_gsm8k_steps_and_demonstrations():
    steps = load_records("gsm8k", "steps").records
    first = steps[0]
    assert isinstance(first, StepSolution) and len(steps) == 7473
    assert first.answer == "72" and first.labels is None
    assert first.steps == (
        "Natalia sold 48/2 = 24 clips in May.",
        "Natalia sold 48+24 = 72 clips altogether in April and May.",
    )
    assert not any("<<" in s or ">>" in s for record in steps for s in record.steps)
    demo = load_records("gsm8k", "demonstration").records[0]
    assert demo.messages[0] == first.prompt[0]
    assert demo.messages[1]["content"] == "\n".join(first.steps) + "\nThe answer is 72."


def test_gsm8k_bad_rows():
    adapter = sources.DATASETS["gsm8k"].adapters["steps"]
    with pytest.raises(DataError, match="x:1: missing field 'answer'"):
        adapter({"question": "Q"}, "x:1")
    with pytest.raises(DataError, match="ending in '#### <final answer>'"):
        adapter({"question": "Q", "answer": "just text"}, "x:1")


def test_known_dataset_falls_back_to_the_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNKIT_DATA_DIR", str(tmp_path))  # no local copies here
    calls = []

    def fake_hub(name, split="train", *, config=None, data_dir=None):
        calls.append((name, split, config, data_dir))
        yield f"{name}[row 0]", {"question": "1+1?", "answer": "1+1=<<1+1=2>>2\n#### 2"}

    monkeypatch.setattr(sources, "read_hub_rows", fake_hub)
    assert load_records("gsm8k", "steps", split="test").records[0].answer == "2"
    monkeypatch.setattr(sources, "data_root", lambda: None)
    with pytest.raises(DataError, match="chosen"):
        load_records("hh-rlhf-harmless", "preference")
    assert calls == [
        ("openai/gsm8k", "test", "main", None),
        ("Anthropic/hh-rlhf", "train", None, "harmless-base"),
    ]


def test_skip_examples_gives_disjoint_training_slices_of_one_split(tmp_path):
    from alignkit.config import DataConfig
    from alignkit.data.prepare import load_split

    rows = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"question {i}"} for i in range(20)])

    def slice_of(skip):
        data = DataConfig(train=str(rows), eval_fraction=0.2, skip_examples=skip, max_examples=6)
        train, evaluation = load_split(data, "prompt", seed=0)
        return [r.prompt[0]["content"] for r, _ in train], [r.prompt[0]["content"] for r, _ in evaluation]

    (first, held_out), (second, same_held_out) = slice_of(0), slice_of(6)
    assert len(first) == len(second) == 6 and not set(first) & set(second)
    assert held_out == same_held_out and not set(held_out) & (set(first) | set(second))


def test_extra_training_data_is_used_whole_and_leaves_the_held_out_split_alone(tmp_path):
    from alignkit.config import DataConfig
    from alignkit.data.prepare import load_split

    rows = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"question {i}"} for i in range(20)])
    extra = write_jsonl(tmp_path / "more.jsonl", [{"prompt": f"more {i}"} for i in range(5)])

    def split(**keys):
        train, evaluation = load_split(DataConfig(train=str(rows), eval_fraction=0.2, **keys), "prompt", seed=0)
        return [r.prompt[0]["content"] for r, _ in train], [r.prompt[0]["content"] for r, _ in evaluation]

    (plain, held_out), (more, same_held_out) = split(max_examples=6), split(max_examples=6, extra_train=[str(extra)])
    assert held_out == same_held_out
    assert more == plain + [f"more {i}" for i in range(5)]


def test_json_array_and_csv_rows(tmp_path):
    array = tmp_path / "rows.json"
    array.write_text(json.dumps([{"a": 1}, {"a": 2}]))
    assert list(read_rows(str(array))) == [(f"{array}[row 0]", {"a": 1}), (f"{array}[row 1]", {"a": 2})]
    lines = tmp_path / "lines.json"
    lines.write_text('{"a": 1}\n{"a": 2}\n')
    with pytest.raises(DataError, match=r"lines.json:2: not valid JSON \(Extra data.*looks like JSON Lines"):
        list(read_rows(str(lines)))
    scalar = tmp_path / "scalar.json"
    scalar.write_text('{"a": 1}')
    with pytest.raises(DataError, match="expected a JSON array of objects, got a JSON dict"):
        list(read_rows(str(scalar)))
    table = tmp_path / "rows.csv"
    table.write_text('goal,target\nfirst,"Sure, here"\nsecond,x\n')
    assert list(read_rows(str(table))) == [
        (f"{table}:2", {"goal": "first", "target": "Sure, here"}),
        (f"{table}:3", {"goal": "second", "target": "x"}),
    ]
    table.write_text("goal,target\nonly-one-field\n")
    with pytest.raises(DataError, match=r"rows.csv:2: expected 2 fields \(goal, target\)"):
        list(read_rows(str(table)))
