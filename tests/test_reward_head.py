"""A reward model with a frozen backbone: the head's objective, its exact fit, and the run it makes."""

import json
import math

import pytest
import torch
from helpers import planted_pairs, write_jsonl
from transformers import AutoModelForSequenceClassification

from alignkit.config import RMConfig, load_config
from alignkit.errors import ConfigError
from alignkit.models.scorer import RewardScorer
from alignkit.train.reward import run_rm
from alignkit.train.reward_head import (
    GroupFeatures,
    feature_scale,
    fit_head,
    fit_head_beside_length,
    head_objective,
    select_groups,
)


def pairs_of(features, better, worse, groups=None, margin=None, label=None, lengths=None):
    """GroupFeatures of plain pairs (each its own group unless ``groups`` says otherwise)."""
    n = len(better)
    nan = torch.full((n,), math.nan)
    return GroupFeatures(
        features=torch.tensor(features, dtype=torch.float64), better=torch.tensor(better), worse=torch.tensor(worse),
        group_ids=torch.tensor(groups if groups is not None else list(range(n))),
        margin=nan if margin is None else torch.tensor(margin), label=nan if label is None else torch.tensor(label),
        lengths=torch.tensor(lengths if lengths is not None else [0.0] * len(features), dtype=torch.float64),
        groups=len(set(groups)) if groups is not None else n, tokens=0,
    )


def test_the_objective_by_hand():
    # two pairs, one feature: differences 1 and 1 at w = 0.5 give softplus(-0.5) each; ridge ½·1·(2·0.5)²
    data = pairs_of([[1.0], [0.0], [2.0], [1.0]], better=[0, 2], worse=[1, 3])
    loss, metrics = head_objective(torch.tensor([0.5], dtype=torch.float64), data, 1.0, torch.tensor([2.0]))
    assert float(loss) == pytest.approx(math.log1p(math.exp(-0.5)) + 0.5, abs=1e-12)
    assert float(metrics["accuracy"]) == 1.0 and float(metrics["margin"]) == pytest.approx(0.5)


def test_a_ranking_group_counts_once_and_a_soft_label_is_a_target():
    # one ranking of three responses (three pairs, each weighted 1/3) and one soft-labelled pair (p = 0.75)
    data = pairs_of([[3.0], [2.0], [0.0], [1.0], [0.0]], better=[0, 0, 1, 3], worse=[1, 2, 2, 4],
                    groups=[0, 0, 0, 1], label=[math.nan, math.nan, math.nan, 0.75])
    w = 0.4
    ranking = (math.log1p(math.exp(-w)) + math.log1p(math.exp(-3 * w)) + math.log1p(math.exp(-2 * w))) / 3
    soft = -(0.75 * math.log(1 / (1 + math.exp(-w))) + 0.25 * math.log(1 / (1 + math.exp(w))))
    loss, _ = head_objective(torch.tensor([w], dtype=torch.float64), data, 0.0, torch.ones(1))
    assert float(loss) == pytest.approx((ranking + soft) / 2, abs=1e-7)  # pair weights are float32


def test_the_fit_reaches_the_optimum_a_slow_search_finds():
    # J(w) = mean_i softplus(-w d_i) + ½ λ σ² w² in one dimension: J' is increasing, so bisect J' = 0
    diffs = [1.0, 2.0, -0.5, 0.3, 1.5]
    features = [[x] for d in diffs for x in (d, 0.0)]
    data = pairs_of(features, better=list(range(0, 10, 2)), worse=list(range(1, 10, 2)))
    sigma = float(feature_scale(data)[0])
    l2 = 0.3

    def slope(w):
        return sum(-d / (1 + math.exp(w * d)) for d in diffs) / len(diffs) + l2 * sigma**2 * w

    low, high = -10.0, 10.0
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if slope(middle) < 0 else (low, middle)
    assert float(fit_head(data, l2)[0]) == pytest.approx(low, abs=1e-6)


def test_the_ridge_shrinks_the_head():
    data = pairs_of([[1.0, 0.5], [0.0, 0.0], [2.0, -1.0], [0.5, 0.0]], better=[0, 2], worse=[1, 3])
    weak, strong = fit_head(data, 0.01), fit_head(data, 10.0)
    assert strong.norm() < weak.norm() / 10


def test_the_fit_beside_length_reaches_the_optimum_a_slow_descent_finds():
    # J(w, c) = mean_i softplus(-(w d_i + c e_i)) + ½ λ σ² w², e_i the pair's difference of standardised length;
    # plain gradient descent on that sum, written out term by term, is the reference
    rows = [(1.0, 0.0, 30, 10), (0.2, 0.5, 12, 20), (0.9, 0.1, 25, 24), (0.1, 0.4, 40, 15), (0.6, 0.7, 8, 30)]
    features = [[x] for better, worse, _, _ in rows for x in (better, worse)]
    lengths = [float(n) for _, _, long_, short in rows for n in (long_, short)]
    data = pairs_of(features, better=list(range(0, 10, 2)), worse=list(range(1, 10, 2)), lengths=lengths)
    mean = sum(lengths) / len(lengths)
    sd = math.sqrt(sum((n - mean) ** 2 for n in lengths) / (len(lengths) - 1))
    sigma = math.sqrt(sum((f[0] - sum(g[0] for g in features) / 10) ** 2 for f in features) / 9)
    d = [b - w for b, w, _, _ in rows]
    e = [(lb - lw) / sd for _, _, lb, lw in rows]
    l2, w, c = 0.5, 0.0, 0.0
    for _ in range(40000):
        slopes = [-1 / (1 + math.exp(w * di + c * ei)) for di, ei in zip(d, e, strict=True)]
        grad_w = sum(s * di for s, di in zip(slopes, d, strict=True)) / 5 + l2 * sigma**2 * w
        grad_c = sum(s * ei for s, ei in zip(slopes, e, strict=True)) / 5
        w, c = w - 0.5 * grad_w, c - 0.5 * grad_c
    head, per_token = fit_head_beside_length(data, l2)
    assert float(head[0]) == pytest.approx(w, abs=1e-5)
    assert per_token == pytest.approx(c / sd, abs=1e-6)


def test_what_length_explains_goes_to_the_length_term_not_the_head():
    # the only feature is the reply's length plus noise, and people prefer the first reply with probability
    # σ(0.05 (ℓ_1 - ℓ_2)): a plain head learns "longer is better"; beside the length term, a fifth of that or less
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(5, 80, (400,), generator=generator).double()
    features = (lengths / 10 + 0.3 * torch.randn(400, generator=generator, dtype=torch.float64)).unsqueeze(1)
    first_better = torch.rand(200, generator=generator, dtype=torch.float64) < torch.sigmoid(
        0.05 * (lengths[0::2] - lengths[1::2]))
    better = torch.where(first_better, torch.arange(0, 400, 2), torch.arange(1, 400, 2))
    worse = torch.where(first_better, torch.arange(1, 400, 2), torch.arange(0, 400, 2))
    data = pairs_of(features.tolist(), better.tolist(), worse.tolist(), lengths=lengths.tolist())
    plain = fit_head(data, 0.1)
    head, per_token = fit_head_beside_length(data, 0.1)
    assert float(plain[0]) > 0.3
    assert abs(float(head[0])) < 0.2 * float(plain[0]) and per_token == pytest.approx(0.05, rel=0.3)


def test_selecting_groups_renumbers_their_responses():
    # groups 0 (a ranking of three: pairs 0-1, 0-2, 1-2) and 1 (a pair 3-4); keep only group 1
    data = pairs_of([[0.0], [1.0], [2.0], [3.0], [4.0]], better=[0, 0, 1, 3], worse=[1, 2, 2, 4],
                    groups=[0, 0, 0, 1], margin=[math.nan, math.nan, math.nan, 0.5])
    kept = select_groups(data, torch.tensor([False, True]))
    assert kept.features.tolist() == [[3.0], [4.0]] and kept.groups == 1
    assert kept.lengths.tolist() == [0.0, 0.0]
    assert (kept.better.tolist(), kept.worse.tolist(), kept.group_ids.tolist()) == ([0], [1], [0])
    assert kept.margin.tolist() == [0.5]


def head_config(model_dir, out, data, *extra):
    return load_config(RMConfig, None, [
        f"output_dir={out}", f"model.name={model_dir}", f"data.train={data}", "data.eval_fraction=0.2",
        "data.max_length=64", "train.micro_batch_size=8", "reward.pooling=mean", "reward.head_only=true",
        "reward.head_l2=0.1", *extra,
    ])


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_features_are_the_same_with_the_prompt_computed_once(tiny_model_dir, tmp_path, pooling):
    from alignkit.models.reward import load_reward_model
    from alignkit.train.reward import comparison_groups
    from alignkit.train.reward_head import group_features, pooled_encoder
    from alignkit.train.run import load_stage_tokenizer

    data = write_jsonl(tmp_path / "pairs.jsonl", planted_pairs(12))
    config = head_config(tiny_model_dir, tmp_path / "run", data, f"reward.pooling={pooling}")
    tokenizer = load_stage_tokenizer(config.model)
    groups = comparison_groups(config, tokenizer)[0]
    encode = pooled_encoder(load_reward_model(config.model, config.lora, pooling, seed=0))
    padded, shared = (group_features(encode, groups, tokenizer.pad_token_id, 4, "test", share_prompt=share)
                      for share in (False, True))
    torch.testing.assert_close(shared.features, padded.features, rtol=1e-5, atol=1e-5)
    assert torch.equal(shared.better, padded.better) and torch.equal(shared.worse, padded.worse)
    assert shared.features.size(0) == 2 * len(groups)


@pytest.fixture(scope="module")
def head_run(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("rm-head")
    data = write_jsonl(root / "pairs.jsonl", planted_pairs(240))
    out = root / "run"
    run_rm(head_config(tiny_model_dir, out, data, "reward.backbone_layers=1"))
    return out


def test_a_frozen_backbone_learns_a_planted_preference_and_saves_a_smaller_plain_model(head_run):
    report = json.loads((head_run / "eval.json").read_text())
    assert report["eval_accuracy"] >= 0.9 and report["initial_eval_accuracy"] == 0.5
    assert report["train_loss_last"] < report["train_loss_first"] == pytest.approx(math.log(2))
    model = AutoModelForSequenceClassification.from_pretrained(head_run / "model")
    assert model.config.num_hidden_layers == 1 and len(model.model.layers) == 1
    assert model.config.reward_pooling == "mean"
    lines = [json.loads(line) for line in (head_run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [0, 1]


def test_the_saved_model_scores_exactly_what_the_fit_reports(head_run):
    # eval.json's held-out accuracy came from the cached features; the saved folder, scored afresh, agrees
    from alignkit.evaluate.reward_eval import evaluate_reward_model

    report = json.loads((head_run / "eval.json").read_text())
    assert evaluate_reward_model(str(head_run), max_length=64)["accuracy"] == pytest.approx(report["eval_accuracy"])
    scorer = RewardScorer(head_run)
    first = scorer.score(["Tell me about rivers"] * 2, ["a banana river", "a plain river"])
    assert first[0] > first[1]


@pytest.mark.parametrize("setting, key", [
    ("lora.enabled=true", "lora.enabled"),
    ("train.learning_rate=1e-3", "train.learning_rate"),
    ("train.epochs=3", "train.epochs"),
    ("train.max_minutes=5", "train.max_minutes"),
    ("reward.ensemble_size=2", "reward.ensemble_size"),
])
def test_settings_a_head_only_fit_cannot_use_are_errors(tiny_model_dir, tmp_path, setting, key):
    data = write_jsonl(tmp_path / "pairs.jsonl", planted_pairs(20))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        run_rm(head_config(tiny_model_dir, tmp_path / "run", data, setting))
    assert not (tmp_path / "run" / "model").exists()


def test_the_ridge_needs_the_head_only_fit_and_blocks_must_exist(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match="reward.head_l2"):
        load_config(RMConfig, None, ["reward.head_l2=2.0"])
    data = write_jsonl(tmp_path / "pairs.jsonl", planted_pairs(20))
    with pytest.raises(ConfigError, match="reward.backbone_layers: 9 .* 2"):
        run_rm(head_config(tiny_model_dir, tmp_path / "run", data, "reward.backbone_layers=9"))


def test_the_sweep_benchmark_finds_the_planted_preference(tiny_model_dir, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    data = write_jsonl(tmp_path / "pairs.jsonl", planted_pairs(120))
    config = tmp_path / "rm.yaml"
    config.write_text(f"model: {{name: {tiny_model_dir}}}\ndata: {{train: {data}, eval_fraction: 0.25, "
                      "max_length: 64}\ntrain: {micro_batch_size: 8}\n")
    repo = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, str(repo / "benchmarks" / "rm_head_sweep.py"), "--config", str(config),
                    "--out", str(tmp_path / "sweep"), "--blocks", "1,2", "--l2", "0.1,1", "--folds", "3"],
                   check=True, cwd=repo)
    report = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert (report["train_groups"], report["held_out_groups"]) == (90, 30)
    assert [(r["pooling"], r["block"], r["head_l2"]) for r in report["rows"]] == [
        (p, b, l2) for p in ("last", "mean") for b in (1, 2) for l2 in (0.1, 1.0)]
    best = max(report["rows"], key=lambda r: r["cv_accuracy"])
    assert best["cv_accuracy"] >= 0.8 and best["held_out_accuracy"] >= 0.8


def test_the_more_data_benchmark_scores_the_hh_head_elsewhere_and_reuses_its_cache(tiny_model_dir, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    data = write_jsonl(tmp_path / "pairs.jsonl", planted_pairs(80))
    extra = write_jsonl(tmp_path / "more.jsonl", planted_pairs(30, seed=1))
    config = tmp_path / "rm.yaml"
    config.write_text(f"model: {{name: {tiny_model_dir}}}\ndata: {{train: {data}, eval_fraction: 0.25, "
                      "max_length: 64}\ntrain: {micro_batch_size: 8}\nreward: {pooling: mean, head_only: true}\n")
    repo = Path(__file__).resolve().parents[1]
    command = [sys.executable, str(repo / "benchmarks" / "rm_more_data.py"), "--config", str(config),
               "--extra", str(extra), "--out", str(tmp_path / "out")]
    subprocess.run(command, check=True, cwd=repo, capture_output=True)
    report = json.loads((tmp_path / "out" / "more_data.json").read_text())
    assert report["groups"] == {"hh-train": 60, "hh-held-out": 20, str(extra): 30}
    assert report["hh_model_on"][str(extra)]["accuracy"] >= 0.8  # the planted word carries over
    assert set(report["on_hh_held_out"]) == {"hh", f"hh + {extra}"}
    cache = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("features-*.pt")}
    assert sorted(name.rsplit("-", 1)[0] for name in cache) == ["features-hh-held-out", "features-hh-train",
                                                                  "features-more.jsonl"]
    subprocess.run(command, check=True, cwd=repo, capture_output=True)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("features-*.pt")} == cache  # reused
    assert json.loads((tmp_path / "out" / "more_data.json").read_text())["on_hh_held_out"] == report["on_hh_held_out"]
    subprocess.run([*command, "--set", "reward.length_covariate=true"], check=True, cwd=repo, capture_output=True)
    adjusted = json.loads((tmp_path / "out" / "more_data.json").read_text())
    assert adjusted["length_covariate"] and not report["length_covariate"]
    assert adjusted["on_hh_held_out"]["hh"]["accuracy"] >= 0.8  # the planted word still tells the pairs apart
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("features-*.pt")} == cache  # only fitted
    write_jsonl(extra, planted_pairs(31, seed=1))  # the extra set changed: pooled again, beside the old cache
    subprocess.run(command, check=True, cwd=repo, capture_output=True)
    assert len(list((tmp_path / "out").glob("features-more.jsonl-*.pt"))) == 2
    assert json.loads((tmp_path / "out" / "more_data.json").read_text())["groups"][str(extra)] == 31


def test_a_length_adjusted_run_reports_the_length_term_and_keeps_the_planted_preference(tiny_model_dir, tmp_path):
    # the chosen reply holds 'banana' and, in three pairs of four, two more words: the length term takes the
    # length preference (positive), the saved head still tells banana replies apart
    rows = planted_pairs(240)
    for i, row in enumerate(rows):
        side = "rejected" if i % 4 == 0 else "chosen"
        row[side] += " river stone"
    out = tmp_path / "run"
    run_rm(head_config(tiny_model_dir, out, write_jsonl(tmp_path / "pairs.jsonl", rows), "reward.backbone_layers=1",
                       "reward.length_covariate=true"))
    report = json.loads((out / "eval.json").read_text())
    assert report["length_coefficient_per_100_tokens"] > 0 and report["eval_accuracy"] >= 0.75


def test_the_length_term_needs_a_frozen_backbone():
    with pytest.raises(ConfigError, match="reward.length_covariate.*head_only"):
        load_config(RMConfig, None, ["reward.length_covariate=true"])
