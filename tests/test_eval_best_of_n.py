"""``alignkit eval best-of-n``: end to end on tiny models (a tiny random policy, judged by a random-head reward
model and, as gold, the same reward model saved again), the report of its run folder, and bad --n."""

import contextlib
import io
import json

import pytest
import torch
from hacking_helpers import random_judge
from helpers import planted_pairs, write_jsonl

from alignkit.cli import main
from alignkit.config import GenerationConfig
from alignkit.evaluate.best_of_n import best_of_n_kl, select_best_of_n
from alignkit.evaluate.best_of_n_eval import evaluate_best_of_n

NS = [1, 2, 4, 3]


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("best_of_n")
    return {"policy": tiny_model_dir, "judge": random_judge(root, tiny_model_dir),
            "gold": random_judge(root / "gold", tiny_model_dir),  # the same seeded head: gold scores = judge scores
            "pairs": write_jsonl(root / "pairs.jsonl", planted_pairs(6)), "evals": root / "evals"}


def args(folders, *extra):
    return ["eval", "best-of-n", "--policy", str(folders["policy"]), "--judge", str(folders["judge"]),
            "--data", str(folders["pairs"]), "--num-prompts", "3", "--max-new-tokens", "6", *extra]


@pytest.fixture(scope="module")
def evaluated(folders):
    """The CLI's output folder, written with --gold and --n 1,2,4,3."""
    out = folders["evals"] / "best-of-n"
    assert main(args(folders, "--gold", str(folders["gold"]), "--n", ",".join(map(str, NS)), "--out", str(out))) == 0
    return out


def test_cli_writes_the_curve_and_the_samples(evaluated, folders, capsys):
    report = json.loads((evaluated / "best_of_n.json").read_text())
    assert report["num_prompts"] == 3 and report["samples_per_prompt"] == 4
    assert report["gold"] == str(folders["gold"]) and report["generation"]["max_new_tokens"] == 6
    curve = report["curve"]
    assert [point["n"] for point in curve] == sorted(NS)
    assert [point["kl"] for point in curve] == [best_of_n_kl(n) for n in sorted(NS)]
    assert all(point["sqrt_kl"] == pytest.approx(point["kl"] ** 0.5) for point in curve)
    proxy = [point["proxy"] for point in curve]
    assert all(a <= b + 1e-12 for a, b in zip(proxy, proxy[1:], strict=False))  # up to float rounding
    assert [point["gold"] for point in curve] == pytest.approx(proxy)  # the gold model is the judge itself

    rows = [json.loads(line) for line in (evaluated / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(len(row["replies"]) == 4 for row in rows)
    judge = [[reply["judge"] for reply in row["replies"]] for row in rows]
    assert [row["best"] for row in rows] == select_best_of_n(torch.tensor(judge)).indices.tolist()
    assert curve[-1]["proxy"] == pytest.approx(sum(max(scores) for scores in judge) / 3)
    assert curve[0]["proxy"] == pytest.approx(sum(map(sum, judge)) / 12)
    assert all(reply["gold"] == pytest.approx(reply["judge"]) for row in rows for reply in row["replies"])
    assert len({reply["text"] for row in rows for reply in row["replies"]}) > 3  # the samples differ


def test_without_gold_the_curve_has_no_gold(folders):
    prompts = [({"role": "user", "content": "Tell me about rivers"},)]
    report = evaluate_best_of_n(folders["policy"], folders["judge"], prompts,
                                GenerationConfig(max_new_tokens=4, seed=1), [2, 1], None)
    assert report["gold"] is None and report["samples_per_prompt"] == 2
    assert [(point["n"], point["gold"]) for point in report["curve"]] == [(1, None), (2, None)]


def test_the_report_renders_a_best_of_n_evaluation(evaluated, folders, tmp_path):
    out = tmp_path / "report.html"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["eval", "report", str(folders["evals"]), "--out", str(out)]) == 0
    page, markdown = out.read_text(), out.with_suffix(".md").read_text()
    assert "<h4>best-of-n</h4>" in page and "best-of-n proxy and gold reward against √KL" in page
    assert "| n | KL | √KL | proxy | gold |" in markdown
    assert "| 4 | 0.6363 |" in markdown  # log 4 - 3/4
    assert "No winrate.json, accuracy.json or hacking.json" in page  # the win-rate section skips the curve


@pytest.mark.parametrize("ns", ["0", "1,x", "", "2.5", "-1,2", "1,,2"])
def test_bad_n_is_one_line_and_exit_2(folders, tmp_path, capsys, ns):
    out = tmp_path / "out"
    assert main(args(folders, f"--n={ns}", "--out", str(out))) == 2
    err = capsys.readouterr().err
    assert "--n" in err and "positive integers" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_missing_gold_folder_is_one_line_and_exit_2(folders, tmp_path, capsys):
    assert main(args(folders, "--gold", str(tmp_path / "missing"), "--out", str(tmp_path / "out"))) == 2
    err = capsys.readouterr().err
    assert f"gold '{tmp_path / 'missing'}': no such folder" in err and len(err.strip().splitlines()) == 1
