"""Step labels in their published forms (alignkit.data.step_labels): each form read by hand-made rows,
their bad inputs, and the two human-labelled sets by name."""

import pytest
from helpers import write_jsonl

from alignkit.data.sources import load_records
from alignkit.data.step_labels import big_bench_mistake_solutions, mr_ben_solutions, step_solutions
from alignkit.errors import DataError, RowDropped

WHERE = "steps.jsonl:3"


def solution(row):
    [record] = step_solutions(row, WHERE)
    return record


def problem(read, row) -> str:
    with pytest.raises(DataError) as caught:
        read(row, WHERE)
    assert caught.value.location == WHERE
    return caught.value.problem


def test_trl_stepwise_rows():
    record = solution({"prompt": "2 + 3 * 4?", "completions": ["3 * 4 = 12", "2 + 12 = 15"], "labels": [True, False]})
    assert record.steps == ("3 * 4 = 12", "2 + 12 = 15") and record.labels == (1.0, 0.0)
    assert record.prompt == ({"role": "user", "content": "2 + 3 * 4?"},)


def test_ratings_count_neutral_steps_as_right():
    record = solution({"prompt": "Q", "steps": ["a", "b", "c"], "ratings": [1, 0, -1], "answer": "7"})
    assert record.labels == (1.0, 1.0, 0.0) and record.answer == "7"
    assert "-1 (bad), 0 (neutral) or 1 (good)" in problem(step_solutions, {"prompt": "Q", "steps": ["a"],
                                                                           "ratings": [2]})
    assert "-1 (bad), 0 (neutral) or 1 (good)" in problem(step_solutions, {"prompt": "Q", "steps": ["a"],
                                                                           "ratings": [True]})


def test_the_first_wrong_step_leaves_the_steps_after_it_unlabelled():
    row = {"prompt": "Q", "steps": ["a", "b", "c", "d"]}
    assert solution({**row, "first_error": 1}).labels == (1.0, 0.0, None, None)
    assert solution({**row, "first_error": 0}).labels == (0.0, None, None, None)
    assert solution({**row, "first_error": None}).labels == solution({**row, "first_error": -1}).labels == (1.0,) * 4
    for bad in (4, -2, True, "1"):
        assert "index (from 0) of one of the 4 steps" in problem(step_solutions, {**row, "first_error": bad})


def prm800k_line(finish_reason, steps):
    return {"labeler": "x", "question": {"problem": "What is 6 * 7?", "ground_truth_answer": "42"},
            "label": {"steps": steps, "finish_reason": finish_reason}}


def test_prm800k_lines_follow_the_chosen_completions_to_the_first_bad_step():
    steps = [
        {"completions": [{"text": "6 * 7 = 41", "rating": -1}, {"text": "6 * 7 = 42", "rating": 1}],
         "human_completion": None, "chosen_completion": 1},
        {"completions": [{"text": "So the answer is 42.", "rating": 0}], "human_completion": None,
         "chosen_completion": 0},
    ]
    record = solution(prm800k_line("solution", steps))
    assert record.steps == ("6 * 7 = 42", "So the answer is 42.") and record.labels == (1.0, 1.0)
    assert record.answer == "42" and record.prompt[0]["content"] == "What is 6 * 7?"
    written = {"completions": [{"text": "Six sevens.", "rating": -1}], "chosen_completion": None,
               "human_completion": {"text": "Six times seven is 42.", "rating": None}}
    found = [written, {"completions": [{"text": "Add 1: 43.", "rating": 1}, {"text": "It is 40.", "rating": -1}],
                       "human_completion": None, "chosen_completion": None}]
    record = solution(prm800k_line("found_error", found))
    assert record.steps == ("Six times seven is 42.", "It is 40.") and record.labels == (1.0, 0.0)
    with pytest.raises(RowDropped, match="give_up"):
        step_solutions(prm800k_line("give_up", steps), WHERE)
    stuck = [{"completions": [{"text": "a", "rating": 1}], "human_completion": None, "chosen_completion": None}]
    assert "none rated -1" in problem(step_solutions, prm800k_line("found_error", stuck))
    assert "not one of its 2 completions" in problem(step_solutions, prm800k_line(
        "solution", [{**steps[0], "chosen_completion": 5}]))


def test_math_shepherd_rows_split_at_the_tag_and_read_its_mark():
    text = ("Tom has 3 apples and buys 2. How many? Step 1: 3 + 2 = 5 ки\nStep 2: He has 6. ки\n"
            "Step 3: The answer is: 6 ки")
    label = text.replace("5 ки", "5 +").replace("6. ки", "6. -").replace("6 ки", "6 -")
    record = solution({"input": text, "label": label, "task": "GSM8K"})
    assert record.prompt[0]["content"] == "Tom has 3 apples and buys 2. How many?"
    assert record.steps == ("Step 1: 3 + 2 = 5", "Step 2: He has 6.", "Step 3: The answer is: 6")
    assert record.labels == (1.0, 0.0, 0.0)
    assert "'+' or '-' in place of each" in problem(step_solutions, {"input": text, "label": text})
    assert "no 'Step 1:'" in problem(step_solutions, {"input": "Q? 3 + 2 = 5 ки", "label": "Q? 3 + 2 = 5 +"})
    assert "end its last step" in problem(step_solutions, {"input": "Q? Step 1: 5 ки then", "label": "x"})


def test_a_file_in_a_published_form_reads_through_load_records(tmp_path):
    rows = [{"prompt": "Q", "completions": ["a", "b"], "labels": [True, True]},
            {"prompt": "R", "steps": ["a", "b"], "first_error": 1}]
    loaded = load_records(str(write_jsonl(tmp_path / "steps.jsonl", rows)), "steps")
    assert [r.labels for r in loaded.records] == [(1.0, 1.0), (1.0, 0.0)]


def mr_ben_row(lines, first_error="2", correctness="incorrect"):
    return {"Question": "Which is prime?", "Options": "A: 4\nB: 5", "Ground_Truth_Answer": "B",
            "Model_Solution_Steps": lines, "Model_Solution_Correctness": correctness,
            "Model_Solution_First_Error_Step": first_error}


def test_mr_ben_steps_are_the_numbered_lines_and_the_error_names_a_step_number():
    lines = ["tep 1: 4 = 2 * 2.", "Step 2: 5 = 5 * 1, so 5 is not prime.", "- check B", "Step 3: So A.",
             "Solution: Choice_A"]
    [record] = mr_ben_solutions(mr_ben_row(lines), WHERE)
    assert record.steps == ("tep 1: 4 = 2 * 2.", "Step 2: 5 = 5 * 1, so 5 is not prime.\n- check B",
                            "Step 3: So A.\nSolution: Choice_A")
    assert record.labels == (1.0, 0.0, None) and record.answer == "B"
    assert record.prompt[0]["content"] == "Which is prime?\nA: 4\nB: 5"
    [right] = mr_ben_solutions(mr_ben_row(lines, "N/A", "correct"), WHERE)
    assert right.labels == (1.0, 1.0, 1.0)
    assert "not one of the solution's steps [1, 2, 3]" in problem(mr_ben_solutions, mr_ben_row(lines, "7"))
    assert "'correct' but first error step '2'" in problem(mr_ben_solutions, mr_ben_row(lines, "2", "correct"))
    assert "open with a 'Step 1:' line" in problem(mr_ben_solutions, mr_ben_row(["Let us see.", *lines]))


def test_big_bench_mistake_leaves_blank_steps_out():
    row = {"input": "2 * (3 + 4) =", "steps": ["3 + 4 = 7.", " ", "2 * 7 = 15.", "So 15."], "answer": "15",
           "target": "14", "mistake_index": 2}
    [record] = big_bench_mistake_solutions(row, WHERE)
    assert record.steps == ("3 + 4 = 7.", "2 * 7 = 15.", "So 15.") and record.labels == (1.0, 0.0, None)
    assert record.answer == "14"
    assert "marks a blank step" in problem(big_bench_mistake_solutions, {**row, "mistake_index": 1})
    assert "missing field 'mistake_index'" in problem(big_bench_mistake_solutions,
                                                      {k: v for k, v in row.items() if k != "mistake_index"})


def test_the_human_labelled_sets_by_name():
    mr_ben = load_records("mr-ben", "steps").records
    assert len(mr_ben) == 918 and sum(r.labels[-1] == 1.0 for r in mr_ben) == 149  # the solutions marked correct
    mistakes = load_records("big-bench-mistake", "steps")
    assert len(mistakes.records) == 2186 and not mistakes.skipped
    assert sum(None not in r.labels and 0.0 not in r.labels for r in mistakes.records) == 478  # no mistake
    arithmetic = load_records("big-bench-mistake-arithmetic", "steps").records
    assert len(arithmetic) == 300 and arithmetic[0].labels == (1.0, 1.0, 1.0, 0.0, None)
