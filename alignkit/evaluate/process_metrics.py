"""How well a process reward model's step probabilities match step labels: pure functions.

A solution's steps have labels y_k (1 right, 0 wrong, a share in between; None: not labelled) and the
PRM's probabilities p_k. A step is right when y_k ≥ ½ and predicted right when p_k ≥ t (t = ½ unless
said otherwise). Over the labelled steps:

- step accuracy, and the F1 of finding wrong steps, 2·TP / (2·TP + FP + FN) with "wrong" as the positive
  class (the F1 of the right steps beside it); and, free of t, the area under the ROC curve of finding
  wrong steps (how well p ranks wrong steps below right ones);
- ProcessBench's metric (Zheng et al. 2024, "ProcessBench: Identifying Process Errors in Mathematical
  Reasoning"): a solution's first wrong step is the first labelled step with y_k < ½, or -1 when every
  step is labelled right; the predicted one is the first step with p_k < t, or -1. ``erroneous_accuracy``
  is the share of solutions with a wrong step whose first wrong step is found exactly,
  ``correct_accuracy`` the share of right solutions predicted right throughout, and ``processbench_f1``
  their harmonic mean. Solutions whose labels end before a wrong step without reaching the last step
  (neither kind) are left out of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from alignkit.evaluate.intervals import wilson_cc_interval

NO_ERROR = -1
"""The first wrong step of a solution without one."""


def first_error(values: Sequence[float | None], threshold: float = 0.5) -> int | None:
    """The index of the first value under ``threshold``; ``NO_ERROR`` when every value is at or above it;
    None when values run out (None) before either is known."""
    for k, value in enumerate(values):
        if value is None:
            return None
        if value < threshold:
            return k
    return NO_ERROR


def f1(tp: int, fp: int, fn: int) -> float:
    """2·TP / (2·TP + FP + FN); 0 when there is nothing to find and nothing was found."""
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def harmonic_mean(a: float, b: float) -> float:
    return 2 * a * b / (a + b) if a + b else 0.0


def step_counts(probabilities: torch.Tensor, labels: Sequence[float | None],
                threshold: float = 0.5) -> tuple[int, int, int, int]:
    """(TP, FP, FN, TN) of one solution's labelled steps, a wrong step being the positive class."""
    tp = fp = fn = tn = 0
    for prob, label in zip(probabilities.tolist(), labels, strict=True):
        if label is None:
            continue
        wrong, predicted_wrong = label < 0.5, prob < threshold
        tp, fp = tp + (wrong and predicted_wrong), fp + (predicted_wrong and not wrong)
        fn, tn = fn + (wrong and not predicted_wrong), tn + (not wrong and not predicted_wrong)
    return tp, fp, fn, tn


def step_metrics_from(counts: Sequence[tuple[int, int, int, int]]) -> dict:
    """Step accuracy (with its Wilson interval, counting steps as if independent) and the F1 of the wrong
    and of the right steps, from the :func:`step_counts` of every solution."""
    tp, fp, fn, tn = (sum(column) for column in zip(*counts, strict=True)) if counts else (0, 0, 0, 0)
    steps = tp + fp + fn + tn
    return {"steps": steps, "wrong_steps": tp + fn, "step_accuracy": (tp + tn) / steps if steps else 0.0,
            "step_accuracy_interval": list(wilson_cc_interval(tp + tn, steps)) if steps else [0.0, 1.0],
            "wrong_step_f1": f1(tp, fp, fn), "right_step_f1": f1(tn, fn, fp)}


def wrong_step_auroc(probabilities: Sequence[torch.Tensor], labels: Sequence[Sequence[float | None]]) -> float:
    """The chance that a wrong step (label < ½) has a lower probability than a right one, ties counting ½,
    over every pair of labelled steps of the solutions: the area under the ROC curve of finding wrong steps,
    free of any threshold (what ranking solutions needs). ½ when there are no steps of one kind."""
    wrong, right = [], []
    for probs, ys in zip(probabilities, labels, strict=True):
        for p, label in zip(probs.tolist(), ys, strict=True):
            if label is not None:
                (wrong if label < 0.5 else right).append(p)
    if not wrong or not right:
        return 0.5
    w = torch.tensor(wrong, dtype=torch.float64)[:, None]
    r = torch.tensor(right, dtype=torch.float64)[None, :]
    return float(((w < r).double() + 0.5 * (w == r).double()).mean())


def first_error_found(probabilities: torch.Tensor, labels: Sequence[float | None],
                      threshold: float = 0.5) -> tuple[bool, bool] | None:
    """(has a wrong step, its first wrong step predicted exactly) of one solution; None when its labels
    end before telling (module doc)."""
    gold = first_error(labels)
    if gold is None:
        return None
    return gold != NO_ERROR, first_error(probabilities.tolist(), threshold) == gold


def processbench_from(found: Sequence[tuple[bool, bool]]) -> dict:
    """ProcessBench's accuracies on erroneous and on correct solutions, with Wilson intervals and counts,
    and their harmonic mean, from the :func:`first_error_found` of every solution that has one."""
    erroneous = [exact for wrong, exact in found if wrong]
    correct = [exact for wrong, exact in found if not wrong]
    report = {"erroneous_solutions": len(erroneous), "correct_solutions": len(correct)}
    for name, hits in (("erroneous_accuracy", erroneous), ("correct_accuracy", correct)):
        report[name] = sum(hits) / len(hits) if hits else 0.0
        report[f"{name}_interval"] = list(wilson_cc_interval(sum(hits), len(hits))) if hits else [0.0, 1.0]
    report["processbench_f1"] = harmonic_mean(report["erroneous_accuracy"], report["correct_accuracy"])
    return report
