"""Atomic file and folder writes: a reader sees the old content or the new, never half of either.

Each writer builds its output under a temporary name in the destination's own folder (so the final
rename stays on one file system) and renames it into place only once it is complete. When writing
raises, the temporary is removed and whatever was at the destination before is left untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``; returns the path.

    The parent folder is created when missing. The data is flushed to disk before the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(path, "tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`); returns the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | Path, obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON (UTF-8, trailing newline) to ``path`` atomically; returns the path.

    ``obj`` is serialised before anything touches the disk, so an unserialisable value leaves no trace.
    """
    text = json.dumps(obj, indent=indent, ensure_ascii=False) + "\n"
    return atomic_write_text(path, text)


def merge_json_key(path: str | Path, key: str, value: Any) -> Path:
    """Set ``key`` of the JSON object in ``path`` (a new object when the file is absent) to ``value``,
    keeping its other keys; written atomically."""
    path = Path(path)
    merged = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    merged[key] = value
    return atomic_write_json(path, merged)


@contextlib.contextmanager
def atomic_directory(final_path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``final_path``; on success it becomes ``final_path``.

    On a clean exit an existing folder at ``final_path`` is replaced: it is renamed aside, the new one
    is renamed in, then the old one is deleted (if the second rename fails the old one is put back).
    On an exception the temporary folder is deleted and ``final_path`` is left as it was.
    """
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(final, "tmp")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        _swap_in(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _temp_sibling(path: Path, kind: str) -> Path:
    """A fresh hidden name beside ``path``.

    Created with ``os.open``/``mkdir`` so the result gets the usual umask permissions (``tempfile``
    would make it private: 0o600 or 0o700).
    """
    return path.with_name(f".{path.name}.{kind}-{uuid.uuid4().hex[:12]}")


def _swap_in(new: Path, final: Path) -> None:
    """Rename ``new`` to ``final``, replacing an existing folder there without ever losing both."""
    if not final.exists():
        os.rename(new, final)
        return
    old = _temp_sibling(final, "old")
    os.rename(final, old)
    try:
        os.rename(new, final)
    except BaseException:
        os.rename(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)
