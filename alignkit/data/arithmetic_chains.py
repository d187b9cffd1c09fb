"""Chained arithmetic with gold step labels: ``data.train: arithmetic-chains``, made in code.

Each problem chains three to six one-digit operands (1-9) with ``+`` and ``-`` (two to five operations),
asked as ``"What is 7 - 1 + 5 - 2?"``, every partial result non-negative. Its solution is one numbered
step per operation, left to right (``"Step 1: 7 - 1 = 6"``), and its answer the value.

For process reward models every problem is shown with one solution whose step labels are known exactly:
half of them (drawn per problem) the right solution, every step labelled right; the other half a
solution with one slip at a drawn step j, whose result is off by 1 to 3 (staying non-negative), the steps
after it computed correctly from the wrong value, as a solver that slipped would go on. Step j is the
first wrong step: the steps before it are labelled right, it is labelled wrong, and the ones after it are
left unlabelled (as :mod:`alignkit.data.step_labels` reads a first wrong step). The answer stays the right
one, so a final-answer check finds every slipped solution wrong.

For outcome reward models every problem also gives one preference pair (``preference`` records): its right
solution over a slipped one, each ending ``The answer is X.`` with the value it reached.

:data:`SIZE` problems, each once, from a fixed seed: the same rows on every machine, with no file to read.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from alignkit.data.arithmetic import distinct_rows

SIZE = 2000
SEED = 0
NAME = "arithmetic-chains"


def chain(rng: random.Random) -> tuple[str, list[tuple[int, str, int]], int]:
    """A problem drawn from ``rng`` (redrawn until every partial result is non-negative): its expression,
    its operations ``(left, operator, operand)`` and its value."""
    while True:
        operands = [rng.randint(1, 9) for _ in range(rng.randint(3, 6))]
        operators = [rng.choice("+-") for _ in operands[1:]]
        value, operations = operands[0], []
        for operator, operand in zip(operators, operands[1:], strict=True):
            operations.append((value, operator, operand))
            value = value + operand if operator == "+" else value - operand
            if value < 0:
                break
        else:
            expression = " ".join([str(operands[0]), *(f"{o} {x}" for o, x in zip(operators, operands[1:],
                                                                                   strict=True))])
            return expression, operations, value


def worked(start: int, operations: list[tuple[int, str, int]], slip_at: int | None = None,
           slip: int = 0) -> list[str]:
    """The numbered steps from ``start`` through the operators and operands of ``operations``; at step
    ``slip_at`` (from 0) the result is off by ``slip`` and the later steps carry it forward."""
    steps, value = [], start
    for k, (_, operator, operand) in enumerate(operations):
        result = value + operand if operator == "+" else value - operand
        result += slip if k == slip_at else 0
        steps.append(f"Step {k + 1}: {value} {operator} {operand} = {result}")
        value = result
    return steps


def chain_row(rng: random.Random) -> dict:
    """One row: the prompt, the right ``solution``, the ``shown`` solution with its ``labels``, the answer,
    and a ``slipped`` solution (the shown one when it slipped, else one slipped by a generator seeded with
    the expression, so that the rows drawn from ``rng`` do not change)."""
    expression, operations, value = chain(rng)
    solution = worked(operations[0][0], operations)
    shown, labels = solution, [1.0] * len(solution)
    if rng.random() < 0.5:
        shown, slip_at = slipped(operations, rng)
        labels = [1.0] * slip_at + [0.0] + [None] * (len(operations) - slip_at - 1)
    wrong = shown if shown is not solution else slipped(operations, random.Random(expression))[0]
    return {"prompt": f"What is {expression}?", "solution": solution, "shown": shown, "labels": labels,
            "answer": str(value), "slipped": wrong}


def slipped(operations: list[tuple[int, str, int]], rng: random.Random) -> tuple[list[str], int]:
    """A solution of ``operations`` with one slip at a step drawn from ``rng``, off by 1 to 3 and staying
    non-negative, carried forward; and the slipped step's index."""
    slip_at = rng.randrange(len(operations))
    left, operator, operand = operations[slip_at]
    right = left + operand if operator == "+" else left - operand
    slips = [d for d in (-3, -2, -1, 1, 2, 3) if right + d >= 0]
    return worked(operations[0][0], operations, slip_at, rng.choice(slips)), slip_at


def chain_rows(size: int = SIZE, seed: int = SEED) -> Iterator[tuple[str, dict]]:
    """``(location, row)`` of the task's first ``size`` distinct problems, location ``arithmetic-chains:<index>``."""
    return distinct_rows(chain_row, NAME, size, seed)
