"""``alignkit eval gsm8k``: Wilson's interval by hand and by brute force, and the command end to end."""

import json
import math

import pytest
import yaml
from helpers import write_jsonl

from alignkit.cli import main
from alignkit.config import RLConfig, load_config, to_dict
from alignkit.evaluate.accuracy import accuracy_problems
from alignkit.evaluate.intervals import wilson_interval
from alignkit.rl.checkers import gsm8k_correct


@pytest.mark.parametrize(("correct", "n", "expected"), [
    (0, 10, (0.0, 0.27753)),      # p = 0: (0, z²/n / (1 + z²/n))
    (5, 10, (0.23659, 0.76341)),  # worked by hand from the formula with z = 1.96
    (10, 10, (0.72247, 1.0)),
])
def test_wilson_interval_by_hand(correct, n, expected):
    assert wilson_interval(correct, n) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(("correct", "n"), [(3, 17), (40, 200), (199, 200)])
def test_wilson_interval_is_where_the_score_test_stops_rejecting(correct, n):
    """Wilson's interval is {q : |p - q| <= z sqrt(q(1-q)/n)}; scan q on a fine grid."""
    z, p = 1.959964, correct / n
    grid = [q / 100_000 for q in range(100_001)]
    inside = [q for q in grid if abs(p - q) <= z * math.sqrt(q * (1 - q) / n)]
    assert wilson_interval(correct, n) == pytest.approx((inside[0], inside[-1]), abs=2e-5)


def test_wilson_interval_rejects_impossible_counts():
    with pytest.raises(ValueError, match="correct"):
        wilson_interval(3, 2)


@pytest.fixture
def problems(tmp_path):
    return write_jsonl(tmp_path / "problems.jsonl",
                       [{"prompt": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(10)])


def test_eval_accuracy_scores_each_reply_with_the_checker(tiny_model_dir, problems, tmp_path, capsys):
    out = tmp_path / "acc"
    assert main(["eval", "gsm8k", "--policy", str(tiny_model_dir), "--data", str(problems), "--num-problems",
                 "6", "--max-new-tokens", "4", "--out", str(out)]) == 0
    report = json.loads((out / "accuracy.json").read_text())
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert report["num_problems"] == len(samples) == 6 and report["generation"]["temperature"] == 0.0
    assert all(s["correct"] == gsm8k_correct(s["reply"], s["answer"]) for s in samples)
    assert report["correct"] == sum(s["correct"] for s in samples)
    assert report["accuracy"] == report["correct"] / 6
    assert (report["ci_low"], report["ci_high"]) == pytest.approx(wilson_interval(report["correct"], 6))
    assert 0 < report["mean_tokens"] <= 4
    assert "accuracy" in capsys.readouterr().err


def test_problems_default_to_the_held_out_split_of_an_rl_run(problems, tmp_path):
    config = load_config(RLConfig, None, [f"data.train={problems}", "data.eval_fraction=0.3", "reward.kind=gsm8k"])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(to_dict(config)))
    held_out = accuracy_problems(str(tmp_path / "run"), None, 200)
    assert len(held_out) == 3 and all(p.answer is not None for p in held_out)
    with pytest.raises(Exception, match="--split-from"):
        accuracy_problems(None, None, 200)
