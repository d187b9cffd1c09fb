"""Atomic writes: complete new content or the old content, never a partial file or folder."""

import json
import os

import pytest

from alignkit.io import atomic_directory, atomic_write_bytes, atomic_write_json, atomic_write_text, merge_json_key


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_text_writes_and_replaces(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    assert atomic_write_text(path, "first") == path
    atomic_write_text(path, "second")
    assert path.read_text() == "second"
    assert _names(path.parent) == ["out.txt"]


def test_atomic_write_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # the write itself raises, after the temp file exists
    assert path.read_text() == "old"
    assert _names(tmp_path) == ["out.txt"]


def test_atomic_write_json_roundtrip_and_unserialisable_leaves_nothing(tmp_path):
    path = tmp_path / "obj.json"
    atomic_write_json(path, {"a": [1, 2], "b": "é"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": [1, 2], "b": "é"}
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "bad.json", {"x": object()})
    assert _names(tmp_path) == ["obj.json"]


def test_atomic_directory_creates_new_folder(tmp_path):
    final = tmp_path / "model"
    with atomic_directory(final) as tmp:
        assert tmp.is_dir() and tmp.parent == tmp_path and tmp != final
        (tmp / "weights.bin").write_text("new")
        assert not final.exists()
    assert (final / "weights.bin").read_text() == "new"
    assert _names(tmp_path) == ["model"]


def test_atomic_directory_replaces_existing_folder_on_success(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "stale.bin").write_text("old")
    with atomic_directory(final) as tmp:
        (tmp / "weights.bin").write_text("new")
    assert _names(final) == ["weights.bin"]
    assert _names(tmp_path) == ["model"]


def test_atomic_directory_failure_keeps_existing_folder(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "weights.bin").write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_directory(final) as tmp:
        (tmp / "weights.bin").write_text("half")
        raise RuntimeError("boom")
    assert (final / "weights.bin").read_text() == "old"
    assert _names(tmp_path) == ["model"]


def test_atomic_directory_failure_without_existing_folder_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "model") as tmp:
        (tmp / "part").write_text("x")
        raise RuntimeError("boom")
    assert _names(tmp_path) == []


def test_atomic_directory_failed_swap_puts_old_folder_back(tmp_path, monkeypatch):
    final = tmp_path / "model"
    final.mkdir()
    (final / "weights.bin").write_text("old")
    real_rename = os.rename
    calls = []

    def rename(src, dst):
        calls.append(src)
        if len(calls) == 2:  # moving the new folder in
            raise OSError("disk trouble")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="disk trouble"), atomic_directory(final) as tmp:
        (tmp / "weights.bin").write_text("new")
    assert (final / "weights.bin").read_text() == "old"
    assert _names(tmp_path) == ["model"]


def test_merging_a_key_keeps_the_others_and_makes_a_missing_file(tmp_path):
    path = tmp_path / "eval.json"
    merge_json_key(path, "rm_eval", {"accuracy": 0.6})
    assert json.loads(path.read_text()) == {"rm_eval": {"accuracy": 0.6}}
    path.write_text(json.dumps({"step": 3, "rm_eval": {"accuracy": 0.6}}))
    merge_json_key(path, "prm_eval", [1, 2])
    assert json.loads(path.read_text()) == {"step": 3, "rm_eval": {"accuracy": 0.6}, "prm_eval": [1, 2]}
