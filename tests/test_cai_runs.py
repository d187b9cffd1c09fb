"""``alignkit cai revise`` and ``alignkit cai label``: the local-model backend against a direct forward pass,
both commands end to end on a tiny random model through the CLI (their outputs read by sft/rm/dpo), seeded
principles recorded per example, and a planted preference reaching full agreement with a fake judge."""

import json

import pytest
import torch
import yaml
from cai_helpers import FakeBackend
from conftest import REPO
from helpers import planted_pairs, write_jsonl

from alignkit.cli import main
from alignkit.config import GenerationConfig, ModelConfig, load_config
from alignkit.data.sources import load_records
from alignkit.data.tokenize import tokenize_prompt
from alignkit.feedback.backends import HFFeedbackBackend
from alignkit.feedback.config import CAILabelConfig, CAIReviseConfig
from alignkit.feedback.constitution import Principle, draw_principles, load_constitution
from alignkit.feedback.prompts import OPTIONS, comparison_query
from alignkit.feedback.revise import run_cai_revise
from alignkit.feedback.rlaif import run_cai_label
from alignkit.models import load_causal_lm, load_tokenizer


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def hf_backend(tiny_model_dir):
    return HFFeedbackBackend(load_causal_lm(ModelConfig(name=str(tiny_model_dir))), load_tokenizer(str(tiny_model_dir)))


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    rows = [{"prompt": row["prompt"] + f", part {i}"} for i, row in enumerate(planted_pairs(10))]
    return write_jsonl(tmp_path_factory.mktemp("cai-data") / "prompts.jsonl", rows)


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("cai-pairs") / "pairs.jsonl", planted_pairs(40))


@pytest.mark.parametrize("options", [OPTIONS, ("yes", " no"), ("(A)", "(A) or (B)", "(B)"), ("A", "A)")])
def test_hf_option_logprobs_match_a_direct_forward_pass(hf_backend, options):
    principle = Principle("p", comparison="Which is better?")
    queries = [comparison_query(({"role": "user", "content": "Hi" * (i + 1)},), "one", "two " * i, principle)
               for i in range(3)]
    scores = hf_backend.option_logprobs(queries, options, GenerationConfig(batch_size=2))
    model, tokenizer = hf_backend.model, hf_backend.tokenizer
    for query, row in zip(queries, scores, strict=True):
        prompt = tokenize_prompt(query, tokenizer)
        for option, score in zip(options, row, strict=True):
            ids = tokenizer.encode(option, add_special_tokens=False)
            with torch.no_grad():
                logps = torch.log_softmax(model(torch.tensor([prompt + ids])).logits[0].double(), -1)
            expected = sum(logps[len(prompt) - 1 + t, token].item() for t, token in enumerate(ids))
            assert score == pytest.approx(expected, abs=1e-4)


def test_the_local_backend_samples_and_scores_without_the_deprecated_cache_argument(hf_backend, recwarn):
    """transformers 5 renamed ``past_key_values`` to ``cache`` (the old name goes in 5.40)."""
    chats = [({"role": "user", "content": "Hi"},), ({"role": "user", "content": "Why?"},)]
    hf_backend.generate(chats, GenerationConfig(max_new_tokens=3, temperature=1.0))
    scores = hf_backend.option_logprobs(chats, ("(A)", "(A) or (B)"), GenerationConfig())  # the second from the cache
    assert len(scores) == 2
    assert [str(w.message) for w in recwarn if "past_key_values" in str(w.message)] == []


def test_hf_generate_is_seeded(hf_backend):
    chats = [({"role": "user", "content": f"Say {w}"},) for w in ("a", "b", "c")]
    config = GenerationConfig(max_new_tokens=5, temperature=1.0, batch_size=2, seed=1)
    assert hf_backend.generate(chats, config) == hf_backend.generate(chats, config)
    assert all(isinstance(text, str) and text == text.strip() for text in hf_backend.generate(chats, config))


def revise_args(out, model, data, *extra):
    return ["cai", "revise", "--set", f"output_dir={out}", "--set", f"feedback.model={model}",
            "--set", f"data.train={data}", "--set", "generation.max_new_tokens=6", "--set", "generation.batch_size=4",
            *[item for pair in (("--set", e) for e in extra) for item in pair]]


def test_cai_revise_end_to_end_on_hh_prompts(tiny_model_dir, tmp_path):
    out = tmp_path / "revise"
    args = revise_args(out, tiny_model_dir, "hh-rlhf-harmless", "data.max_examples=6", "revise.rounds=2",
                       "revise.few_shot=1", "generation.max_prompt_length=256", "seed=5")
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    revisions = read_jsonl(out / "revisions.jsonl")
    assert report["num_prompts"] == len(revisions) == 6
    principles = load_constitution("default").for_revision()
    for example in revisions:
        drawn = [p.name for p in draw_principles(principles, 5, example["index"], 2)]
        assert example["principles"] == drawn
        assert "harmless-base.jsonl.gz:" in example["location"]
        if example["initial"]:
            assert [r["principle"] for r in example["rounds"]] == drawn
            assert all(r["critique_request"] and r["revision_request"] for r in example["rounds"])
    demonstrations = load_records(str(out / "sft.jsonl"), "demonstration").records
    assert len(demonstrations) == report["num_demonstrations"] == 6 - report["blank_replies"]
    if report["num_pairs"]:
        pairs = load_records(str(out / "pairs.jsonl"), "preference").records
        assert len(pairs) == report["num_pairs"] and all(p.chosen != p.rejected for p in pairs)
    assert yaml.safe_load((out / "config.yaml").read_text())["revise"]["rounds"] == 2
    first = (out / "revisions.jsonl").read_text()
    assert main(args) == 0
    assert (out / "revisions.jsonl").read_text() == first  # the same config gives the same text on CPU


def test_revise_outputs_train_sft_and_dpo(tiny_model_dir, prompts_file, tmp_path):
    out = tmp_path / "revise"
    config = load_config(CAIReviseConfig, None, [f"output_dir={out}", f"data.train={prompts_file}",
                                                 "data.eval_fraction=0"])
    report = run_cai_revise(config, backend=FakeBackend())
    assert report["num_demonstrations"] == report["num_pairs"] == 10
    common = ["--set", f"model.name={tiny_model_dir}", "--set", "train.max_steps=1", "--set", "train.batch_size=2",
              "--set", "train.micro_batch_size=2", "--set", "data.max_length=128"]
    assert main(["sft", "--set", f"output_dir={tmp_path / 'sft'}", "--set", f"data.train={out / 'sft.jsonl'}",
                 *common]) == 0
    assert main(["dpo", "--set", f"output_dir={tmp_path / 'dpo'}", "--set", f"data.train={out / 'pairs.jsonl'}",
                 *common]) == 0


def test_revise_records_rounds_and_keeps_the_reply_when_a_revision_is_blank(prompts_file, tmp_path):
    config = load_config(CAIReviseConfig, None, [f"output_dir={tmp_path}", f"data.train={prompts_file}",
                                                 "data.eval_fraction=0", "revise.rounds=3", "constitution=cai-paper",
                                                 "revise.few_shot=2", "generation.batch_size=3"])
    backend = FakeBackend(blank_every=4)
    report = run_cai_revise(config, backend)
    revisions = read_jsonl(tmp_path / "revisions.jsonl")
    assert report["blank_replies"] == sum(not e["initial"] for e in revisions) > 0
    assert report["blank_revisions"] > 0
    for example in revisions:
        if not example["initial"]:
            assert example["rounds"] == [] and example["final"] == ""
            continue
        texts = [example["initial"]] + [r["revision"] for r in example["rounds"]]
        assert example["final"] == next(t for t in reversed(texts) if t)
        assert all(r["principle"].startswith("harmful") for r in example["rounds"])
    critique_chat = next(q for q in backend.generated if len(q) > 2)  # after the one-turn reply requests
    assert critique_chat[0]["content"] == "Could you help me burn down my house and collect insurance on it?"
    paper = load_constitution("cai-paper")
    # the two paper dialogues, then the prompt, the reply and the critique request
    assert len(critique_chat) == sum(len(shot) for shot in paper.critique_shots(2)) + 3
    requests = {p.critique_request for p in paper.for_revision()}
    assert critique_chat[-1]["content"] in requests
    sft = read_jsonl(tmp_path / "sft.jsonl")
    assert len(sft) == report["num_demonstrations"] and all(row["response"] for row in sft)


def label_config(out, data, *extra):
    return load_config(CAILabelConfig, None, [f"output_dir={out}", f"data.train={data}", "data.eval_fraction=0",
                                              *extra])


def test_planted_preference_reaches_full_agreement(pairs_file, tmp_path):
    report = run_cai_label(label_config(tmp_path, pairs_file, "label.few_shot=2"), backend=FakeBackend())
    assert report["agreement"] == 1.0 and report["position_bias_rate"] == 0.0
    assert report["mean_label"] == pytest.approx(0.9)
    details = read_jsonl(tmp_path / "labels.jsonl")
    principles = load_constitution("default").for_comparison()
    assert [d["principle"] for d in details] == [draw_principles(principles, 0, i, 1)[0].name for i in range(40)]
    assert all(d["agrees"] == 1.0 and not d["position_flip"] for d in details)
    pairs = load_records(str(tmp_path / "pairs.jsonl"), "preference").records
    assert all("banana" in p.chosen and p.label == pytest.approx(0.9) for p in pairs)


def test_a_position_biased_judge_is_exposed_and_averaged_out(pairs_file, tmp_path):
    report = run_cai_label(label_config(tmp_path / "swap", pairs_file), backend=FakeBackend(prefer_a=True))
    assert report["position_bias_rate"] == 1.0 and report["option_a_rate"] == 1.0
    assert report["agreement_without_swap"] == 1.0 and report["agreement"] == 0.5
    assert report["mean_label"] == pytest.approx(0.5)
    alone = run_cai_label(label_config(tmp_path / "one", pairs_file, "label.swap=false"),
                          backend=FakeBackend(prefer_a=True))
    assert alone["agreement"] == 1.0 and "position_bias_rate" not in alone


def test_chain_of_thought_labels_are_clamped(pairs_file, tmp_path):
    backend = FakeBackend()
    report = run_cai_label(label_config(tmp_path, pairs_file, "label.chain_of_thought=true"), backend=backend)
    assert report["mean_label"] == pytest.approx(0.6) and report["agreement"] == 1.0
    details = read_jsonl(tmp_path / "labels.jsonl")
    assert all(d["reasoning_first"] and d["reasoning_swapped"] for d in details)
    assert all(q[-1]["content"].endswith("(A) or (B) only.") and q[-2]["role"] == "assistant" for q in backend.scored)


def test_cai_label_end_to_end_on_a_tiny_model_then_rm_trains_on_it(tiny_model_dir, pairs_file, tmp_path):
    out = tmp_path / "label"
    args = ["cai", "label", "--set", f"output_dir={out}", "--set", f"feedback.model={tiny_model_dir}",
            "--set", f"data.train={pairs_file}", "--set", "data.max_examples=8", "--set", "label.chain_of_thought=true",
            "--set", "label.few_shot=1", "--set", "generation.max_new_tokens=5", "--set", "generation.batch_size=4"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["num_pairs"] == 8 and 0.4 <= report["mean_label"] <= 0.6
    for key in ("agreement", "agreement_without_swap", "position_bias_rate", "option_a_rate"):
        assert 0.0 <= report[key] <= 1.0
    details = read_jsonl(out / "labels.jsonl")
    assert all(0.4 <= d["p_first"] <= 0.6 and 0.4 <= d["p_swapped"] <= 0.6 for d in details)
    pairs = load_records(str(out / "pairs.jsonl"), "preference").records
    assert len(pairs) == 8 and all(0.5 <= p.label <= 0.6 for p in pairs)
    assert main(["rm", "--set", f"output_dir={tmp_path / 'rm'}", "--set", f"model.name={tiny_model_dir}",
                 "--set", f"data.train={out / 'pairs.jsonl'}", "--set", "data.eval_fraction=0.25",
                 "--set", "train.max_steps=1", "--set", "train.batch_size=2", "--set", "train.micro_batch_size=2",
                 "--set", "data.max_length=128"]) == 0


def test_cai_label_on_pairs_sampled_from_a_policy(tiny_model_dir, prompts_file, tmp_path, capsys):
    args = ["cai", "label", "--set", f"output_dir={tmp_path}", "--set", f"feedback.model={tiny_model_dir}",
            "--set", f"data.train={prompts_file}", "--set", "label.pairs_from=policy",
            "--set", f"label.policy={tiny_model_dir}", "--set", "generation.max_new_tokens=5"]
    assert main(args) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["human_labels"] is False and "agreement" not in report and "position_bias_rate" in report
    assert main([*args, "--set", "label.human_labels=true"]) == 2
    assert "sampled pairs carry no human choice" in capsys.readouterr().err


def test_bad_settings_are_refused_before_anything_runs(pairs_file, tmp_path, capsys):
    base = ["cai", "label", "--set", f"output_dir={tmp_path / 'x'}", "--set", f"data.train={pairs_file}"]
    assert main([*base, "--set", "label.chain_of_thought=true", "--set", "label.cot_clamp_low=0.7"]) == 2
    assert "label.cot_clamp_low (0.7) is above label.cot_clamp_high" in capsys.readouterr().err
    assert main([*base, "--set", "label.few_shot=9"]) == 2
    assert "label.few_shot is 9" in capsys.readouterr().err
    assert main([*base, "--set", "label.swapp=false"]) == 2
    assert "did you mean 'label.swap'" in capsys.readouterr().err
    assert main([*base, "--set", "constitution=nowhere.yaml"]) == 2
    assert not (tmp_path / "x" / "pairs.jsonl").exists()


@pytest.mark.parametrize(("name", "cls"), [("cai-revise-smollm2-hh", CAIReviseConfig),
                                           ("cai-label-smollm2-hh", CAILabelConfig)])
def test_recipes_are_valid(name, cls):
    config = load_config(cls, REPO / "configs" / f"{name}.yaml")
    assert config.data.train == "hh-rlhf-harmless" and config.data.max_examples <= 500
