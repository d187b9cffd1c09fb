"""The DPO family on a tiny random model: a planted preference is learned, the reference strategies
agree, the reference cache is reused, every variant learns it, and bad input is refused clearly."""

import json
import math
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
import yaml
from helpers import assert_same_curves, planted_pairs, write_jsonl

from alignkit.cli import main
from alignkit.config import DPOConfig, PreferenceConfig, load_config
from alignkit.data.comparisons import tokenize_response
from alignkit.data.preference import PreferenceRow, pair_rows
from alignkit.data.sources import load_records
from alignkit.data.tokenize import IGNORE_INDEX, TokenizedExample
from alignkit.errors import ConfigError, DataError
from alignkit.models import apply_lora, load_causal_lm, load_tokenizer
from alignkit.models.reference import CACHE_FILE, DisabledAdapter, Precomputed, precompute_reference_logps
from alignkit.train.engine import Engine
from alignkit.train.preference import PairwiseStep, run_dpo, with_paper_beta


def dpo_config(model_dir, out, data, *extra):
    return load_config(DPOConfig, None, [
        f"output_dir={out}",
        f"model.name={model_dir}",
        f"data.train={data}",
        "data.eval_fraction=0.2",
        "data.max_length=64",
        "train.batch_size=8",
        "train.micro_batch_size=4",
        "train.learning_rate=3e-3",
        "train.schedule=constant",
        "preference.beta=0.5",
        *extra,
    ])


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("dpo-data") / "pairs.jsonl", planted_pairs(80))


@pytest.fixture(scope="module")
def planted_run(tiny_model_dir, pairs_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("dpo") / "run"
    run_dpo(dpo_config(tiny_model_dir, out, pairs_file, "train.epochs=3"))
    return out


def test_dpo_learns_a_planted_preference(planted_run):
    report = json.loads((planted_run / "eval.json").read_text())
    assert report["eval_reward_accuracy"] >= 0.95
    assert report["eval_reward_margin"] > 0
    assert report["eval_loss"] < math.log(2)
    logged = read_metrics(planted_run)[-1]
    for key in ("reward_chosen", "reward_rejected", "reward_margin", "reward_accuracy", "logp_chosen",
                "logp_rejected", "length_chosen", "length_rejected", "grad_norm", "lr"):
        assert key in logged
    assert (planted_run / "model" / "model.safetensors").exists()


def test_policy_equal_to_reference_gives_the_known_start(tiny_model_dir, pairs_file, tmp_path):
    """Why no evaluation runs before training: with π_θ = π_ref every margin is 0 (a tie, counted ½)
    and the DPO loss is log 2."""
    config = dpo_config(tiny_model_dir, tmp_path / "run", pairs_file, "lora.enabled=true")
    tokenizer = load_tokenizer(str(tiny_model_dir))
    model = apply_lora(load_causal_lm(config.model), config.lora)
    step = PairwiseStep(config.preference, DisabledAdapter(), tokenizer.pad_token_id)
    assert not step.evaluate_at_start
    loaded = load_records(str(pairs_file), "preference")
    records = list(zip(loaded.records, loaded.locations, strict=True))[:8]
    rows = pair_rows(records, tokenizer, 64, label="eval", on_error="raise")
    metrics = Engine(model, tokenizer, step, config.train, tmp_path / "run").evaluate(rows)
    assert metrics["eval_reward_accuracy"] == 0.5
    assert metrics["eval_reward_margin"] == 0.0
    assert metrics["eval_loss"] == pytest.approx(math.log(2), abs=1e-6)


@pytest.mark.parametrize("strategy", ["copy", "precomputed"])
def test_reference_strategies_give_the_adapter_disabled_numbers(tiny_model_dir, pairs_file, tmp_path, strategy):
    """With LoRA, a frozen copy, precomputed log-probs and the adapter-disabled policy are the same π_ref."""
    runs = {}
    for name in ("adapter", strategy):
        runs[name] = tmp_path / name
        run_dpo(dpo_config(tiny_model_dir, runs[name], pairs_file, "train.max_steps=3", "train.eval_every=2",
                           "lora.enabled=true", "data.max_examples=24", "data.max_eval_examples=8",
                           f"preference.reference={name}"))
    assert_same_curves(read_metrics(runs["adapter"]), read_metrics(runs[strategy]),
                       ("loss", "eval_loss", "reward_margin", "eval_reward_margin"))
    report = json.loads((runs[strategy] / "eval.json").read_text())
    assert report["eval_examples"] == 8  # every held-out pair, in two micro-batches of 4


def test_precomputed_reference_is_cached_and_reused(tiny_model_dir, tokenizer, tmp_path):
    model = load_causal_lm(load_config(DPOConfig, None, [f"model.name={tiny_model_dir}"]).model)
    prompt = ({"role": "user", "content": "Say something"},)

    def rows():
        return [PreferenceRow(tuple(tokenize_response(prompt, text, tokenizer, 64, "test") for text in pair))
                for pair in (("a cat", "a dog"), ("one", "two three"))]

    def compute(net, name):
        splits = {"train": rows(), "eval": rows()[:1]}
        precompute_reference_logps(net, splits, tokenizer.pad_token_id, batch_size=3, device=torch.device("cpu"),
                                   cache_dir=tmp_path, model_name=name)
        return [row.reference_logps for row in splits["train"]]

    first = compute(model, "tiny")
    assert (tmp_path / CACHE_FILE).exists()
    assert all(len(values) == 2 and all(v < 0 for v in values) for values in first)
    for p in model.parameters():
        p.data.add_(0.5)  # another model: the same inputs and name must come from the cache
    assert compute(model, "tiny") == first
    assert compute(model, "another-model") != first  # another fingerprint recomputes


# β when none is set: SimPO's paper tunes it in 2.0-2.5 (with γ/β ≈ 0.5), the others use DPO's 0.1
DEFAULT_BETA = {"dpo": 0.1, "cdpo": 0.1, "ipo": 0.1, "hinge": 0.1, "kto": 0.1, "orpo": 0.1, "simpo": 2.0}


@pytest.mark.parametrize("loss", sorted(DEFAULT_BETA))
def test_every_variant_learns_a_planted_preference(tiny_model_dir, pairs_file, tmp_path, loss):
    """Chosen replies hold the word 'banana', rejected ones do not. After 24 steps at the loss's default β,
    the chosen reply scores higher on >= 80% of held-out pairs (the implicit reward β log π/π_ref; SimPO's
    β mean log π for ORPO and SimPO), and the mean margin grew from where it started (0 with a reference,
    where π_θ starts as π_ref)."""
    out = tmp_path / loss
    smoothing = ["preference.label_smoothing=0.1"] if loss == "cdpo" else []
    result = run_dpo(load_config(DPOConfig, None, [
        f"output_dir={out}", f"model.name={tiny_model_dir}", f"data.train={pairs_file}", "data.eval_fraction=0.2",
        "data.max_length=64", "train.batch_size=8", "train.micro_batch_size=8", "train.epochs=3",
        "train.learning_rate=3e-3", "train.schedule=constant", f"preference.loss={loss}",
        *smoothing]))
    assert result.steps == 24
    assert yaml.safe_load((out / "config.yaml").read_text())["preference"]["beta"] == DEFAULT_BETA[loss]
    start = result.eval_before.get("eval_reward_margin", 0.0)
    assert result.eval_after["eval_reward_accuracy"] >= 0.8
    assert result.eval_after["eval_reward_margin"] > start + 0.05 * DEFAULT_BETA[loss]


def test_a_given_beta_is_kept_and_a_missing_one_is_the_losss_default():
    assert PreferenceConfig().beta is None
    assert with_paper_beta(PreferenceConfig(loss="simpo")).beta == 2.0
    assert with_paper_beta(PreferenceConfig(loss="ipo")).beta == 0.1
    assert with_paper_beta(PreferenceConfig(loss="simpo", beta=0.3)).beta == 0.3
    assert PreferenceConfig().simpo_gamma == 1.0  # γ/β = 0.5 at β = 2


class UniformLM(torch.nn.Module):
    """Every next token has probability 1/4."""

    def forward(self, input_ids, **_):
        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, 4))


def test_ipo_regresses_the_summed_log_ratio_difference_onto_1_over_2_beta():
    """Azar et al. 2023, eq. 17 on sequence log-ratios: pc - rc = 1, pr - rr = -1/2, so h = 3/2 and at β = 1/2
    the loss is (3/2 - 1)² = 1/4. (Per-token averages, a 3-token chosen and a 1-token rejected reply, would
    give h = 1/3 + 1/2 and (5/6 - 1)² = 1/36.)"""
    chosen = TokenizedExample([1, 2, 3, 1], [IGNORE_INDEX, 2, 3, 1])
    rejected = TokenizedExample([1, 0], [IGNORE_INDEX, 0])
    log4 = math.log(4.0)
    row = PreferenceRow((chosen, rejected), reference_logps=(-3 * log4 - 1.0, -log4 + 0.5))
    step = PairwiseStep(PreferenceConfig(loss="ipo", beta=0.5, share_prompt=False), Precomputed(), pad_token_id=0)
    out = step.loss(UniformLM(), step.collate([row]))
    assert float(out.loss_sum) == pytest.approx(0.25, rel=1e-6)
    assert float(out.sums["reward_margin"]) == pytest.approx(0.5 * 1.5, rel=1e-6)  # β h


def test_kto_on_unpaired_data(tiny_model_dir, tmp_path):
    rows = [{"prompt": p["prompt"], "completion": p[key], "desirable": key == "chosen"}
            for p in planted_pairs(20) for key in ("chosen", "rejected")]
    data = write_jsonl(tmp_path / "unpaired.jsonl", rows)
    run_dpo(dpo_config(tiny_model_dir, tmp_path / "run", data, "train.max_steps=2", "preference.loss=kto",
                       "preference.data_format=unpaired", "preference.reference=precomputed"))
    assert (tmp_path / "run" / CACHE_FILE).exists()
    assert "kl" in read_metrics(tmp_path / "run")[-1]

    only_good = write_jsonl(tmp_path / "good.jsonl", [r for r in rows if r["desirable"]])
    with pytest.raises(DataError, match="no undesirable"):
        run_dpo(dpo_config(tiny_model_dir, tmp_path / "bad", only_good, "preference.loss=kto",
                           "preference.data_format=unpaired"))


@pytest.mark.parametrize("settings, message", [
    (["preference.loss=orpo", "preference.reference=copy"], "orpo uses no reference"),
    (["preference.loss=dpo", "preference.reference=none"], "needs a reference"),
    (["preference.reference=adapter"], "needs lora.enabled"),
    (["preference.data_format=unpaired"], "trains only with loss kto"),
])
def test_impossible_settings_are_refused_before_anything_runs(tiny_model_dir, pairs_file, tmp_path, settings,
                                                              message, capsys):
    args = ["dpo", "--set", f"output_dir={tmp_path / 'run'}", "--set", f"model.name={tiny_model_dir}",
            "--set", f"data.train={pairs_file}"]
    for setting in settings:
        args += ["--set", setting]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError):
        run_dpo(load_config(DPOConfig, None, [a for a in args[1:] if a != "--set"]))


def test_identical_pairs_are_skipped_and_counted(tiny_model_dir, tmp_path, capsys):
    rows = planted_pairs(20)
    rows[3]["rejected"] = rows[3]["chosen"]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    run_dpo(dpo_config(tiny_model_dir, tmp_path / "run", data, "train.max_steps=1", "data.eval_fraction=0.0"))
    assert "skipped 1 pairs with identical chosen and rejected" in capsys.readouterr().err


def test_help_lists_every_variant_and_its_paper(capsys):
    with pytest.raises(SystemExit):
        main(["dpo", "--help"])
    text = capsys.readouterr().out
    for name in ("Rafailov", "Azar", "Mitchell", "SLiC", "Ethayarajh", "Hong", "Meng", "preference.reference"):
        assert name in text


def torchrun_dpo(out, processes: int, settings: list[str]) -> list[dict]:
    """``alignkit dpo`` under torchrun with ``processes`` gloo processes; its logged metrics."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "-m", "alignkit.cli",
           "dpo", "--set", f"output_dir={out}", *[arg for s in settings for arg in ("--set", s)]]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, [line for line in done.stderr.splitlines() if "rror" in line][:5]
    return read_metrics(out)


@pytest.mark.parametrize("reference", ["copy", "precomputed"])
def test_two_processes_match_one_process(tiny_model_dir, pairs_file, tmp_path, reference):
    """torchrun with 2 gloo processes and the same global batch gives the same loss curve, with the
    reference as a frozen copy and precomputed before training."""
    settings = [f"model.name={tiny_model_dir}", f"data.train={pairs_file}", "data.eval_fraction=0.2",
                "data.max_length=64", "data.max_examples=16", "train.batch_size=8", "train.micro_batch_size=2",
                "train.max_steps=2", "train.learning_rate=3e-3", f"preference.reference={reference}"]
    curves = [[(r["step"], r["loss"]) for r in torchrun_dpo(tmp_path / str(n), n, settings) if "loss" in r]
              for n in (1, 2)]
    assert len(curves[0]) == 2
    for (step_a, a), (step_b, b) in zip(*curves, strict=True):
        assert step_a == step_b and a == pytest.approx(b, rel=1e-4, abs=1e-5)


def test_kto_reference_point_is_estimated_over_the_whole_optimizer_batch(tiny_model_dir, pairs_file, tmp_path):
    """z0 (logged as kl) and the loss are the same with one micro-batch of 8 pairs, four micro-batches of 2
    (accumulation) and two processes running two micro-batches of 2 each (Ethayarajh et al. 2024, §4.1:
    z0 is the mismatched pairs' KL over the batch); the evaluation's z0 is one estimate over the eval set."""
    settings = [f"model.name={tiny_model_dir}", f"data.train={pairs_file}", "data.eval_fraction=0.2",
                "data.max_length=64", "data.max_examples=24", "data.max_eval_examples=8", "train.batch_size=8",
                "train.max_steps=3", "train.learning_rate=1e-2", "train.schedule=constant", "preference.loss=kto",
                "preference.beta=0.5"]
    one_batch, accumulated, two_processes = (tmp_path / name for name in ("one-batch", "accumulated", "two"))
    run_dpo(load_config(DPOConfig, None, [f"output_dir={one_batch}", *settings, "train.micro_batch_size=8"]))
    run_dpo(load_config(DPOConfig, None, [f"output_dir={accumulated}", *settings, "train.micro_batch_size=2"]))
    torchrun_dpo(two_processes, 2, [*settings, "train.micro_batch_size=2"])
    runs = (one_batch, accumulated, two_processes)
    train = [[(r["step"], r["kl"], r["loss"]) for r in read_metrics(run) if "kl" in r] for run in runs]
    assert [step for step, _, _ in train[0]] == [1, 2, 3]
    assert max(kl for _, kl, _ in train[0]) > 1e-3  # the policy moved: z0 is not clamped to 0 throughout
    for other in train[1:]:
        for (step_a, kl_a, loss_a), (step_b, kl_b, loss_b) in zip(train[0], other, strict=True):
            assert step_a == step_b
            assert kl_b == pytest.approx(kl_a, rel=1e-4, abs=1e-6)
            assert loss_b == pytest.approx(loss_a, rel=1e-4, abs=1e-6)
    evals = [json.loads((run / "eval.json").read_text()) for run in runs]
    assert evals[0]["eval_kl"] > 1e-3
    for other in evals[1:]:
        for key in ("eval_kl", "eval_loss"):
            assert other[key] == pytest.approx(evals[0][key], rel=1e-4, abs=1e-6), key
