"""``alignkit eval prm``: a process reward model's step probabilities against step labels.

The solutions: all of ``--data`` (any source of step labels, e.g. ``mr-ben``), else the held-out split of
the run (rebuilt from its ``config.yaml``). Every solution is scored by :class:`~alignkit.models.process.PRMScorer`
and compared with its labels by :mod:`~alignkit.evaluate.process_metrics`; the two F1 figures get
percentile bootstrap intervals over solutions. The report goes under ``prm_eval`` in the run's eval.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from alignkit.console import console, summary_table
from alignkit.data.sources import load_records
from alignkit.errors import AlignkitError, DataError
from alignkit.evaluate.held_out import held_out_records
from alignkit.evaluate.intervals import bootstrap_interval
from alignkit.evaluate.process_metrics import (
    first_error_found,
    processbench_from,
    step_counts,
    step_metrics_from,
    wrong_step_auroc,
)
from alignkit.io import merge_json_key
from alignkit.models.loading import model_folder
from alignkit.models.process import PRMScorer


def evaluate_process_reward_model(model: str, data: str | None = None, *, threshold: float = 0.5,
                                  max_length: int = 1024, batch_size: int = 8) -> dict:
    """Step accuracy and F1s, and ProcessBench's metric, of the PRM in ``model`` (a run or model folder) on
    the labelled solutions of ``data`` or of the run's held-out split."""
    run_dir = Path(model)
    if data is not None:
        solutions = load_records(data, "steps", on_error="skip").records
    else:
        solutions = held_out_records(run_dir, "steps")
    solutions = [s for s in solutions if s.labels is not None and any(y is not None for y in s.labels)]
    if not solutions:
        raise AlignkitError(f"{data or run_dir}: no solution with step labels to evaluate on")
    scorer = PRMScorer(model_folder(run_dir), batch_size=batch_size, max_length=max_length)
    fitting, tokenised = [], []
    for i, solution in enumerate(solutions):
        try:
            tokenised.append(scorer.tokenise(solution.prompt, solution.steps, f"solution {i}"))
            fitting.append(solution)
        except DataError:
            continue  # too long even with the prompt cut away: counted in skipped_too_long
    if not fitting:
        raise AlignkitError(f"{data or run_dir}: no solution fits in max_length {max_length} tokens")
    probabilities = scorer.scores_of(tokenised)
    labels = [s.labels for s in fitting]
    counts = [step_counts(p, s.labels, threshold) for p, s in zip(probabilities, fitting, strict=True)]
    found = [f for p, s in zip(probabilities, fitting, strict=True)
             if (f := first_error_found(p, s.labels, threshold)) is not None]
    report = {
        "solutions": len(fitting),
        "solutions_from": data if data is not None else f"held-out split of {run_dir}",
        "skipped_too_long": len(solutions) - len(fitting),
        "threshold": threshold,
        **step_metrics_from(counts),
        "wrong_step_f1_interval": bootstrap_interval(
            lambda idx: step_metrics_from([counts[i] for i in idx])["wrong_step_f1"], len(counts)),
        "wrong_step_auroc": wrong_step_auroc(probabilities, labels),
        "wrong_step_auroc_interval": bootstrap_interval(
            lambda idx: wrong_step_auroc([probabilities[i] for i in idx], [labels[i] for i in idx]), len(labels)),
        **processbench_from(found),
        "processbench_f1_interval": bootstrap_interval(
            lambda idx: processbench_from([found[i] for i in idx])["processbench_f1"], len(found)),
    }
    return report


def write_prm_report(run_dir: Path, report: dict) -> Path:
    """Merge ``report`` under ``prm_eval`` into the run's eval.json (atomically) and print it."""
    path = merge_json_key(run_dir / "eval.json", "prm_eval", report)
    console.print(summary_table(f"process reward model: {run_dir}",
                                {k: v for k, v in report.items() if isinstance(v, (int, float))}))
    for name in ("step_accuracy", "wrong_step_f1", "wrong_step_auroc", "erroneous_accuracy", "correct_accuracy",
                 "processbench_f1"):
        low, high = report[f"{name}_interval"]
        console.print(f"  {name} {report[name]:.3f} (95% {low:.3f}-{high:.3f})")
    return path


def label_agreement(labelled: Path) -> dict:
    """Step accuracy and the F1 of the wrong steps of the ``hard_labels`` that ``alignkit prm label`` wrote
    to ``labelled``, against the ``reference_labels`` beside them (the rows that have them); with judge
    labels, the same of the judge's (``judge_`` keys) and the share of steps where judge and rollouts agree."""
    rows = [json.loads(line) for line in labelled.read_text(encoding="utf-8").splitlines()]
    referenced = [row for row in rows if row["reference_labels"] is not None]
    counts = [step_counts(torch.tensor(row["hard_labels"]), row["reference_labels"]) for row in referenced]
    report = {"solutions": len(rows), "with_reference": len(referenced), **step_metrics_from(counts)}
    judged = [row for row in rows if row.get("judge_labels") is not None]
    if judged:
        counts = [step_counts(torch.tensor(row["judge_labels"]), row["reference_labels"])
                  for row in judged if row["reference_labels"] is not None]
        report.update({f"judge_{k}": v for k, v in step_metrics_from(counts).items()})
        pairs = [(h, j) for row in judged for h, j in zip(row["hard_labels"], row["judge_labels"], strict=True)]
        report["judge_rollout_agreement"] = sum((h >= 0.5) == (j >= 0.5) for h, j in pairs) / len(pairs)
    return report
