"""The chained arithmetic task: right solutions that add up, slipped ones with exactly one wrong step
where the labels say, answers that are the expression's value, no repeats."""

import re

from alignkit.data.arithmetic_chains import SIZE, chain_rows
from alignkit.data.sources import load_records

STEP = re.compile(r"Step (\d+): (-?\d+) ([+-]) (\d+) = (-?\d+)$")  # a carried slip may go negative


def parsed(steps):
    rows = [STEP.match(step) for step in steps]
    assert all(rows), steps
    return [(int(m[1]), int(m[2]), m[3], int(m[4]), int(m[5])) for m in rows]


def value_of(question: str) -> int:
    tokens = question.removeprefix("What is ").removesuffix("?").split()
    value = int(tokens[0])
    for operator, operand in zip(tokens[1::2], tokens[2::2], strict=True):
        value = value + int(operand) if operator == "+" else value - int(operand)
    return value


def test_every_solution_chains_and_only_the_labelled_step_is_wrong():
    solutions = load_records("arithmetic-chains", "steps").records
    assert len(solutions) == SIZE and len({s.prompt[0]["content"] for s in solutions}) == SIZE
    slipped = 0
    for solution in solutions:
        steps = parsed(solution.steps)
        assert 2 <= len(steps) <= 5 and [n for n, *_ in steps] == list(range(1, len(steps) + 1))
        assert all(steps[k][1] == steps[k - 1][4] for k in range(1, len(steps)))  # it starts where the last ended
        exact = [a + b if op == "+" else a - b for _, a, op, b, _ in steps]
        wrong = [k for k, (*_, r) in enumerate(steps) if r != exact[k]]
        assert solution.answer == str(value_of(solution.prompt[0]["content"]))
        if not wrong:
            assert solution.labels == (1.0,) * len(steps) and steps[-1][4] == int(solution.answer)
            continue
        slipped += 1
        [j] = wrong
        assert solution.labels == (1.0,) * j + (0.0,) + (None,) * (len(steps) - j - 1)
        assert 1 <= abs(steps[j][4] - exact[j]) <= 3
        assert steps[-1][4] != int(solution.answer)  # a slip carried forward ends wrong
    assert 0.45 * SIZE < slipped < 0.55 * SIZE


def test_demonstrations_and_prompts_use_the_right_solution():
    demonstrations = load_records("arithmetic-chains", "demonstration").records
    prompts = load_records("arithmetic-chains", "prompt").records
    first = demonstrations[0].messages[-1]["content"].splitlines()
    assert first[-1] == f"The answer is {prompts[0].answer}." and parsed(first[:-1])
    assert prompts[0].answer == str(value_of(prompts[0].prompt[0]["content"]))
    assert [row for _, row in zip(range(3), chain_rows(), strict=False)] == [row for _, row in zip(
        range(3), chain_rows(), strict=False)]  # the same rows every time


def test_outcome_pairs_put_the_right_solution_over_a_slipped_one_for_every_problem():
    pairs = load_records("arithmetic-chains", "preference").records
    prompts = load_records("arithmetic-chains", "prompt").records
    assert [p.prompt for p in pairs] == [p.prompt for p in prompts]  # one per problem: every kind splits alike
    for pair, problem in zip(pairs, prompts, strict=True):
        chosen, rejected = pair.chosen.splitlines(), pair.rejected.splitlines()
        assert chosen[-1] == f"The answer is {problem.answer}."
        steps = parsed(rejected[:-1])
        wrong = [k for k, (_, a, op, b, r) in enumerate(steps) if r != (a + b if op == "+" else a - b)]
        assert len(wrong) == 1 and rejected[-1] == f"The answer is {steps[-1][4]}." != chosen[-1]
        assert len(steps) == len(parsed(chosen[:-1]))
