"""``alignkit eval report``: one self-contained HTML file (and a Markdown summary) from a tiny RL run with
its hacking and win-rate evaluations and a tiny reward-model run; text from the runs is escaped; bad run
folders are one-line errors."""

import base64
import contextlib
import html
import io
import json
import re

import pytest
import yaml
from hacking_helpers import probe_files, tiny_rl_run
from helpers import planted_pairs, write_jsonl

from alignkit.cli import main
from alignkit.config import RMConfig, load_config
from alignkit.evaluate.report import SECTIONS, _headlines, conclusion, verdict
from alignkit.evaluate.run_folder import RunFolder
from alignkit.train.reward import run_rm

PLANTED = '<script>alert("gotcha")</script> & <b>bold</b>'


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tokenizer_dir, tiny_model_dir):
    """A tiny RL run (evaluated with eval hacking, its red team also by the starting model as AI judge and
    asked again as ordinary requests, and eval winrate; a <script> planted in two samples) and a tiny
    reward-model run, the judge of both."""
    root = tmp_path_factory.mktemp("report")
    rl, start = tiny_rl_run(root, tokenizer_dir)
    rm, pairs = root / "rm", planted_pairs(16)
    run_rm(load_config(RMConfig, None, [
        f"output_dir={rm}", f"model.name={tiny_model_dir}", f"data.train={write_jsonl(root / 'pairs.jsonl', pairs)}",
        "data.eval_fraction=0.25", "data.max_length=64", "train.batch_size=4", "train.micro_batch_size=4",
        "train.max_steps=3"]))
    probes, red_team = probe_files(root)
    common = ["--policy", str(rl), "--baseline", str(start), "--judge", str(rm), "--max-new-tokens", "6"]
    assert main(["eval", "hacking", *common, "--probes", str(probes), "--red-team", str(red_team),
                 "--benign", str(red_team), "--ai-judge", str(start)]) == 0
    assert main(["eval", "winrate", *common]) == 0
    plant(rl / "samples.jsonl", lambda rows: next(r for r in rows if r["iteration"] == rows[-1]["iteration"]),
          "completion")
    plant(rl / "winrate-vs-start" / "samples.jsonl", lambda rows: rows[0], "policy")
    return {"rl": rl, "rm": rm, "start": start}


def plant(path, pick, key):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    pick(rows)[key] = PLANTED
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    """The report of both runs: ``(html page, stdout, report.md)``."""
    out = tmp_path_factory.mktemp("out") / "report.html"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(["eval", "report", str(runs["rl"]), str(runs["rm"]), "--out", str(out)]) == 0
    return out.read_text(), printed.getvalue(), out.with_suffix(".md").read_text()


def test_report_has_every_section_for_every_run(report, runs):
    page, printed, markdown = report
    for title in SECTIONS:
        assert page.count(f"<h3>{title}</h3>") == 2, title
    summary, runs_part = page.split('id="run-0"')
    rl_part, rm_part = runs_part.split('id="run-1"')
    assert "<h4>hacking-vs-start</h4>" in rl_part and "winrate-vs-start: win rate over start" in rl_part
    assert "length-matched win rate" in rl_part and "harmful rate" in rl_part and "agreed" in rl_part
    assert f"AI judge ai:{runs['start']}" in rl_part
    assert "Over-refusal" in rl_part and "Terse replies to the same requests, fewer than 8 words" in rl_part
    assert "observed peak √KL" in rl_part and "monitor_river_share" in rl_part
    assert "before: iteration 0" in rl_part and "after: iteration 3" in rl_part and "before: baseline" in rl_part
    assert "eval_accuracy" in rm_part and "No hacking.json" in rm_part
    assert "<h2>Summary</h2>" in summary and "<td>" + runs["rl"].name + "</td>" in summary
    assert "<td>held-out pair accuracy (the run&#x27;s own evaluation)</td><td class=number>" in summary  # the rm run
    assert "winrate-vs-start: win rate over start" in summary and "hacking-vs-start: win rate" in summary
    assert summary.count("<td>no change beyond noise</td>") + summary.count("<td>moved ") >= 2
    assert "figures moved beyond noise" in summary or "No figure moved beyond noise" in summary
    images = re.findall(r'<img [^>]*src="([^"]*)"', page)
    # RL run: training curves, win rates, length buckets, curves over training, reward against √KL; RM run: curves
    assert len(images) == 6
    for image in images:
        assert image.startswith("data:image/png;base64,")
        assert base64.b64decode(image.split(",", 1)[1]).startswith(b"\x89PNG")
    assert printed == markdown + "\n"
    assert markdown.startswith("# alignkit report") and f"## {runs['rm']}" in markdown
    assert "| win rate |" in markdown and "| eval_accuracy |" in markdown and "<script" not in markdown


def test_a_runs_own_held_out_accuracy_joins_the_summary_unless_eval_rm_scored_it(tmp_path):
    # 140 of 200 held-out pairs: Wilson's interval with continuity correction, worked by hand, 0.6306-0.7616
    own = {"eval_accuracy": 0.7, "eval_examples": 200}
    [(figure, value, low, high, n, said)] = _headlines(RunFolder(tmp_path, [], own))
    assert figure == "held-out pair accuracy (the run's own evaluation)" and (value, n) == (0.7, 200)
    assert (low, high) == (pytest.approx(0.63061, abs=1e-5), pytest.approx(0.76156, abs=1e-5))
    assert said == "moved up (above 0.5)"
    scored = {**own, "rm_eval": {"accuracy": 0.6, "accuracy_interval": [0.53, 0.67], "pairs": 200}}
    assert [row[0] for row in _headlines(RunFolder(tmp_path, [], scored))] == ["reward model: held-out accuracy"]
    assert _headlines(RunFolder(tmp_path, [], {"eval_accuracy": 0.7})) == []  # no count, no interval
    [(figure, *_)] = _headlines(RunFolder(tmp_path, [], {"eval_reward_accuracy": 0.7, "eval_examples": 200}))
    assert figure == "held-out implicit-reward accuracy"  # DPO's


def test_conclusion_names_the_figures_that_moved_or_says_none_did():
    still = ("rm", "held-out accuracy", 0.55, 0.45, 0.64, 100, verdict(0.45, 0.64))
    up = ("ppo", "win rate", 0.66, 0.56, 0.75, 100, verdict(0.56, 0.75))
    accuracy = ("grpo", "accuracy", 0.3, 0.2, 0.4, 100, verdict(0.2, 0.4, None))
    assert conclusion([still, up, accuracy]) == "1 of 2 figures moved beyond noise: win rate (moved up (above 0.5))."
    assert conclusion([still, accuracy]).startswith("No figure moved beyond noise")
    assert conclusion([accuracy]) == "No figure has a no-effect value to compare with."


def test_report_is_self_contained(report):
    page = report[0]
    references = re.findall(r'\b(?:src|href)\s*=\s*["\']?([^"\'\s>]*)', page, re.IGNORECASE)
    assert references and all(ref.startswith(("data:image/png;base64,", "#")) for ref in references)
    assert not re.search(r"https?://", page.split("<body>")[0])  # nothing fetched by the head (CSS)
    assert "<link" not in page and "@import" not in page and "url(" not in page


def test_text_from_the_runs_is_escaped(report):
    page = report[0]
    assert "<script" not in page.lower() and "<b>bold</b>" not in page
    assert page.count(html.escape(PLANTED)) == 2  # the RL sample and the win-rate sample


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda folder: None, "no such folder (expected a run folder)"),
        (lambda folder: folder.mkdir() or (folder / "config.yaml").write_text(yaml.safe_dump({"seed": 0})),
         "no metrics.jsonl"),
        (lambda folder: folder.mkdir() or (folder / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2,\n'),
         "metrics.jsonl:2: not valid JSON"),
    ],
)
def test_bad_run_folders_are_one_line_and_exit_2(runs, tmp_path, capsys, make, message):
    bad = tmp_path / "bad-run"
    make(bad)
    out = tmp_path / "report.html"
    assert main(["eval", "report", str(runs["rm"]), str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(bad) in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1
    assert not out.exists() and not out.with_suffix(".md").exists()  # nothing half-written


@pytest.mark.parametrize(("low", "high", "no_effect", "expected"), [
    (0.52, 0.70, 0.5, "moved up (above 0.5)"),
    (0.30, 0.49, 0.5, "moved down (below 0.5)"),
    (0.45, 0.62, 0.5, "no change beyond noise"),
    (0.50, 0.62, 0.5, "no change beyond noise"),  # an interval touching 0.5 holds it
    (0.10, 0.20, None, "no reference"),
])
def test_verdict_says_whether_the_interval_leaves_out_the_no_effect_value(low, high, no_effect, expected):
    assert verdict(low, high, no_effect) == expected
