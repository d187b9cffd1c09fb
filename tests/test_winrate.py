"""Win rates: the bootstrap statistic against hand counts and a direct resampling reference, the AI
judge against a planted preference and a position-biased judge, and ``alignkit eval winrate`` end to end
on tiny random policies judged by a tiny reward model and by a tiny model as AI judge."""

import json

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
    assert 0.0 <= result.ci_low <= result.rate <= result.ci_high <= 1.0
    assert result == win_rate(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.0, 2.0, 5.0, 1.0]))


def test_win_rate_of_a_sweep_has_a_point_interval():
    result = win_rate(torch.ones(5), torch.zeros(5))
    assert (result.rate, result.ci_low, result.ci_high) == (1.0, 1.0, 1.0)


def test_bootstrap_interval_matches_resampling_prompts_directly():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randint(0, 3, (60,), generator=generator).float(), torch.randint(0, 3, (60,), generator=generator)
    result = win_rate(a, b.float(), num_bootstrap=20_000, confidence=0.9)
    outcome = (a > b).float() + 0.5 * (a == b).float()
    resampled = outcome[torch.randint(0, 60, (20_000, 60), generator=generator)].mean(1)
    low, high = torch.quantile(resampled, torch.tensor([0.05, 0.95])).tolist()
    assert result.ci_low == pytest.approx(low, abs=0.02) and result.ci_high == pytest.approx(high, abs=0.02)
    assert result.rate == pytest.approx(float(outcome.mean()))


def test_bootstrap_interval_covers_a_simulated_coins_rate_about_95_percent_of_the_time():
    """A policy that wins each prompt with probability 0.6 (no ties), judged on 100 prompts, 400 times:
    the 95% interval should hold 0.6 in about 95% of the experiments (binomial sd of the share: 1.1%)."""
    generator = torch.Generator().manual_seed(0)
    covered = 0
    for experiment in range(400):
        wins = (torch.rand(100, generator=generator) < 0.6).float()
        result = win_rate(wins, 1 - wins, num_bootstrap=2000, seed=experiment)
        covered += result.ci_low <= 0.6 <= result.ci_high
    assert 0.91 <= covered / 400 <= 0.98


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
    torch.manual_seed(0)  # the judge's random reward head
    judge = load_reward_model(ModelConfig(name=str(tiny_model_dir)), LoraConfig(), "last")
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
