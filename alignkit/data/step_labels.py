"""Step-labelled solutions in their published forms, read as :class:`~alignkit.data.records.StepSolution`.

A StepSolution's own row is ``{"prompt", "steps", "labels", "answer"}``, one label per step: 1 right,
0 wrong, a share in between (a soft label), null for a step nobody labelled. A file of steps may hold any
of these forms instead, told apart by their fields (:func:`step_solutions`):

- **TRL's stepwise supervision**: ``{"prompt", "completions": [step, ...], "labels": [true | false, ...]}``.
- **Ratings, as PRM800K's**: ``{"prompt", "steps", "ratings": [-1 | 0 | 1, ...]}``: +1 (good) and 0 (neutral:
  reasonable, not wrong) are right steps, -1 (bad) a wrong one. TRL's PRM800K script counts neutral steps
  as wrong instead; rewrite the ratings first if that is what you want.
- **PRM800K's own lines**: ``{"question": {"problem", "ground_truth_answer"}, "label": {"steps": [...],
  "finish_reason"}}``: each step is the completion the labeller chose (or wrote, then a right step), and
  the solution ends at the first step rated -1 (``found_error``) or at its end (``solution``). Solutions the
  labeller gave up on or whose problem was flagged (any other ``finish_reason``) are dropped and counted.
- **Math-Shepherd**: ``{"input", "label"}``: every step of ``input`` ends with the tag ``ки``, which ``label``
  replaces by ``+`` (right) or ``-`` (wrong); the question is the text before ``Step 1:``.
- **The first wrong step**: ``{"prompt", "steps", "first_error"}``: the index (from 0) of the first wrong
  step, or null or -1 (ProcessBench's value) when every step is right. The steps before it are right, it is
  wrong, and the steps after it are not labelled.

Two human-labelled sets of the last kind have named adapters, registered in :mod:`alignkit.data.sources`:
MR-Ben's maths solutions (:func:`mr_ben_solutions`) and BIG-Bench Mistake (:func:`big_bench_mistake_solutions`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from alignkit.data.readers import read_jsonl_rows
from alignkit.data.records import StepSolution, typed_field
from alignkit.errors import DataError, RowDropped

RATING_LABELS = {1: 1.0, 0: 1.0, -1: 0.0}
"""PRM800K's rating of a step (good, neutral, bad) → the step's label."""

SHEPHERD_TAG = "ки"
"""The tag that ends each step of a Math-Shepherd ``input``."""

SHEPHERD_MARKS = {"+": 1.0, "-": 0.0}
"""Math-Shepherd's label in the tag's place → the step's label."""

FIRST_STEP = re.compile(r"[Ss]tep 1:")

MR_BEN_STEP = re.compile(r"\s*S?tep\s*(\d+)\s*:")
"""An MR-Ben line that opens step N (three lines of the set lack the ``S``)."""


def step_solutions(row: dict, location: str) -> list[StepSolution]:
    """The StepSolution of a row in any form of the module doc."""
    return [StepSolution.from_row(own_form(row, location), location)]


def own_form(row: dict, location: str) -> dict:
    """``row`` rewritten as StepSolution's own row form, by the fields that tell its form."""
    if "completions" in row:
        return {"prompt": row.get("prompt"), "steps": row["completions"], "labels": row.get("labels"),
                **_answer(row)}
    if "ratings" in row:
        return rated_steps(row, location)
    if "first_error" in row:
        return first_error_steps(row, location)
    if isinstance(row.get("question"), dict) and isinstance(row.get("label"), dict):
        return prm800k_steps(row, location)
    if "input" in row and isinstance(row.get("label"), str):
        return math_shepherd_steps(row, location)
    return row


def _answer(row: dict) -> dict:
    return {"answer": row["answer"]} if row.get("answer") is not None else {}


def rated_steps(row: dict, location: str) -> dict:
    """``{"prompt", "steps", "ratings"}`` → labels by :data:`RATING_LABELS`."""
    ratings = typed_field(row, "ratings", list, location, "a list of -1, 0 or 1 per step")
    if any(isinstance(r, bool) or r not in RATING_LABELS for r in ratings):
        raise DataError(location, f"ratings must be -1 (bad), 0 (neutral) or 1 (good) per step, got {ratings!r:.80}")
    return {"prompt": row.get("prompt"), "steps": row.get("steps"), "labels": [RATING_LABELS[r] for r in ratings],
            **_answer(row)}


def first_error_steps(row: dict, location: str) -> dict:
    """``{"prompt", "steps", "first_error"}`` → right steps before the first wrong one, unlabelled after it."""
    steps = typed_field(row, "steps", list, location, "a list of steps")
    first = row["first_error"]
    if first is None or first == -1:
        labels = [1.0] * len(steps)
    elif isinstance(first, int) and not isinstance(first, bool) and 0 <= first < len(steps):
        labels = [1.0] * first + [0.0] + [None] * (len(steps) - first - 1)
    else:
        raise DataError(location, f"first_error must be the index (from 0) of one of the {len(steps)} steps, or null "
                                  f"or -1 when no step is wrong, got {first!r:.40}")
    return {"prompt": row.get("prompt"), "steps": steps, "labels": labels, **_answer(row)}


def prm800k_steps(row: dict, location: str) -> dict:
    """One line of PRM800K's own files → the rated steps of the solution the labeller followed (module doc)."""
    question, label = row["question"], row["label"]
    reason = label.get("finish_reason")
    if reason not in ("solution", "found_error"):
        raise RowDropped(location, f"finish_reason {reason!r}: the labeller did not finish this solution")
    steps, ratings = [], []
    for i, step in enumerate(typed_field(label, "steps", list, location, "PRM800K's list of labelled steps")):
        where = f"label.steps[{i}]"
        completions, chosen = step.get("completions") or [], step.get("chosen_completion")
        if chosen is not None:
            if not isinstance(chosen, int) or not 0 <= chosen < len(completions):
                raise DataError(location, f"{where}.chosen_completion {chosen!r} is not one of its "
                                          f"{len(completions)} completions")
            picked, rating = completions[chosen], completions[chosen].get("rating")
        elif step.get("human_completion") is not None:
            picked, rating = step["human_completion"], 1
        else:
            picked = next((c for c in completions if c.get("rating") == -1), None)
            if picked is None:
                raise DataError(location, f"{where}: no chosen completion, no human completion and none rated -1")
            rating = -1
        steps.append(typed_field(picked, "text", str, f"{location} {where}", "the step's text"))
        ratings.append(rating)
        if rating == -1:
            break
    problem = typed_field(question, "problem", str, f"{location} question", "the problem's text")
    answer = question.get("ground_truth_answer")
    return rated_steps({"prompt": problem, "steps": steps, "ratings": ratings, "answer": answer}, location)


def math_shepherd_steps(row: dict, location: str) -> dict:
    """``{"input", "label"}`` of Math-Shepherd → the question, its steps and their +/- labels."""
    text = typed_field(row, "input", str, location, "the question and its steps, each ending with 'ки'")
    marked = typed_field(row, "label", str, location, "the input with '+' or '-' in place of each 'ки'")
    pieces = text.split(SHEPHERD_TAG)
    if len(pieces) < 2 or pieces[-1].strip():
        raise DataError(location, f"input must end its last step with the tag {SHEPHERD_TAG!r}")
    ends = [sum(len(piece) + 1 for piece in pieces[:k + 1]) - 1 for k in range(len(pieces) - 1)]
    if len(marked) < ends[-1] + 1 or any(marked[end] not in SHEPHERD_MARKS for end in ends):
        raise DataError(location, f"label must be the input with '+' or '-' in place of each {SHEPHERD_TAG!r} "
                                  f"(at characters {ends[:5]}{'...' if len(ends) > 5 else ''})")
    found = FIRST_STEP.search(pieces[0])
    if found is None:
        raise DataError(location, "input has no 'Step 1:' after the question")
    steps = [pieces[0][found.start():].strip()] + [piece.strip() for piece in pieces[1:-1]]
    return {"prompt": pieces[0][:found.start()].strip(), "steps": steps,
            "labels": [SHEPHERD_MARKS[marked[end]] for end in ends]}


# ---------------------------------------------------------------- MR-Ben


def mr_ben_rows(path: Path, skipped: list | None = None) -> Iterator[tuple[str, dict]]:
    """MR-Ben's file: one JSON object mapping each question's id to its list of sampled solutions; one row
    per solution, located as ``file[question id][index]``."""
    try:
        questions = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(str(path), f"cannot read MR-Ben's JSON object of questions ({exc})") from None
    if not isinstance(questions, dict):
        raise DataError(str(path), f"expected a JSON object mapping question ids to solutions, got "
                                   f"{type(questions).__name__}")
    for question_id, solutions in questions.items():
        for index, solution in enumerate(solutions if isinstance(solutions, list) else [solutions]):
            location = f"{path}[{question_id}][{index}]"
            if isinstance(solution, dict):
                yield location, solution
            elif skipped is None:
                raise DataError(location, f"expected a solution object, got {type(solution).__name__}")
            else:
                skipped.append((location, f"expected a solution object, got {type(solution).__name__}"))


def mr_ben_solutions(row: dict, location: str) -> list[StepSolution]:
    """An MR-Ben solution: its ``Step N:`` lines as steps (a line without the prefix joins the step above
    it), labelled by the first wrong step that people marked; the question with its options as the prompt,
    the right option's letter as the answer."""
    lines = typed_field(row, "Model_Solution_Steps", list, location, "a list of lines")
    steps: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        if not isinstance(line, str):
            raise DataError(location, f"Model_Solution_Steps[{i}] must be a string, got {type(line).__name__}")
        opens = MR_BEN_STEP.match(line)
        if opens:
            steps.append((int(opens.group(1)), line))
        elif steps:
            steps[-1] = (steps[-1][0], f"{steps[-1][1]}\n{line}")
        else:
            raise DataError(location, f"Model_Solution_Steps must open with a 'Step 1:' line, got {line!r:.60}")
    correct = typed_field(row, "Model_Solution_Correctness", str, location, "'correct' or 'incorrect'")
    marked = typed_field(row, "Model_Solution_First_Error_Step", str, location, "a step number or 'N/A'")
    if (correct == "correct") != (marked == "N/A"):
        raise DataError(location, f"Model_Solution_Correctness {correct!r} but first error step {marked!r}")
    numbers = [number for number, _ in steps]
    if marked != "N/A" and (not marked.isdigit() or int(marked) not in numbers):
        raise DataError(location, f"first error step {marked!r} is not one of the solution's steps {numbers}")
    question = typed_field(row, "Question", str, location, "the question")
    options = typed_field(row, "Options", str, location, "the options, one per line")
    own = {"prompt": f"{question}\n{options}", "steps": [text for _, text in steps],
           "first_error": None if marked == "N/A" else numbers.index(int(marked)),
           "answer": typed_field(row, "Ground_Truth_Answer", str, location, "the right option's letter")}
    return step_solutions(own, location)


# ---------------------------------------------------------------- BIG-Bench Mistake


def big_bench_mistake_rows(path: Path, skipped: list | None = None) -> Iterator[tuple[str, dict]]:
    """The rows of every task file (``*.jsonl``) of a BIG-Bench Mistake folder, tasks in name order, or of
    one task file."""
    for file in sorted(path.glob("*.jsonl")) if path.is_dir() else [path]:
        yield from read_jsonl_rows(file, skipped)


def big_bench_mistake_solutions(row: dict, location: str) -> list[StepSolution]:
    """A BIG-Bench Mistake trace: ``input`` as the prompt, ``steps`` labelled by ``mistake_index`` (from 0;
    null: no mistake), ``target`` as the answer (the trace's own ``answer`` may differ). Blank steps (one
    ``dyck_languages`` trace has one, after its mistake) are left out, the mistake's index following."""
    if "mistake_index" not in row:
        raise DataError(location, "missing field 'mistake_index' (expected the index of the first mistaken step "
                                  "or null)")
    steps, mistake = typed_field(row, "steps", list, location, "a list of steps"), row["mistake_index"]
    blank = [i for i, step in enumerate(steps) if isinstance(step, str) and not step.strip()]
    if isinstance(mistake, int) and not isinstance(mistake, bool):
        if mistake in blank:
            raise DataError(location, f"mistake_index {mistake} marks a blank step")
        mistake -= sum(i < mistake for i in blank)
    own = {"prompt": row.get("input"), "steps": [step for i, step in enumerate(steps) if i not in blank],
           "first_error": mistake, "answer": row.get("target")}
    return step_solutions(own, location)
