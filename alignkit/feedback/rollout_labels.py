"""Step labels from rollouts (Math-Shepherd, Wang et al. 2024): ``alignkit prm label``.

For step k of a solution with a reference answer, the policy completes the solution N times from the
prompt and steps 1..k (each prefix ends with the step separator); every completion, read after the steps
it continues, is checked against the answer by the final-number checker
(:func:`~alignkit.rl.checkers.gsm8k_correct`). The step's hard label is 1 when any completion is right
(the step can still lead to the answer), its soft label the share that are (:func:`shepherd_labels`).

Solutions are written one per line, in StepSolution's own form with the chosen ``labels`` and both kinds
beside them, as each is done: a rerun with the same output continues after the last whole line
(resumable; a line cut short by a crash is dropped). Where the source has labels of its own (gold, or
people's), they are kept as ``reference_labels``, and the agreement of the hard labels with them is
reported (:func:`alignkit.evaluate.process_eval.label_agreement`). An AI judge's labels, and the steps
where judge and rollouts agree, can be written beside them (:mod:`alignkit.feedback.step_judge`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from alignkit.config import GenerationConfig
from alignkit.console import console, progress
from alignkit.data.records import StepSolution
from alignkit.data.sources import load_records
from alignkit.data.tokenize import tokenize_prompt
from alignkit.errors import AlignkitError, DataError
from alignkit.feedback.backends import FeedbackBackend
from alignkit.feedback.step_judge import consensus_labels, judge_step_labels
from alignkit.rl.checkers import gsm8k_correct
from alignkit.rl.generation import GenerationBackend

LABEL_KINDS = ("hard", "soft", "judge", "consensus")
"""What goes under ``labels``: the rollouts' hard or soft labels, the judge's P(yes), or the hard labels
where the judge agrees (:func:`~alignkit.feedback.step_judge.consensus_labels`)."""


def shepherd_labels(outcomes: Sequence[Sequence[bool]]) -> tuple[list[float], list[float]]:
    """Per step, from whether each of its completions reached the answer: the hard label (1 when any did)
    and the soft label (the share that did)."""
    if any(not step for step in outcomes):
        raise ValueError("every step needs at least one completion")
    return [1.0 if any(step) else 0.0 for step in outcomes], [sum(step) / len(step) for step in outcomes]


def rollout_outcomes(generator: GenerationBackend, tokenizer, solution: StepSolution, samples: int,
                     generation: GenerationConfig, separator: str = "\n") -> list[list[bool]]:
    """For each step k, whether each of ``samples`` completions from the prompt and steps 1..k reaches the
    solution's answer."""
    prompt_ids = tokenize_prompt(solution.prompt, tokenizer)
    prefixes = [separator.join(solution.steps[:k + 1]) + separator for k in range(len(solution.steps))]
    rows = [prompt_ids + tokenizer(prefix, add_special_tokens=False)["input_ids"]
            for prefix in prefixes for _ in range(samples)]
    completions = generator.generate_ids(rows, generation)
    return [[gsm8k_correct(prefix + completions[k * samples + j].text, solution.answer) for j in range(samples)]
            for k, prefix in enumerate(prefixes)]


def written_lines(out: Path) -> int:
    """How many whole lines ``out`` holds (0 when absent); a last line cut short is cut off the file."""
    if not out.is_file():
        return 0
    data = out.read_bytes()
    whole = data[:data.rfind(b"\n") + 1]
    if len(whole) < len(data):
        out.write_bytes(whole)
    return whole.count(b"\n")


def label_solutions(generator: GenerationBackend, tokenizer, source: str, out: Path, *, samples: int,
                    generation: GenerationConfig, labels: str = "hard", separator: str = "\n",
                    limit: int | None = None, judge: FeedbackBackend | None = None) -> Path:
    """Label every step of the first ``limit`` solutions of ``source`` (all by default) from rollouts and
    append them to ``out`` (module doc); with ``judge``, its P(yes) of each step too (``judge_labels``,
    :mod:`alignkit.feedback.step_judge`); ``labels`` picks what goes under ``labels`` (:data:`LABEL_KINDS`).
    Returns ``out``."""
    if labels not in LABEL_KINDS:
        raise AlignkitError(f"labels {labels!r}: expected one of {', '.join(LABEL_KINDS)}")
    if labels in ("judge", "consensus") and judge is None:
        raise AlignkitError(f"labels {labels!r} need a judge (a feedback model)")
    loaded = load_records(source, "steps")
    solutions = list(zip(loaded.records, loaded.locations, strict=True))[:limit]
    for solution, where in solutions:
        if solution.answer is None:
            raise DataError(where, "no answer to check completions against (expected an 'answer')")
    done = written_lines(out)
    if done > len(solutions):
        raise AlignkitError(f"{out}: holds {done} solutions, more than the {len(solutions)} asked for; use another "
                            "output file")
    if done:
        console.print(f"{out}: {done} solutions already labelled; continuing with solution {done + 1}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as sink, progress("labelling steps from rollouts",
                                                          len(solutions) - done) as advance:
        for solution, _ in solutions[done:]:
            hard, soft = shepherd_labels(rollout_outcomes(generator, tokenizer, solution, samples, generation,
                                                          separator))
            judged = None if judge is None else judge_step_labels(judge, solution, generation)
            kinds = {"hard": hard, "soft": soft, "judge": judged,
                     "consensus": None if judged is None else consensus_labels(hard, judged)}
            row = {"prompt": list(solution.prompt), "steps": list(solution.steps), "answer": solution.answer,
                   "labels": kinds[labels], "hard_labels": hard, "soft_labels": soft, "judge_labels": judged,
                   "samples": samples, "reference_labels": list(solution.labels) if solution.labels else None}
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            advance(1)
    return out

