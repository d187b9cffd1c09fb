"""A synthetic arithmetic task with a known answer and known steps: ``data.train: arithmetic``.

Each problem is an expression of two or three one-digit operands (1-9) joined by ``+`` or ``-``, asked as
``"What is 3 + 8 - 5?"``, every partial result non-negative. Its reference answer is the value, and its
steps are the left-to-right partial results (``"3 + 8 = 11"``, ``"11 - 5 = 6"``), so the same rows serve a
verifiable reward (the final-answer checker of :mod:`alignkit.rl.checkers`), demonstrations and
step-labelled solutions. The problems are drawn from a fixed seed, each one once (a held-out problem is
never also a training problem): :data:`SIZE` rows, the same on every machine, with no file to read.
SmolLM2-135M-Instruct solves some of them and not others, which is what a verifiable reward needs to
teach anything.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

SIZE = 1500
SEED = 0
NAME = "arithmetic"


def problem(rng: random.Random) -> dict:
    """One problem row ``{"prompt", "steps", "answer"}`` drawn from ``rng`` (redrawn until every partial
    result is non-negative)."""
    while True:
        operands = [rng.randint(1, 9) for _ in range(rng.choice((2, 3)))]
        operators = [rng.choice("+-") for _ in operands[1:]]
        value, steps = operands[0], []
        for operator, operand in zip(operators, operands[1:], strict=True):
            result = value + operand if operator == "+" else value - operand
            steps.append(f"{value} {operator} {operand} = {result}")
            value = result
            if value < 0:
                break
        else:
            expression = " ".join([str(operands[0]), *(f"{o} {x}" for o, x in zip(operators, operands[1:],
                                                                                   strict=True))])
            return {"prompt": f"What is {expression}?", "steps": steps, "answer": str(value)}


def arithmetic_rows(size: int = SIZE, seed: int = SEED) -> Iterator[tuple[str, dict]]:
    """``(location, row)`` of the task's first ``size`` distinct problems, location ``arithmetic:<index>``."""
    return distinct_rows(problem, NAME, size, seed)


def distinct_rows(draw: Callable[[random.Random], dict], name: str, size: int,
                  seed: int) -> Iterator[tuple[str, dict]]:
    """``(location, row)`` of the first ``size`` rows that ``draw(rng)`` makes with distinct prompts, from
    ``random.Random(seed)``; location ``<name>:<index>``."""
    rng, seen = random.Random(seed), set()
    while len(seen) < size:
        row = draw(rng)
        if row["prompt"] not in seen:
            yield f"{name}:{len(seen)}", row
            seen.add(row["prompt"])
