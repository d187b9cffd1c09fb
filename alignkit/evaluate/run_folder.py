"""Reading back what a run folder holds, for reports and diagnostics.

A run folder (written by ``alignkit sft``, ``rm``, ``dpo`` or ``rl``) holds ``metrics.jsonl`` (one JSON
object per logged step; non-finite values are written as the strings "nan", "inf", "-inf"), usually
``eval.json``, for RL runs ``samples.jsonl``, and the folders that evaluations wrote into it
(``alignkit eval winrate``, ``gsm8k``, ``hacking`` and ``best-of-n`` write ``winrate.json``, ``accuracy.json``,
``hacking.json`` and ``best_of_n.json``, each with a ``samples.jsonl``, into a subfolder of the run by default).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from alignkit.data.readers import read_rows
from alignkit.errors import AlignkitError, DataError

EVALUATION_FILES = {"winrate": "winrate.json", "accuracy": "accuracy.json", "hacking": "hacking.json",
                    "best_of_n": "best_of_n.json"}
"""The report file of each kind of evaluation, by kind."""

_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


@dataclass(frozen=True)
class Evaluation:
    """One evaluation found in a subfolder of a run: its kind (a key of :data:`EVALUATION_FILES`), the
    folder, its report and the rows of its ``samples.jsonl`` ([] when it has none)."""

    kind: str
    folder: Path
    report: dict
    samples: list[dict]


@dataclass(frozen=True)
class RunFolder:
    """What a run folder holds: its metrics rows, eval.json ({} when absent), the RL samples ([] when
    absent) and the evaluations in its subfolders."""

    path: Path
    metrics: list[dict]
    eval: dict = field(default_factory=dict)
    samples: list[dict] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)


def load_run(path: str | Path) -> RunFolder:
    """Everything :class:`RunFolder` lists, read from the run folder at ``path``; a folder of evaluations
    only (eval.json or evaluation subfolders, no ``metrics.jsonl``: the pipeline's eval/) has no metrics
    rows. A missing folder, a folder with neither, and malformed files raise AlignkitError naming the file
    (and line)."""
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise AlignkitError(f"{run_dir}: no such folder (expected a run folder)")
    evaluations = []
    for folder in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        for kind, name in EVALUATION_FILES.items():
            if (folder / name).is_file():
                samples = read_jsonl(folder / "samples.jsonl") if (folder / "samples.jsonl").is_file() else []
                evaluations.append(Evaluation(kind, folder, read_json(folder / name), samples))
    eval_path, samples_path = run_dir / "eval.json", run_dir / "samples.jsonl"
    evaluations_only = not (run_dir / "metrics.jsonl").is_file() and (eval_path.is_file() or evaluations)
    metrics = [] if evaluations_only else read_metrics(run_dir)
    return RunFolder(
        path=run_dir, metrics=metrics,
        eval=read_json(eval_path) if eval_path.is_file() else {},
        samples=read_jsonl(samples_path) if samples_path.is_file() else [],
        evaluations=evaluations,
    )


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The rows of ``run_dir/metrics.jsonl`` in order, with "nan"/"inf"/"-inf" read back as floats. Raises
    AlignkitError when the folder or the file is missing or holds no row, DataError for a malformed line."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AlignkitError(f"{run_dir}: no such folder (expected a run folder)")
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise AlignkitError(f"{run_dir}: no metrics.jsonl (expected a run folder written by alignkit sft, rm, dpo "
                            "or rl; an ensemble's metrics are in its member-i/ folders)")
    rows = [{key: _NON_FINITE.get(value, value) if isinstance(value, str) else value for key, value in row.items()}
            for row in read_jsonl(path)]
    if not rows:
        raise AlignkitError(f"{path}: empty (expected one JSON object per logged step)")
    return rows


def read_jsonl(path: Path) -> list[dict]:
    """Every JSON object of a .jsonl file; a malformed line raises DataError naming the file and line."""
    return [row for _, row in read_rows(str(path))]


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; malformed JSON or another JSON value raises DataError naming the file."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(str(path), f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise DataError(str(path), f"expected a JSON object, got a JSON {type(value).__name__}")
    return value
