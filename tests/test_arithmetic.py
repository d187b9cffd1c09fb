"""The synthetic arithmetic task: fixed problems, right answers, steps that add up, no repeats."""

import re
from pathlib import Path

import pytest

from alignkit.config import RLConfig, SFTConfig, load_config
from alignkit.data.arithmetic import SIZE
from alignkit.data.prepare import load_split
from alignkit.data.sources import load_records
from alignkit.errors import DataError
from alignkit.rl.checkers import gsm8k_correct


@pytest.fixture(scope="module")
def solutions():
    return load_records("arithmetic", "steps").records


def test_the_first_problems_are_fixed(solutions):
    first = solutions[0]
    assert first.prompt == ({"role": "user", "content": "What is 7 - 1 - 5?"},)
    assert (first.steps, first.answer) == (("7 - 1 = 6", "6 - 5 = 1"), "1")


def test_every_answer_is_right_and_every_step_follows_from_the_last(solutions):
    assert len(solutions) == SIZE
    for solution in solutions:
        expression = re.fullmatch(r"What is ([1-9](?: [+-] [1-9]){1,2})\?", solution.prompt[0]["content"]).group(1)
        operands = [int(x) for x in expression.split()[::2]]
        value = operands[0]
        assert len(solution.steps) == len(operands) - 1
        for step, operator, operand in zip(solution.steps, expression.split()[1::2], operands[1:], strict=True):
            value = value + operand if operator == "+" else value - operand
            assert value >= 0
            left, result = re.fullmatch(rf"(\d+) \{operator} {operand} = (\d+)", step).groups()
            assert int(result) == value and int(left) == value - operand * (1 if operator == "+" else -1)
        assert solution.answer == str(value)


def test_no_problem_repeats_so_held_out_problems_are_unseen(solutions):
    prompts = [s.prompt[0]["content"] for s in solutions]
    assert len(set(prompts)) == len(prompts)


def test_prompts_and_demonstrations_share_the_answer_the_checker_accepts():
    prompts = load_records("arithmetic", "prompt").records
    demonstrations = load_records("arithmetic", "demonstration").records
    assert prompts[0].answer == "1"
    assert demonstrations[0].messages[1]["content"] == "7 - 1 = 6\n6 - 5 = 1\nThe answer is 1."
    assert all(gsm8k_correct(d.messages[1]["content"], p.answer) for p, d in zip(prompts, demonstrations, strict=True))


def test_a_synthetic_dataset_has_only_a_training_split():
    with pytest.raises(DataError, match="only the split 'train'"):
        load_records("arithmetic", "prompt", split="test")


def test_the_recipe_never_trains_on_a_problem_its_grpo_run_holds_out():
    repo = Path(__file__).resolve().parents[1]
    sft = load_config(SFTConfig, str(repo / "configs/sft-smollm2-arithmetic.yaml"), [])
    grpo = load_config(RLConfig, str(repo / "configs/grpo-smollm2-arithmetic.yaml"), [])
    assert grpo.model.name == f"{sft.output_dir}/model"
    demonstrations, _ = load_split(sft.data, "demonstration", seed=sft.train.seed)
    _, held_out = load_split(grpo.data, "prompt", seed=grpo.train.seed)
    taught = {record.messages[0]["content"] for record, _ in demonstrations}
    assert len(taught) == 48 and len(held_out) == 300
    assert not taught & {record.prompt[0]["content"] for record, _ in held_out}
