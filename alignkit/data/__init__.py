"""The data layer: raw rows -> typed records -> token sequences -> batches.

- :mod:`~alignkit.data.records`: record kinds and their validation;
- :mod:`~alignkit.data.readers`: rows from jsonl / parquet files, dataset folders and the hub;
- :mod:`~alignkit.data.sources`: known datasets by short name, and :func:`load_records`;
- :mod:`~alignkit.data.tokenize`: chat-template tokenisation with loss masks and truncation;
- :mod:`~alignkit.data.packing` and :mod:`~alignkit.data.collate`: packed rows and padded batches.
"""

from alignkit.data.collate import collate
from alignkit.data.packing import PackedRow, pack_examples
from alignkit.data.readers import read_hub_rows, read_rows
from alignkit.data.records import (
    RECORD_TYPES,
    Demonstration,
    PreferencePair,
    Ranking,
    StepSolution,
    UnpairedFeedback,
    as_messages,
)
from alignkit.data.sources import DATASETS, LoadedRecords, data_root, load_records
from alignkit.data.tokenize import TokenizedExample, tokenize_demonstration, tokenize_prompt

__all__ = [
    "DATASETS",
    "RECORD_TYPES",
    "Demonstration",
    "LoadedRecords",
    "PackedRow",
    "PreferencePair",
    "Ranking",
    "StepSolution",
    "TokenizedExample",
    "UnpairedFeedback",
    "as_messages",
    "collate",
    "data_root",
    "load_records",
    "pack_examples",
    "read_hub_rows",
    "read_rows",
    "tokenize_demonstration",
    "tokenize_prompt",
]
