"""``alignkit eval best-of-n-answers``: best-of-n on problems with a checked answer, choosing by a process
reward model, an outcome reward model or majority vote, against pass@n.

The policy samples N = max(ns) solutions per problem (one generate call, every problem repeated, seeded
with ``generation.seed``); the checker (:func:`~alignkit.rl.checkers.gsm8k_correct`) marks each right or
wrong. For each n, ``best_of_n_answers.json`` holds, with 95% percentile-bootstrap intervals over problems,
the exact estimates of :mod:`alignkit.evaluate.answer_selection` from the N samples:

- ``pass``: some solution of the n is right (the ceiling of any way of choosing);
- ``majority``: the most frequent final answer is right;
- ``prm``: the solution a process reward model scores highest is right, its step probabilities aggregated
  by ``prm_aggregation`` (min by default) over the steps of :func:`~alignkit.rl.steps.solution_steps`;
- ``orm``: the solution an outcome reward model (any ``alignkit rm`` folder) scores highest is right.

At n = 1 every way of choosing is the policy's plain accuracy. ``samples.jsonl`` holds every solution with
its answer, check and scores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich.table import Table

from alignkit.config import GenerationConfig, to_dict
from alignkit.console import console
from alignkit.data.records import Prompt
from alignkit.errors import AlignkitError
from alignkit.evaluate.answer_selection import majority_vote_accuracy, pass_at_n, reranked_accuracy
from alignkit.evaluate.best_of_n_eval import reward_scores
from alignkit.evaluate.document import fmt
from alignkit.evaluate.intervals import bootstrap_interval
from alignkit.evaluate.side_by_side import check_reward_folder, default_device, free_memory, sample_replies, write_rows
from alignkit.io import atomic_write_json
from alignkit.models.loading import model_folder
from alignkit.models.process import AGGREGATIONS, PRMScorer, aggregate
from alignkit.rl.checkers import answer_value, gsm8k_correct
from alignkit.rl.process_rewards import reply_step_probabilities

NO_STEPS_SCORE = -1.0
"""The PRM score of a solution with no steps (or too long to score): below every aggregated probability, so
it is chosen last."""


def evaluate_answer_best_of_n(
    policy: str | Path, problems: list[Prompt], generation: GenerationConfig, ns: list[int],
    out_dir: Path | None, *, prm: str | Path | None = None, prm_aggregation: str = "min",
    orm: str | Path | None = None, batch_size: int = 8, max_length: int = 1024,
    device: str | torch.device | None = None,
) -> dict:
    """Sample, check and score as the module docstring says; return the report (its ``curve`` in increasing
    n). With ``out_dir``, write ``best_of_n_answers.json`` and ``samples.jsonl`` there, atomically. Raises
    AlignkitError for no problems, a problem without an answer, a missing model folder or an unknown
    aggregation, before any model is loaded; ValueError for an n < 1."""
    if not ns or min(ns) < 1:
        raise ValueError(f"ns must be positive integers, got {ns}")
    if not problems or any(p.answer is None for p in problems):
        raise AlignkitError("best-of-n with answers needs problems that all have a reference answer")
    for role, path in (("prm", prm), ("orm", orm)):
        if path is not None:
            check_reward_folder(path, role)
    if prm_aggregation not in AGGREGATIONS:
        raise AlignkitError(f"prm aggregation {prm_aggregation!r}: expected one of {', '.join(AGGREGATIONS)}")
    ns, samples, device = sorted(set(ns)), max(ns), default_device(device)
    prompts = [p.prompt for p in problems for _ in range(samples)]
    start = time.perf_counter()
    replies = [c.text for c in sample_replies(policy, {"solutions": prompts}, generation, device)["solutions"]]
    generation_seconds, start = time.perf_counter() - start, time.perf_counter()
    correct, answers = checked_solutions(problems, replies)
    scores = {}
    if prm is not None:
        scores["prm"] = _prm_scores(prm, prompts, replies, prm_aggregation, batch_size, max_length, device)
    if orm is not None:
        scores["orm"] = reward_scores(orm, prompts, replies, batch_size, max_length, device)
    scores = {name: torch.as_tensor(values, dtype=torch.float64).view(-1, samples) for name, values in scores.items()}
    report = {
        "policy": str(policy), "prm": None if prm is None else str(prm), "prm_aggregation": prm_aggregation,
        "orm": None if orm is None else str(orm), "num_problems": len(problems), "samples_per_problem": samples,
        "no_answer": sum(a is None for row in answers for a in row) / len(replies),
        "curve": answer_curve(correct, answers, scores, ns),
        "generation_seconds": generation_seconds, "scoring_seconds": time.perf_counter() - start,
        "generation": to_dict(generation),
    }
    if out_dir is not None:
        write_rows(Path(out_dir) / "samples.jsonl", _rows(problems, replies, answers, correct, scores))
        atomic_write_json(Path(out_dir) / "best_of_n_answers.json", report)
    return report


def checked_solutions(problems: list[Prompt], replies: list[str]) -> tuple[torch.Tensor, list[list[str | None]]]:
    """``replies`` (N per problem, in problem order) → whether the checker accepts each, (problems, N), and
    each one's canonical final answer (:func:`~alignkit.rl.checkers.answer_value`)."""
    samples = len(replies) // len(problems)
    if samples * len(problems) != len(replies):
        raise ValueError(f"{len(replies)} replies are not the same number for each of {len(problems)} problems")
    correct = torch.tensor([gsm8k_correct(reply, problems[i // samples].answer) for i, reply in enumerate(replies)])
    answers = [[answer_value(r) for r in replies[i:i + samples]] for i in range(0, len(replies), samples)]
    return correct.view(-1, samples), answers


def answer_curve(correct: torch.Tensor, answers: list[list[str | None]], scores: dict[str, torch.Tensor],
                 ns: list[int]) -> list[dict]:
    """For each n: ``pass``, ``majority`` and one entry per scorer of ``scores`` ((problems, N) each, the
    higher the better), each ``{"accuracy", "interval"}`` (:mod:`alignkit.evaluate.answer_selection`)."""
    choosers: dict[str, Callable[[int], torch.Tensor]] = {
        "pass": lambda n: pass_at_n(correct, n),
        "majority": lambda n: majority_vote_accuracy(answers, correct, n),
        **{name: (lambda n, s=s: reranked_accuracy(s, correct, n)) for name, s in scores.items()},
    }
    return [{"n": n, **{name: _estimate(choose(n)) for name, choose in choosers.items()}} for n in ns]


def _prm_scores(path, prompts: list, replies: list[str], aggregation: str, batch_size: int, max_length: int,
                device) -> list[float]:
    """Each reply's aggregated PRM score over its steps (:data:`NO_STEPS_SCORE` without any, or too long)."""
    scorer = PRMScorer(model_folder(Path(path)), batch_size=batch_size, max_length=max_length, device=device)
    probabilities = reply_step_probabilities(scorer, prompts, replies)
    del scorer
    free_memory()
    return [NO_STEPS_SCORE if p is None else aggregate(p, aggregation) for p in probabilities]


def _estimate(per_problem: torch.Tensor) -> dict:
    """The mean over problems and its 95% percentile-bootstrap interval (problems resampled)."""
    values = per_problem.tolist()
    interval = bootstrap_interval(lambda idx: sum(values[i] for i in idx) / len(idx), len(values))
    return {"accuracy": sum(values) / len(values), "interval": interval}


def _rows(problems, replies, answers, correct, scores) -> list[dict]:
    samples = correct.shape[1]
    return [{"prompt": list(p.prompt), "answer": p.answer, "solutions": [
        {"text": replies[i * samples + k], "answer": answers[i][k], "correct": bool(correct[i, k]),
         **{name: float(s[i, k]) for name, s in scores.items()}} for k in range(samples)]}
        for i, p in enumerate(problems)]


def print_answer_best_of_n(report: dict, out_dir: Path | None = None) -> None:
    """Accuracy against n for each way of choosing, with intervals (and where it was written)."""
    names = [name for name in ("pass", "majority", "prm", "orm") if name in report["curve"][0]]
    table = Table(title=f"best-of-n with answers: {report['policy']}, {report['num_problems']} problems")
    table.add_column("n", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for point in report["curve"]:
        table.add_row(str(point["n"]), *(f"{fmt(point[name]['accuracy'])} ({fmt(point[name]['interval'][0])}–"
                                         f"{fmt(point[name]['interval'][1])})" for name in names))
    console.print(table)
    if out_dir is not None:
        console.print(f"wrote {Path(out_dir) / 'best_of_n_answers.json'} and samples.jsonl")
