"""Raw rows from files, local dataset folders and the Hugging Face hub.

:func:`read_rows` turns a *source* string into ``(location, row)`` pairs, where ``row`` is a plain
dict and ``location`` says where it came from, for error messages:

- ``.jsonl`` / ``.jsonl.gz``: one JSON object per line; blank lines are skipped;
  location ``"path:LINE"`` (1-based line number).
- ``.parquet``: location ``"path[row N]"`` (0-based row index, as ``pandas.DataFrame.iloc``).
- ``.json``: one JSON array of objects; location ``"path[row N]"`` (0-based index in the array).
- ``.csv``: a header line, then one row per line (``csv.DictReader``; every value a string);
  location ``"path:LINE"`` (1-based, the header is line 1).
- a folder written by ``datasets`` (``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``), read with
  ``datasets.load_from_disk``; any other folder is handed to ``datasets.load_dataset(folder)`` (a folder
  of csv/json/parquet files). Location ``"folder[row N]"``.
- anything else is taken as a Hugging Face hub dataset id (``"owner/name"``), read with
  ``datasets.load_dataset(name, split=split)``; location ``"name[row N]"``.

Reading is lazy: rows are yielded as they are read. Every problem with the input raises
:class:`~alignkit.errors.DataError` naming the file and line.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alignkit.errors import DataError

SOURCE_FORMS = (
    "a .jsonl, .jsonl.gz, .json (an array), .csv or .parquet file, a folder saved by the 'datasets' library, "
    "a folder of data files, or a Hugging Face dataset id such as 'owner/name'"
)
FILE_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet", ".json", ".csv")


def read_rows(
    source: str, split: str = "train", *, skipped: list[tuple[str, str]] | None = None
) -> Iterator[tuple[str, dict]]:
    """Yield ``(location, row)`` for every row of ``source`` (see the module doc for the forms).

    ``split`` picks the split of a dataset folder or hub dataset; single files have no splits.
    Malformed jsonl lines raise DataError, unless a ``skipped`` list is given: then each is appended
    to it as ``(location, reason)`` and reading goes on.
    """
    path = Path(source).expanduser()
    if path.is_file():
        if source.endswith((".jsonl", ".jsonl.gz")):
            yield from _jsonl_rows(path, skipped)
        elif source.endswith(".parquet"):
            yield from _parquet_rows(path)
        elif source.endswith(".json"):
            yield from _json_array_rows(path)
        elif source.endswith(".csv"):
            yield from _csv_rows(path)
        else:
            raise DataError(source, f"unsupported file type (expected {', '.join(FILE_SUFFIXES)})")
    elif path.is_dir():
        yield from _folder_rows(path, split)
    elif _looks_like_path(source):
        raise DataError(source, f"no such file or folder (a data source is {SOURCE_FORMS})")
    else:
        yield from read_hub_rows(source, split)


def read_hub_rows(
    name: str, split: str = "train", *, config: str | None = None, data_dir: str | None = None
) -> Iterator[tuple[str, dict]]:
    """Yield ``(location, row)`` from ``datasets.load_dataset(name, config, data_dir=..., split=split)``.

    A failure to load (unknown id, no network, unknown split) becomes a DataError that names the id.
    """
    import datasets

    try:
        table = datasets.load_dataset(name, config, data_dir=data_dir, split=split)
    except Exception as exc:  # the hub client raises many types (network, not found, bad split)
        raise DataError(
            name,
            f"not a local file or folder, and loading it from the Hugging Face hub failed "
            f"({type(exc).__name__}: {exc}); a data source is {SOURCE_FORMS}",
        ) from None
    yield from _table_rows(table, name)


def _looks_like_path(source: str) -> bool:
    """A missing local path rather than a hub id: has a data-file suffix or starts like a path."""
    return source.endswith(FILE_SUFFIXES + (".gz",)) or source.startswith(
        ("/", "./", "../", "~")
    )


def read_jsonl_rows(path: Path, skipped: list | None = None) -> Iterator[tuple[str, dict]]:
    """Rows of a JSON Lines file whatever its name ends in (some published sets call theirs ``.json``)."""
    yield from _jsonl_rows(path, skipped)


def _jsonl_rows(path: Path, skipped: list | None) -> Iterator[tuple[str, dict]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    line_no = 0
    try:
        with opener(path, "rt", encoding="utf-8") as lines:
            for line_no, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                location = f"{path}:{line_no}"
                try:
                    yield location, _parse_object(line, location)
                except DataError as exc:
                    if skipped is None:
                        raise
                    skipped.append((location, exc.problem))
    except (OSError, EOFError, UnicodeDecodeError) as exc:  # bad gzip stream or bad UTF-8
        raise DataError(f"{path}:{line_no + 1}", f"cannot read this line ({exc})") from None


def _parse_object(line: str, location: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(
            location, f"not valid JSON ({exc.msg} at column {exc.colno}); expected one JSON object per line"
        ) from None
    if not isinstance(row, dict):
        raise DataError(location, f"expected a JSON object per line, got a JSON {type(row).__name__}")
    return row


def _json_array_rows(path: Path) -> Iterator[tuple[str, dict]]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        hint = " (it looks like JSON Lines: one object per line)" if exc.msg == "Extra data" else ""
        raise DataError(
            f"{path}:{exc.lineno}", f"not valid JSON ({exc.msg} at column {exc.colno}){hint}; "
            "expected one JSON array of objects in a .json file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(str(path), f"cannot read this file ({exc})") from None
    if not isinstance(rows, list):
        raise DataError(str(path), f"expected a JSON array of objects, got a JSON {type(rows).__name__}")
    for index, row in enumerate(rows):
        location = f"{path}[row {index}]"
        if not isinstance(row, dict):
            raise DataError(location, f"expected a JSON object, got a JSON {type(row).__name__}")
        yield location, row


def _csv_rows(path: Path) -> Iterator[tuple[str, dict]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            for row in reader:
                location = f"{path}:{reader.line_num}"
                if None in row or None in row.values():
                    fields = reader.fieldnames
                    raise DataError(location, f"expected {len(fields)} fields ({', '.join(fields)})")
                yield location, row
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(str(path), f"cannot read this file as CSV ({exc})") from None


def _parquet_rows(path: Path) -> Iterator[tuple[str, dict]]:
    import pyarrow
    import pyarrow.parquet

    try:
        table = pyarrow.parquet.ParquetFile(path)
    except (OSError, pyarrow.ArrowException) as exc:
        raise DataError(str(path), f"not a readable parquet file ({exc})") from None
    index = 0
    for batch in table.iter_batches():
        for row in batch.to_pylist():
            yield f"{path}[row {index}]", row
            index += 1


def _folder_rows(path: Path, split: str) -> Iterator[tuple[str, dict]]:
    import datasets

    saved = (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()
    try:
        table = datasets.load_from_disk(str(path)) if saved else datasets.load_dataset(str(path), split=split)
    except Exception as exc:  # datasets raises many types for unreadable folders
        raise DataError(
            str(path),
            f"cannot read this folder as a dataset ({type(exc).__name__}: {exc}); "
            f"a data source is {SOURCE_FORMS}",
        ) from None
    if isinstance(table, datasets.DatasetDict):
        if split not in table:
            raise DataError(str(path), f"no split '{split}' (this dataset has: {', '.join(table)})")
        table = table[split]
    yield from _table_rows(table, str(path))


def _table_rows(table: Any, name: str) -> Iterator[tuple[str, dict]]:
    for index, row in enumerate(table):
        yield f"{name}[row {index}]", row
