"""Process reward models: where each step is read, the step loss and aggregations by hand, and a tiny
run that learns a planted wrong step and scores it through PRMScorer."""

import json
import math
import random

import pytest
import torch
from helpers import WORDS, write_jsonl

from alignkit.cli import main
from alignkit.config import PRMConfig, load_config
from alignkit.data.tokenize import tokenize_steps
from alignkit.errors import ConfigError, DataError
from alignkit.evaluate.intervals import bootstrap_interval
from alignkit.evaluate.process_eval import label_agreement
from alignkit.evaluate.process_metrics import (
    NO_ERROR,
    f1,
    first_error,
    first_error_found,
    processbench_from,
    step_counts,
    step_metrics_from,
    wrong_step_auroc,
)
from alignkit.feedback.rollout_labels import shepherd_labels, written_lines
from alignkit.losses.process import step_loss
from alignkit.models.process import PRMScorer, aggregate
from alignkit.train.prm import PRMStep, StepRow, run_prm

PROMPT = ({"role": "user", "content": "What is 2 + 3 * 4?"},)
STEPS = ["3 * 4 = 12.", "2 + 12 = 14", "The answer is 14."]


def test_each_step_is_read_at_its_last_token(tokenizer):
    tokens = tokenize_steps(PROMPT, STEPS, tokenizer, max_length=256)
    text = tokenizer.decode(tokens.input_ids)
    for step, end in zip(STEPS, tokens.step_ends, strict=True):
        through = tokenizer.decode(tokens.input_ids[:end + 1])
        assert through.endswith(step) or through.endswith(step + "\n")  # a token may hold the separator too
        assert not tokenizer.decode(tokens.input_ids[:end]).endswith(step)  # the step is not over a token earlier
    assert "3 * 4 = 12.\n2 + 12 = 14\nThe answer is 14." in text
    short = tokenize_steps(PROMPT, STEPS, tokenizer, max_length=40)
    assert len(short.input_ids) == 40 and short.truncated_tokens == len(tokens.input_ids) - 40
    assert [e - short.step_ends[0] for e in short.step_ends] == [e - tokens.step_ends[0] for e in tokens.step_ends]
    with pytest.raises(DataError, match="the steps and the reply header alone are .* max_length is 12"):
        tokenize_steps(PROMPT, STEPS, tokenizer, max_length=12, location="x.jsonl:2")


def test_the_step_loss_by_hand():
    # logits 0 and 2, labels 1 and 0.25: ln 2 + [-0.25 ln σ(2) - 0.75 ln(1 - σ(2))]
    loss, sums = step_loss(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.25]))
    sigma = 1 / (1 + math.exp(-2))
    assert float(loss) == pytest.approx(math.log(2) - 0.25 * math.log(sigma) - 0.75 * math.log(1 - sigma), abs=1e-6)
    assert int(sums["accuracy"]) == 0  # 0 is not > 0 for a right step; 2 > 0 for a label under ½
    _, sums = step_loss(torch.tensor([0.5, -1.0, 3.0]), torch.tensor([1.0, 0.0, 0.5]))
    assert int(sums["accuracy"]) == 3


def test_aggregations_by_hand():
    p = torch.tensor([0.9, 0.5, 0.8])
    assert aggregate(p, "min") == pytest.approx(0.5) and aggregate(p, "product") == pytest.approx(0.36)
    assert aggregate(p, "last") == pytest.approx(0.8) and aggregate(p, "mean") == pytest.approx(2.2 / 3)
    with pytest.raises(ConfigError, match="expected one of min, product, last, mean"):
        aggregate(p, "max")


def test_a_batch_reads_only_the_labelled_steps():
    step = PRMStep(pad_token_id=0)
    batch = step.collate([StepRow([5, 6, 7, 8], [1, 3], [1.0, 0.0]), StepRow([5, 6], [1], [0.5])])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [5, 6, 0, 0]]
    assert batch["step_row"].tolist() == [0, 0, 1] and batch["step_column"].tolist() == [1, 3, 1]
    assert batch["step_label"].tolist() == [1.0, 0.0, 0.5] and step.count(batch) == 3


def planted_solutions(n: int, seed: int = 0) -> list[dict]:
    """Three steps each; in two of three solutions one step holds 'banana' and is the first wrong step
    (the steps after it unlabelled)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        steps = [" ".join(rng.choice(WORDS) for _ in range(4)) for _ in range(3)]
        wrong = None if i % 3 == 0 else rng.randrange(3)
        if wrong is not None:
            steps[wrong] += " banana"
        rows.append({"prompt": "Tell me about " + rng.choice(WORDS), "steps": steps, "first_error": wrong})
    return rows


def prm_config(model_dir, out, data, *extra):
    return load_config(PRMConfig, None, [
        f"output_dir={out}", f"model.name={model_dir}", f"data.train={data}", "data.eval_fraction=0.2",
        "data.max_length=96", "train.batch_size=8", "train.micro_batch_size=8", "train.learning_rate=3e-3",
        "train.epochs=4", "train.schedule=constant", *extra,
    ])


@pytest.fixture(scope="module")
def prm_run(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("prm")
    run_prm(prm_config(tiny_model_dir, root / "run", write_jsonl(root / "steps.jsonl", planted_solutions(150))))
    return root / "run"


def test_a_tiny_prm_learns_a_planted_wrong_step(prm_run):
    report = json.loads((prm_run / "eval.json").read_text())
    assert report["eval_accuracy"] >= 0.9 and report["eval_examples"] == 30
    assert report["train_loss_last"] < report["train_loss_first"]
    scorer = PRMScorer(prm_run / "model")
    [plain, planted] = scorer.step_scores(["Tell me about rivers"] * 2, [["a river", "a stone"],
                                                                        ["a river", "a stone banana"]])
    assert plain.shape == (2,) and float(planted[1]) < 0.5 < float(plain[1])
    assert scorer.score(["Tell me about rivers"], [["a river banana"]], "min")[0] < 0.5


def test_solutions_without_labels_are_errors_or_skipped(tiny_model_dir, tmp_path):
    rows = planted_solutions(20) + [{"prompt": "Q", "steps": ["a", "b"]}]
    data = write_jsonl(tmp_path / "steps.jsonl", rows)
    with pytest.raises(DataError, match=r"steps.jsonl:21: no step labels"):
        run_prm(prm_config(tiny_model_dir, tmp_path / "a", data, "data.eval_fraction=0"))
    assert main(["prm", "--set", f"output_dir={tmp_path / 'b'}",
                 "--set", f"model.name={tiny_model_dir}", "--set", f"data.train={data}", "--set", "data.on_error=skip",
                 "--set", "data.eval_fraction=0", "--set", "train.max_steps=1", "--set", "train.micro_batch_size=8",
                 "--set", "train.batch_size=8"]) == 0
    assert (tmp_path / "b" / "model" / "config.json").is_file()


def test_first_error_and_f1_by_hand():
    assert first_error([1.0, 0.7, 0.2, None]) == 2 and first_error([1.0, 1.0]) == NO_ERROR
    assert first_error([1.0, None, 0.0]) is None  # the labels stop before telling
    assert f1(3, 1, 2) == pytest.approx(6 / 9) and f1(0, 0, 0) == 0.0


def test_step_metrics_by_hand():
    # solution 1: labels right, wrong, unlabelled; p 0.9, 0.6, 0.1 → a right step kept (TN), a wrong one missed (FN)
    # solution 2: labels right, right; p 0.2, 0.8 → a right step flagged (FP), a right one kept (TN)
    # solution 3: a wrong first step found (TP)
    probabilities = [torch.tensor([0.9, 0.6, 0.1]), torch.tensor([0.2, 0.8]), torch.tensor([0.3])]
    labels = [[1.0, 0.0, None], [1.0, 1.0], [0.0]]
    counts = [step_counts(p, y) for p, y in zip(probabilities, labels, strict=True)]
    assert counts == [(0, 0, 1, 1), (0, 1, 0, 1), (1, 0, 0, 0)]
    metrics = step_metrics_from(counts)
    assert metrics["steps"] == 5 and metrics["wrong_steps"] == 2 and metrics["step_accuracy"] == pytest.approx(0.6)
    assert metrics["wrong_step_f1"] == pytest.approx(2 / 4) and metrics["right_step_f1"] == pytest.approx(4 / 6)
    # ProcessBench: solution 1's first wrong step (1) is predicted at 2 (missed); solution 2 is right but
    # flagged at 0; solution 3's is found. Erroneous 1 of 2, correct 0 of 1 → harmonic mean 0
    found = [first_error_found(p, y) for p, y in zip(probabilities, labels, strict=True)]
    assert found == [(True, False), (False, False), (True, True)]
    report = processbench_from(found + [(False, True), (False, True)])
    assert report["erroneous_accuracy"] == 0.5 and report["correct_accuracy"] == pytest.approx(2 / 3)
    assert report["processbench_f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert first_error_found(torch.tensor([0.9, 0.9]), [1.0, None]) is None
    # AUROC: wrong steps 0.6 and 0.3 against right steps 0.9, 0.2, 0.8: 0.6 is below 2 of 3, 0.3 below 2 of 3
    assert wrong_step_auroc(probabilities, labels) == pytest.approx(4 / 6)
    assert wrong_step_auroc([torch.tensor([0.5, 0.5])], [[1.0, 0.0]]) == 0.5  # a tie counts half
    assert wrong_step_auroc([torch.tensor([0.9])], [[1.0]]) == 0.5  # no wrong step to rank
    rng = random.Random(0)
    probs = [torch.tensor([rng.choice([0.1, 0.4, 0.7]) for _ in range(4)]) for _ in range(20)]
    ys = [[rng.choice([1.0, 0.0, 0.3, None]) for _ in range(4)] for _ in range(20)]
    steps = [(p, y) for ps, yy in zip(probs, ys, strict=True)
             for p, y in zip(ps.tolist(), yy, strict=True) if y is not None]
    pairs = [(pw, pr) for pw, yw in steps if yw < 0.5 for pr, yr in steps if yr >= 0.5]
    slow = sum(1.0 if pw < pr else 0.5 if pw == pr else 0.0 for pw, pr in pairs) / len(pairs)
    assert wrong_step_auroc(probs, ys) == pytest.approx(slow)


def test_the_bootstrap_interval_holds_a_constant_and_spreads_a_coin():
    assert bootstrap_interval(lambda idx: 0.25, 50) == [0.25, 0.25]
    coin = [i % 2 for i in range(400)]
    low, high = bootstrap_interval(lambda idx: sum(coin[i] for i in idx) / len(idx), 400)
    assert 0.43 < low < 0.48 and 0.52 < high < 0.57  # ± 1.96 · √(¼ / 400) ≈ ± 0.049


def test_eval_prm_scores_the_held_out_split(prm_run):
    assert main(["eval", "prm", "--model", str(prm_run)]) == 0
    report = json.loads((prm_run / "eval.json").read_text())["prm_eval"]
    assert report["solutions"] == 30 and report["step_accuracy"] >= 0.9
    assert report["erroneous_solutions"] + report["correct_solutions"] == 30
    assert report["wrong_step_f1"] >= 0.8 and report["processbench_f1"] >= 0.8
    low, high = report["processbench_f1_interval"]
    assert low <= report["processbench_f1"] <= high


def test_shepherd_labels_by_hand():
    hard, soft = shepherd_labels([[True, False, False, False], [False] * 4, [True] * 4])
    assert hard == [1.0, 0.0, 1.0] and soft == [0.25, 0.0, 1.0]
    with pytest.raises(ValueError, match="at least one completion"):
        shepherd_labels([[True], []])


def test_a_line_cut_short_is_dropped_before_labelling_continues(tmp_path):
    out = tmp_path / "labels.jsonl"
    assert written_lines(out) == 0
    out.write_text('{"a": 1}\n{"b": 2}\n{"c": ')
    assert written_lines(out) == 2 and out.read_text() == '{"a": 1}\n{"b": 2}\n'


def test_rollout_labels_check_each_prefix_and_resume(tiny_model_dir, tmp_path):
    # the last step of each solution states its answer, so every completion after it keeps the stated
    # answer: right for the first solution (answer 5), wrong for the second (it says 6)
    rows = [{"prompt": "What is 2 + 3?", "steps": ["2 + 3 = 5", "The answer is 5."], "answer": "5",
             "labels": [1, 1]},
            {"prompt": "What is 2 + 3?", "steps": ["2 + 3 = 6", "The answer is 6."], "answer": "5",
             "first_error": 0},
            {"prompt": "What is 1 + 1?", "steps": ["1 + 1 = 2", "The answer is 2."], "answer": "2"}]
    data, out = write_jsonl(tmp_path / "solutions.jsonl", rows), tmp_path / "labels.jsonl"
    command = ["prm", "label", "--policy", str(tiny_model_dir), "--data", str(data), "--out", str(out),
               "--samples", "3", "--max-new-tokens", "4", "--num-solutions", "2"]
    assert main(command) == 0
    first = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["hard_labels"][-1] for row in first] == [1.0, 0.0] and first[0]["soft_labels"][-1] == 1.0
    assert first[1]["reference_labels"] == [0.0, None] and first[0]["samples"] == 3
    assert first[0]["labels"] == first[0]["hard_labels"]
    assert main(command[:-1] + ["3"]) == 0  # continues with the third solution only
    lines = out.read_text().splitlines()
    assert [json.loads(line) for line in lines[:2]] == first and len(lines) == 3
    assert json.loads(lines[2])["reference_labels"] is None
    agreement = label_agreement(out)
    assert agreement["solutions"] == 3 and agreement["with_reference"] == 2
    assert agreement["wrong_steps"] == 1  # the second solution's first step; its second is unlabelled


def test_best_of_n_answers_samples_checks_and_ranks_by_the_prm(prm_run, tiny_model_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "problems.jsonl", [{"prompt": "What is 2 + 3?", "answer": "5"},
                                                     {"prompt": "What is 1 + 1?", "answer": "2"}])
    out = tmp_path / "bon"
    assert main(["eval", "best-of-n-answers", "--policy", str(tiny_model_dir), "--data", str(data), "--prm",
                 str(prm_run), "--n", "3,1", "--max-new-tokens", "6", "--out", str(out)]) == 0
    report = json.loads((out / "best_of_n_answers.json").read_text())
    assert [point["n"] for point in report["curve"]] == [1, 3] and report["samples_per_problem"] == 3
    assert set(report["curve"][1]) == {"n", "pass", "majority", "prm"} and report["orm"] is None
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    solutions = [s for row in rows for s in row["solutions"]]
    assert [len(row["solutions"]) for row in rows] == [3, 3]
    assert all(0 <= s["prm"] <= 1 or s["prm"] == -1.0 for s in solutions)
    plain = sum(s["correct"] for s in solutions) / len(solutions)
    assert [report["curve"][0][k]["accuracy"] for k in ("pass", "majority", "prm")] == pytest.approx([plain] * 3)
    assert report["no_answer"] == sum(s["answer"] is None for s in solutions) / len(solutions)
    assert main(["eval", "best-of-n-answers", "--policy", str(tiny_model_dir), "--data", str(data), "--prm",
                 "nowhere"]) == 2
    assert "prm 'nowhere': no such folder" in capsys.readouterr().err


def test_step_token_ends_fall_on_the_last_token_of_each_line(tokenizer):
    from alignkit.rl.steps import solution_steps, step_token_ends

    text = "a river\n\n  a stone banana \nThe answer is 5."
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert solution_steps(text) == ["a river", "a stone banana"]
    ends = step_token_ends(ids, tokenizer, text)
    assert [tokenizer.decode(ids[: e + 1]).rstrip().endswith(word) for e, word in zip(ends, ("river", "banana"),
                                                                                       strict=True)] == [True, True]
    assert [tokenizer.decode(ids[:e]).rstrip().endswith(word) for e, word in zip(ends, ("river", "banana"),
                                                                                  strict=True)] == [False, False]


def test_step_rewards_are_the_prms_step_probabilities_at_the_steps_last_tokens(prm_run, tokenizer):
    from alignkit.config import ProcessRewardConfig
    from alignkit.data.records import Prompt
    from alignkit.rl.generation import Completion
    from alignkit.rl.process_rewards import ProcessReward
    from alignkit.rl.steps import step_token_ends

    texts = ["a river\na stone banana\nThe answer is 5.", "no steps here at all", "The answer is 5."]
    completions = [Completion(t, tuple(ids := tokenizer.encode(t, add_special_tokens=False)), len(ids), True)
                   for t in texts]
    prompts = [Prompt(({"role": "user", "content": "Tell me about rivers"},))] * 3
    steps = ProcessReward(ProcessRewardConfig(path=str(prm_run), weight=0.5), tokenizer)(prompts, completions, 20)
    assert steps.weight == 0.5 and steps.rewards.shape == (3, 20)
    positions = step_token_ends(completions[0].token_ids, tokenizer, texts[0])
    assert steps.ends[0].nonzero().flatten().tolist() == positions
    river, banana = steps.rewards[0, positions].tolist()
    assert banana < 0.5 < river  # the tiny PRM learned that a banana step is wrong
    assert int(steps.ends[1].sum()) == 1 and not steps.ends[2].any()  # one line is one step; the answer line none


def test_grpo_with_step_rewards_runs_and_logs_them_and_rloo_refuses_them(prm_run, tiny_model_dir, tmp_path):
    from alignkit.config import RLConfig
    from alignkit.train.rl import check_rl_config, run_rl

    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"Tell me about {word}"} for word in WORDS])
    settings = [f"output_dir={tmp_path / 'run'}", f"model.name={tiny_model_dir}", f"data.train={prompts}",
                "data.eval_fraction=0.2", "reward.kind=function", "reward.function=helpers:first_token_parity",
                f"process_reward.path={prm_run}", "process_reward.outcome_weight=0", "rl.algo=grpo",
                "rl.samples_per_prompt=4", "rl.prompts_per_iteration=2", "rl.iterations=2", "rl.eval_prompts=2",
                "train.batch_size=8", "train.micro_batch_size=8", "generation.max_new_tokens=6",
                "rl.unfinished=penalty", "rl.unfinished_penalty=0"]
    run_rl(load_config(RLConfig, None, settings))
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all("steps_per_reply" in row and "step_reward" in row for row in logged if "loss" in row)
    # the outcome reward weighs nothing and, before the first update, the policy is its reference (KL 0)
    first = next(row for row in logged if "loss" in row)
    assert first["reward_penalised"] == 0.0
    with pytest.raises(ConfigError, match="leave_one_out advantage does not take step rewards"):
        check_rl_config(load_config(RLConfig, None, settings[:8] + ["rl.algo=rloo"] + settings[9:]))


def test_judge_probability_and_consensus_by_hand():
    from alignkit.data.records import StepSolution
    from alignkit.feedback.step_judge import consensus_labels, step_query, yes_probability

    assert yes_probability(math.log(0.6), math.log(0.2)) == pytest.approx(0.75)
    assert yes_probability(-1000.0, 0.0) == pytest.approx(0.0) and yes_probability(0.0, -1000.0) == 1.0
    assert consensus_labels([1.0, 1.0, 0.0, 0.0], [0.9, 0.2, 0.4, 0.5]) == [1.0, None, 0.0, None]
    with pytest.raises(ValueError, match="2 rollout labels but 1 judge labels"):
        consensus_labels([1.0, 0.0], [0.5])
    solution = StepSolution(({"role": "user", "content": "What is 2 + 3?"},), ("2 + 3 = 6", "The answer is 6."))
    [turn] = step_query(solution, 0)
    assert "Problem: What is 2 + 3?" in turn["content"] and "The answer is 6." not in turn["content"]
    assert turn["content"].endswith('Is the last step, "2 + 3 = 6", correct? Answer Yes or No.')


def test_prm_label_with_a_judge_writes_its_labels_and_the_consensus(tiny_model_dir, tmp_path, capsys):
    rows = [{"prompt": "What is 2 + 3?", "steps": ["2 + 3 = 5", "The answer is 5."], "answer": "5", "labels": [1, 1]},
            {"prompt": "What is 2 + 3?", "steps": ["2 + 3 = 6", "The answer is 6."], "answer": "5",
             "first_error": 0}]
    data, out = write_jsonl(tmp_path / "solutions.jsonl", rows), tmp_path / "labels.jsonl"
    assert main(["prm", "label", "--policy", str(tiny_model_dir), "--data", str(data), "--out", str(out),
                 "--samples", "2", "--max-new-tokens", "4", "--judge", str(tiny_model_dir),
                 "--labels", "consensus"]) == 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    for row in written:
        assert len(row["judge_labels"]) == 2 and all(0 < p < 1 for p in row["judge_labels"])
        assert row["labels"] == [h if (h >= 0.5) == (j >= 0.5) else None
                                 for h, j in zip(row["hard_labels"], row["judge_labels"], strict=True)]
    agreement = label_agreement(out)
    assert {"judge_step_accuracy", "judge_wrong_step_f1", "judge_rollout_agreement"} <= set(agreement)
    assert main(["prm", "label", "--policy", str(tiny_model_dir), "--data", str(data), "--out",
                 str(tmp_path / "other.jsonl"), "--labels", "judge"]) == 2
    assert "labels 'judge' need a judge" in capsys.readouterr().err
