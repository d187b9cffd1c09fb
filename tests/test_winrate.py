"""Win rates: the statistic and its interval against hand counts, the inverted score test and simulated
coverage; the AI judge against a planted preference and a position-biased judge; and ``alignkit eval
winrate`` end to end on tiny random policies judged by a tiny reward model and by a tiny model as AI judge."""

import json
import math

import pytest
import torch
import yaml
from cai_helpers import FakeBackend
from helpers import planted_pairs, write_jsonl

from alignkit.cli import main
from alignkit.config import (
    DPOConfig,
    GenerationConfig,
    LoraConfig,
    ModelConfig,
    RLConfig,
    RMConfig,
    SFTConfig,
    load_config,
    to_dict,
)
from alignkit.data.records import PreferencePair, Prompt, Ranking
from alignkit.evaluate.ai_judge import AIJudge
from alignkit.evaluate.held_out import held_out_records
from alignkit.evaluate.winrate import win_rate, winrate_prompts
from alignkit.feedback.config import FeedbackModelConfig
from alignkit.models import build_tiny_model, load_tokenizer, save_model
from alignkit.models.reward import load_reward_model


def test_win_rate_counts_ties_as_half():
    result = win_rate(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.0, 2.0, 5.0, 1.0]))
    assert (result.n, result.wins, result.ties, result.losses) == (4, 2, 1, 1)
    assert result.rate == 0.625


# Wilson's interval with continuity correction (Newcombe 1998, method 4) worked by hand, z = 1.959964,
# z² = 3.841459, x = wins + ties / 2, p = x / n, q = 1 - p, denominator 2(n + z²):
#   x = 2.5, n = 4:  low  = (5 + z² - 1 - z·√(z² - 2 - 1/4 + 4·0.625·(1.5 + 1))) / 15.682918
#                         = (7.841459 - 1.959964 · 2.800260) / 15.682918 = 0.150040
#                    high = (5 + z² + 1 + z·√(z² + 2 - 1/4 + 4·0.625·(1.5 - 1))) / 15.682918
#                         = (9.841459 + 1.959964 · 2.615617) / 15.682918 = 0.954413
#   x = 5, n = 5:    low  = (10 + z² - 1 - z·√(z² - 2 - 1/5 + 4)) / 17.682918
#                         = (12.841459 - 1.959964 · 2.375176) / 17.682918 = 0.462944,  high = 1 (p = 1)
#   x = 0, n = 10:   low  = 0 (p = 0),  high = (z² + 1 + z·√(z² + 2 - 1/10)) / 27.682918 = 0.344537
@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0], [0.0, 2.0, 5.0, 1.0], (0.150040, 0.954413)),
        ([1.0] * 5, [0.0] * 5, (0.462944, 1.0)),  # a sweep: the interval does not collapse to the point 1
        ([0.0] * 10, [1.0] * 10, (0.0, 0.344537)),
    ],
)
def test_win_rate_interval_by_hand(a, b, expected):
    result = win_rate(torch.tensor(a), torch.tensor(b))
    assert (result.ci_low, result.ci_high) == pytest.approx(expected, abs=5e-6)


@pytest.mark.parametrize(("x", "n"), [(2.5, 4), (0.5, 10), (7.0, 10), (29.5, 30), (12.0, 30)])
def test_win_rate_interval_is_where_the_corrected_score_test_accepts(x, n):
    """The interval holds the p at which |x - np| - 1/2 <= z·√(np(1 - p)), scanned on a fine grid."""
    wins, ties = int(x), int(2 * (x - int(x)))
    a = torch.tensor([1.0] * wins + [0.5] * ties + [0.0] * (n - wins - ties))
    result = win_rate(a, torch.full((n,), 0.5))
    z = 1.959964
    inside = [p / 20_000 for p in range(20_001)
              if abs(x - n * p / 20_000) - 0.5 <= z * math.sqrt(n * p / 20_000 * (1 - p / 20_000))]
    assert (result.ci_low, result.ci_high) == pytest.approx((inside[0], inside[-1]), abs=1e-4)


@pytest.mark.parametrize("n", [10, 30])
@pytest.mark.parametrize(("p_win", "p_tie"), [(0.03, 0.0), (0.5, 0.0), (0.97, 0.0), (0.01, 0.04), (0.4, 0.2)])
def test_win_rate_interval_covers_the_true_rate_at_small_n_and_near_0_and_1(n, p_win, p_tie):
    """2000 experiments of n prompts, each a win with probability p_win, a tie with p_tie, else a loss:
    the 95% interval should hold the true rate p_win + p_tie / 2 in at least ~95% of them (binomial sd
    of the share: 0.5%)."""
    generator = torch.Generator().manual_seed(n)
    draws = torch.rand(2000, n, generator=generator)
    outcomes = (draws < p_win).double() + 0.5 * ((draws >= p_win) & (draws < p_win + p_tie)).double()
    truth = p_win + p_tie / 2
    covered = 0
    for row in outcomes:
        result = win_rate(row, torch.full((n,), 0.5, dtype=torch.float64))
        covered += result.ci_low <= truth <= result.ci_high
    assert covered / 2000 >= 0.93


def test_win_rate_rejects_mismatched_or_empty_scores():
    with pytest.raises(ValueError, match="one shape"):
        win_rate(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="at least one prompt"):
        win_rate(torch.zeros(0), torch.zeros(0))


@pytest.mark.parametrize(
    ("config_cls", "extra", "rows", "kind"),
    [
        (DPOConfig, [], planted_pairs(8), PreferencePair),
        (RMConfig, ["reward.data_format=rankings"],
         [{"prompt": f"p{i}", "responses": ["a", "b"], "ranks": [1, 2]} for i in range(8)], Ranking),
        (RLConfig, ["reward.kind=gsm8k"], [{"prompt": f"{i} + 1?", "answer": str(i + 1)} for i in range(8)], Prompt),
    ],
)
def test_held_out_records_are_of_the_kind_the_run_trained_on(tmp_path, config_cls, extra, rows, kind):
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    config = load_config(config_cls, None, [f"data.train={data}", "data.eval_fraction=0.25", *extra])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(to_dict(config)))
    records = held_out_records(tmp_path)
    assert len(records) == 2 and all(isinstance(r, kind) for r in records)
    assert winrate_prompts(tmp_path, None, 1) == [records[0].prompt]


def test_held_out_records_read_an_older_runs_config_with_keys_its_stage_no_longer_takes(tmp_path):
    """Run folders written before each stage had its own data keys hold SFT's too (data.packing, ...), and a
    a mean-pooling reward model's reward.share_prompt: true, and null where that was the default; their split
    keys still rebuild the held-out split."""
    data = write_jsonl(tmp_path / "data.jsonl", planted_pairs(8))
    written = to_dict(load_config(RMConfig, None, [f"data.train={data}", "data.eval_fraction=0.25",
                                                   "reward.pooling=mean"]))
    written["data"] |= {"packing": False, "padding_free": False, "loss_on": "all_assistant"}
    for share_prompt in (True, None):
        written["reward"]["share_prompt"] = share_prompt
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(written))
        records = held_out_records(tmp_path)
        assert len(records) == 2 and all(isinstance(r, PreferencePair) for r in records)


@pytest.fixture(scope="module")
def folders(tiny_model_dir, tokenizer_dir, tmp_path_factory):
    """An SFT-like policy run folder (model/ and config.yaml), a baseline model folder and a judge run folder."""
    root = tmp_path_factory.mktemp("winrate")
    demos = [{"prompt": f"Tell me about {row['prompt'][14:]} number {i}", "response": row["chosen"]}
             for i, row in enumerate(planted_pairs(8))]
    config = load_config(SFTConfig, None, [f"data.train={write_jsonl(root / 'demos.jsonl', demos)}",
                                           "data.eval_fraction=0.25"])
    policy = root / "policy"
    build_tiny_model(policy / "model", tokenizer_dir, seed=1)
    (policy / "config.yaml").write_text(yaml.safe_dump(to_dict(config)))
    judge = load_reward_model(ModelConfig(name=str(tiny_model_dir)), LoraConfig(), "last", seed=0)  # a random head
    save_model(judge.hf_model, load_tokenizer(str(tiny_model_dir)), root / "judge" / "model")
    return {"policy": policy, "baseline": tiny_model_dir, "judge": root / "judge", "root": root}


def run_winrate(folders, *extra):
    return main(["eval", "winrate", "--policy", str(folders["policy"]), "--baseline", str(folders["baseline"]),
                 "--judge", str(folders["judge"]), "--max-new-tokens", "4", *extra])


def test_eval_winrate_on_the_policys_held_out_prompts(folders, capsys):
    assert run_winrate(folders) == 0
    out = folders["policy"] / "winrate-vs-model"
    report = json.loads((out / "winrate.json").read_text())
    assert report["num_prompts"] == 2  # the held-out 25% of 8 demonstrations, rebuilt from config.yaml
    assert report["wins"] + report["losses"] + report["ties"] == 2
    assert report["win_rate"] == (report["wins"] + report["ties"] / 2) / 2
    assert 0 <= report["ci_low"] <= report["win_rate"] <= report["ci_high"] <= 1
    for side in ("policy", "baseline"):
        assert 0 < report[f"{side}_mean_tokens"] <= 4 and 0 <= report[f"{side}_unfinished"] <= 1
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 and samples[0]["prompt"][-1]["role"] == "user"
    assert {"policy", "baseline", "policy_reward", "baseline_reward", "policy_tokens"} <= set(samples[0])
    assert "win rate" in capsys.readouterr().err


def test_eval_winrate_on_prompts_of_given_pairs(folders):
    data = write_jsonl(folders["root"] / "pairs.jsonl", planted_pairs(12))
    out = folders["root"] / "out"
    assert run_winrate(folders, "--data", str(data), "--num-prompts", "3", "--temperature", "0", "--out", str(out)) == 0
    report = json.loads((out / "winrate.json").read_text())
    assert report["num_prompts"] == 3 and report["generation"]["temperature"] == 0.0
    assert len((out / "samples.jsonl").read_text().splitlines()) == 3


def test_ai_judge_recovers_a_planted_preference_and_averages_out_position_bias(tmp_path):
    """The fake judge gives the option holding 'banana' probability 0.9 (or, biased, (A) 0.9 always)."""
    judge = AIJudge(FeedbackModelConfig(model="unused"))
    prompts = [({"role": "user", "content": "Say something"},)] * 3
    first, second = ["a banana here", "plain words", "same"], ["plain words", "a banana here", "same"]
    backend = FakeBackend()
    judged = judge.judge(prompts, first, second, GenerationConfig(), tmp_path, backend=backend)
    assert judged.preferences.tolist() == pytest.approx([0.9, 0.1, 0.5])
    assert len(backend.scored) == 4  # two pairs in both orders; identical replies are a tie, not asked
    assert judged.principles[2] is None and all(judged.principles[:2])
    biased = judge.judge(prompts, first, second, GenerationConfig(), tmp_path, backend=FakeBackend(prefer_a=True))
    assert biased.preferences.tolist() == pytest.approx([0.5, 0.5, 0.5])


def test_eval_winrate_with_an_ai_judge(folders):
    out = folders["root"] / "ai-judged"
    assert main(["eval", "winrate", "--policy", str(folders["policy"]), "--baseline", str(folders["baseline"]),
                 "--ai-judge", str(folders["baseline"]), "--max-new-tokens", "4", "--out", str(out)]) == 0
    report = json.loads((out / "winrate.json").read_text())
    assert report["judge"] == f"ai:{folders['baseline']}"
    assert report["wins"] + report["losses"] + report["ties"] == report["num_prompts"] == 2
    assert report["policy_mean_reward"] + report["baseline_mean_reward"] == pytest.approx(1.0)
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert all("principle" in row and row["policy_reward"] + row["baseline_reward"] == pytest.approx(1.0)
               for row in samples)
    with pytest.raises(SystemExit):  # one judge or the other
        main(["eval", "winrate", "--policy", "p", "--baseline", "b", "--judge", "j", "--ai-judge", "m"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--judge": "missing-judge/"}, "judge 'missing-judge/': no such folder"),
        ({"--policy": "{baseline}"}, "no config.yaml to rebuild the held-out split from; pass --data"),
        ({"--temperature": "-1"}, "'temperature' must be a number >= 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(folders, tmp_path, monkeypatch, capsys, change, message):
    monkeypatch.chdir(tmp_path)
    args = {"--policy": str(folders["policy"]), "--baseline": str(folders["baseline"]),
            "--judge": str(folders["judge"]), "--max-new-tokens": "2"}
    args.update({key: value.format(baseline=folders["baseline"]) for key, value in change.items()})
    assert main(["eval", "winrate", *[item for pair in args.items() for item in pair]]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
