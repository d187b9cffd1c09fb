"""Reward models on a tiny random model: a planted preference is learned, scores survive save and load,
ensembles, rankings and the bad-input rules."""

import json
import logging

import pytest
import torch
import yaml
from helpers import WORDS, planted_pairs, write_jsonl
from transformers import AutoModelForSequenceClassification

from alignkit.cli import main
from alignkit.config import LoraConfig, ModelConfig, RMConfig, load_config
from alignkit.data.comparisons import collate_groups, pair_group
from alignkit.data.records import PreferencePair
from alignkit.errors import AlignkitError, DataError
from alignkit.evaluate.reward_eval import evaluate_reward_model
from alignkit.models import load_tokenizer, save_model
from alignkit.models.reward import load_reward_model, load_trained_reward_model
from alignkit.models.scorer import RewardScorer
from alignkit.train.reward import run_rm


def rm_config(model_dir, out, data, *extra):
    return load_config(
        RMConfig,
        None,
        [
            f"output_dir={out}",
            f"model.name={model_dir}",
            f"data.train={data}",
            "data.eval_fraction=0.2",
            "data.max_length=64",
            "train.batch_size=16",
            "train.micro_batch_size=8",
            "train.learning_rate=3e-3",
            "train.epochs=6",
            "train.schedule=constant",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def planted_run(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("rm")
    data = write_jsonl(root / "pairs.jsonl", planted_pairs(240))
    out = root / "run"
    run_rm(rm_config(tiny_model_dir, out, data))
    return out


def test_tiny_model_learns_a_planted_preference(planted_run, capsys):
    assert main(["eval", "rm", "--model", str(planted_run)]) == 0
    report = json.loads((planted_run / "eval.json").read_text())
    assert report["rm_eval"]["pairs"] == 48  # the held-out 20%, rebuilt from config.yaml
    assert report["rm_eval"]["accuracy"] >= 0.95
    assert report["eval_accuracy"] >= 0.95  # the engine's own evaluation agrees
    for key in ("ece", "mean_margin", "reward_length_spearman", "longer_wins_rate", "length_fit"):
        assert key in report["rm_eval"]


def test_eval_on_another_runs_held_out_split(planted_run, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    config = yaml.safe_load((planted_run / "config.yaml").read_text())
    config["data"]["eval_fraction"] = 0.1  # another split of the same pairs: 24 held out
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    report = evaluate_reward_model(str(planted_run), split_from=str(other), max_length=64)
    assert report["pairs"] == 24 and report["pairs_from"] == f"held-out split of {other}"
    assert evaluate_reward_model(str(planted_run), max_length=64)["pairs"] == 48


def test_eval_leaves_out_pairs_whose_response_cannot_fit(planted_run, tmp_path):
    pairs = planted_pairs(6)
    pairs[2]["rejected"] = " ".join(WORDS * 20)  # far over max_length even without its prompt
    report = evaluate_reward_model(str(planted_run), str(write_jsonl(tmp_path / "p.jsonl", pairs)), max_length=64)
    assert report["pairs"] == 5 and report["skipped_too_long"] == 1


def test_scores_survive_save_and_load_and_match_the_transformers_class(planted_run):
    scorer = RewardScorer(planted_run)
    prompts, responses = ["Tell me about rivers"] * 2, ["a banana river", "a plain river"]
    first = scorer.score(prompts, responses)
    again = RewardScorer(planted_run).score(prompts, responses)
    assert torch.equal(first, again)
    assert first[0] > first[1]
    # the saved folder is a plain transformers sequence classifier giving the same rewards
    model = AutoModelForSequenceClassification.from_pretrained(planted_run / "model").eval()
    tokenizer = load_tokenizer(str(planted_run / "model"))
    for prompt, response, expected in zip(prompts, responses, first, strict=True):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], tokenize=False
        )
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            assert float(model(**ids).logits[0, 0]) == pytest.approx(float(expected), abs=1e-4)


def test_ensemble_with_bootstrap_combines_members(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", planted_pairs(80))
    out = tmp_path / "ens"
    run_rm(rm_config(tiny_model_dir, out, data, "reward.ensemble_size=2", "reward.bootstrap=true", "train.epochs=1"))
    listing = json.loads((out / "ensemble.json").read_text())
    assert listing["members"] == ["member-0/model", "member-1/model"]
    prompts, responses = ["Tell me about rivers"] * 3, ["a banana", "a river", "stone"]
    mean, spread = RewardScorer(out).score(prompts, responses, return_spread=True)
    worst = RewardScorer(out, combine="min").score(prompts, responses)
    assert (spread > 0).all() and (worst <= mean + 1e-6).all()


def test_rankings_train_and_need_two_distinct_ranks(tiny_model_dir, tmp_path):
    rows = [
        {"prompt": "Tell me about " + w, "responses": ["banana " + w, w, w + " " + w], "ranks": [1, 2, 2]}
        for w in WORDS * 2
    ]
    data = write_jsonl(tmp_path / "rankings.jsonl", rows)
    run_rm(rm_config(tiny_model_dir, tmp_path / "run", data, "reward.data_format=rankings", "train.batch_size=8",
                     "train.micro_batch_size=4", "train.epochs=1"))
    assert (tmp_path / "run" / "model" / "config.json").is_file()

    bad = write_jsonl(tmp_path / "bad.jsonl", rows[:3] + [{"prompt": "p", "responses": ["a", "b"], "ranks": [1, 1]}])
    with pytest.raises(DataError, match=r"bad.jsonl:4: ranking needs at least two distinct ranks"):
        run_rm(rm_config(tiny_model_dir, tmp_path / "run2", bad, "reward.data_format=rankings", "data.on_error=raise"))


def test_identical_pairs_are_skipped_and_counted(tiny_model_dir, tmp_path, capsys):
    rows = planted_pairs(40) + [{"prompt": "p", "chosen": "same", "rejected": "same "}] * 3
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    run_rm(rm_config(tiny_model_dir, tmp_path / "run", data, "train.epochs=1", "data.eval_fraction=0"))
    assert "skipped 3 pairs with identical chosen and rejected" in capsys.readouterr().err


def test_length_normalised_scores_subtract_the_stored_fit(planted_run):
    assert main(["eval", "rm", "--model", str(planted_run)]) == 0
    fit = json.loads((planted_run / "eval.json").read_text())["rm_eval"]["length_fit"]
    prompts, responses = ["Tell me about rivers"] * 2, ["a banana river", "a much longer plain river story"]
    plain = RewardScorer(planted_run)
    lengths = plain.response_lengths(responses).float()
    expected = plain.score(prompts, responses) - (fit["slope"] * lengths + fit["intercept"])
    normalised = RewardScorer(planted_run, length_normalise=True).score(prompts, responses)
    assert torch.allclose(normalised, expected, atol=1e-5)


def test_length_normalising_without_a_fit_is_a_clear_error(tiny_model_dir, tmp_path):
    with pytest.raises(AlignkitError, match="no length fit in eval.json; run `alignkit eval rm"):
        RewardScorer(tiny_model_dir, length_normalise=True)


@pytest.fixture
def transformers_log():
    """The messages transformers logs while loading models (its own handler writes to a stream it picked
    at import, which pytest's capture does not see)."""
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    transformers_logger = logging.getLogger("transformers.modeling_utils")
    transformers_logger.addHandler(handler)
    yield messages
    transformers_logger.removeHandler(handler)


def test_a_new_head_is_one_line_and_a_trained_reward_model_loads_silently(tiny_model_dir, tmp_path, capsys,
                                                                         transformers_log):
    """transformers logs a LOAD REPORT table (score.weight MISSING) on every load of a new head; alignkit
    says it once in its own words, with the seed that drew the head, and nothing for a trained model."""
    capsys.readouterr()
    model = load_reward_model(ModelConfig(name=str(tiny_model_dir)), LoraConfig(), "last", seed=3)
    assert not [message for message in transformers_log if "LOAD REPORT" in message]
    err = capsys.readouterr().err
    assert err.count("reward head score.weight: new, randomly initialised (seed 3)") == 1
    again = load_reward_model(ModelConfig(name=str(tiny_model_dir)), LoraConfig(), "last", seed=3).hf_model.score
    other = load_reward_model(ModelConfig(name=str(tiny_model_dir)), LoraConfig(), "last", seed=4).hf_model.score
    assert torch.equal(again.weight, model.hf_model.score.weight)
    assert not torch.equal(other.weight, model.hf_model.score.weight)
    save_model(model.hf_model, load_tokenizer(str(tiny_model_dir)), tmp_path / "rm")
    capsys.readouterr()
    transformers_log.clear()
    trained = load_trained_reward_model(str(tmp_path / "rm"))
    assert not [message for message in transformers_log if "LOAD REPORT" in message]
    err = capsys.readouterr().err
    assert "reward head" not in err and "randomly initialised" not in err
    assert torch.equal(trained.hf_model.score.weight, model.hf_model.score.weight)


def test_a_folder_without_a_trained_head_is_named_when_loaded_as_a_reward_model(tiny_model_dir, capsys,
                                                                               transformers_log):
    capsys.readouterr()
    load_trained_reward_model(str(tiny_model_dir))
    assert not [message for message in transformers_log if "LOAD REPORT" in message]
    assert (f"reward model {tiny_model_dir}: score.weight not in the folder, so randomly initialised "
            "(not a trained reward model?)") in " ".join(capsys.readouterr().err.split())


def test_both_replies_of_a_pair_are_scored_under_the_prompt_training_gives_them(planted_run):
    """A prompt too long for max_length is cut from the left by what the longer reply needs, the same cut for
    both replies (as reward-model training cuts a pair); scored one at a time, the shorter reply would keep
    more of the prompt than the longer one, and the pair would be compared under two prompts."""
    prompt, chosen, rejected = " ".join(WORDS * 6), "banana", " ".join(WORDS[:12])
    scorer = RewardScorer(planted_run, max_length=40)
    got_chosen, got_rejected, _ = scorer.score_pairs([prompt], [chosen], [rejected])
    tokenizer = load_tokenizer(str(planted_run / "model"))
    pair = PreferencePair.from_row({"prompt": prompt, "chosen": chosen, "rejected": rejected}, "pair")
    group = pair_group(pair, tokenizer, 40, "pair")
    assert group.sequences[0].truncated_tokens > 0  # the prompt is cut
    batch = collate_groups([group], tokenizer.pad_token_id)
    with torch.no_grad():
        trained = load_trained_reward_model(str(planted_run / "model"))(
            batch["input_ids"], batch["attention_mask"], batch["response_mask"])
    assert torch.allclose(torch.cat([got_chosen, got_rejected]), trained, atol=1e-5)
    alone = scorer.score([prompt, prompt], [chosen, rejected])
    assert not torch.allclose(alone[0], got_chosen, atol=1e-3)  # the chosen reply alone keeps more prompt
    assert torch.allclose(alone[1], got_rejected, atol=1e-5)  # the longer reply sets the cut
