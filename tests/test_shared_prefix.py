"""The shared-prompt layout: each pair's (or ranking's) prompt computed once gives exactly the
log-probabilities, rewards and gradients of separate padded sequences, and DPO and reward models train
the same with it as without."""

from types import SimpleNamespace

import pytest
import torch
from helpers import WORDS, assert_same_curves, planted_pairs, write_jsonl
from test_dpo import dpo_config, read_metrics
from test_reward_model import rm_config

from alignkit.config import DPOConfig, LoraConfig, ModelConfig, load_config
from alignkit.data.collate import collate
from alignkit.data.shared_prefix import collate_shared_prefix, shared_prefix_length
from alignkit.data.tokenize import TokenizedExample
from alignkit.models import load_causal_lm
from alignkit.models.attention import additive_mask, model_attention_mask
from alignkit.models.reference import model_sequence_logprobs
from alignkit.models.reward import load_reward_model, shared_layout
from alignkit.tensors import IGNORE_INDEX, gathered_sequence_logprobs, sequence_logprobs
from alignkit.train.preference import run_dpo
from alignkit.train.reward import run_rm

X = IGNORE_INDEX


def example(ids, first_label):
    return TokenizedExample(list(ids), [X] * first_label + list(ids[first_label:]))


def test_the_prefix_stops_at_the_first_difference_or_the_first_label():
    assert shared_prefix_length([example([1, 2, 3, 4], 2), example([1, 2, 5], 2)]) == 2
    assert shared_prefix_length([example([1, 2, 3, 4], 3), example([1, 2, 3, 9], 3)]) == 3
    assert shared_prefix_length([example([1, 2, 3, 4], 3), example([1, 2, 3, 4], 2)]) == 2  # labels start earlier
    assert shared_prefix_length([example([1, 2, 3], 1), example([7, 2, 3], 1)]) == 0


def test_hand_built_layout():
    """Pair A: prompt [5, 6], replies [7, 8] and [9]; pair B: prompt [5], replies [3] and [4, 4]."""
    batch = collate_shared_prefix([(example([5, 6, 7, 8], 2), example([5, 6, 9], 2)),
                                   (example([5, 3], 1), example([5, 4, 4], 1))], pad_token_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [0, 5, 3, 4, 4]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 2], [0, 0, 1, 1, 2]]
    assert int(batch["logits_from"]) == 1  # every prefix ends at column 2
    mask = batch["attention_mask"][:, 0].int().tolist()
    assert mask[0] == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 0, 0, 1]]
    assert mask[1] == [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 1, 0, 1, 0], [0, 1, 0, 1, 1]]
    # (row, column from logits_from, token, sequence) of every labelled token
    targets = list(zip(*(batch[k].tolist() for k in ("target_row", "target_column", "target_token",
                                                       "target_sequence")), strict=True))
    assert targets == [(0, 0, 7, 0), (0, 1, 8, 0), (0, 0, 9, 1), (1, 0, 3, 2), (1, 0, 4, 3), (1, 2, 4, 3)]
    assert int(batch["num_sequences"]) == 4
    assert batch["sequence_row"].tolist() == [0, 0, 1, 1]
    assert batch["sequence_end"].tolist() == [3, 4, 2, 4]  # each sequence's last token
    # (row, column, sequence) of every labelled token itself: what mean pooling averages
    replies = list(zip(*(batch[k].tolist() for k in ("reply_row", "reply_column", "reply_sequence")), strict=True))
    assert replies == [(0, 2, 0), (0, 3, 0), (0, 4, 1), (1, 2, 2), (1, 3, 3), (1, 4, 3)]


def test_gathered_logprobs_match_hand_values():
    logits = torch.tensor([[0.0, 1.0], [2.0, 0.0], [2.0, 0.0]])  # (N, V): the logits predicting each token
    tokens, sequences = torch.tensor([1, 0, 1]), torch.tensor([0, 0, 1])
    totals, counts = gathered_sequence_logprobs(logits, tokens, sequences, 3)
    lse0, lse1 = torch.logsumexp(torch.tensor([0.0, 1.0]), 0), torch.logsumexp(torch.tensor([2.0, 0.0]), 0)
    assert totals.tolist() == pytest.approx([(1 - lse0 + 2 - lse1).item(), (0 - lse1).item(), 0.0])
    assert counts.tolist() == [2, 1, 0]


def test_the_mask_reaches_the_model_additive_in_its_dtype():
    mask = torch.tensor([[[[True, False], [True, True]]]])
    low = torch.finfo(torch.bfloat16).min
    added = additive_mask(mask, torch.bfloat16)
    assert added.dtype == torch.bfloat16 and added[0, 0].tolist() == [[0.0, low], [0.0, 0.0]]
    padding = torch.ones(2, 3, dtype=torch.long)
    assert model_attention_mask(SimpleNamespace(), padding) is padding  # a 2-D padding mask is left alone


def test_attention_that_cannot_take_the_mask_is_refused():
    model = SimpleNamespace(config=SimpleNamespace(_attn_implementation="flash_attention_2"), dtype=torch.float16)
    with pytest.raises(ValueError, match="uses 'flash_attention_2'.*share_prompt: false"):
        model_attention_mask(model, torch.ones(1, 1, 2, 2, dtype=torch.bool))


def random_pairs(seed):
    """Pairs of replies after one prompt each, prompts and replies of random lengths, and a last pair with
    no common prefix whose replies' labels start at different tokens."""
    g = torch.Generator().manual_seed(seed)

    def ids(n):
        return torch.randint(1, 200, (n,), generator=g).tolist()

    groups = []
    for p, c, r in ((6, 4, 7), (2, 9, 1), (11, 3, 3), (1, 5, 2)):
        prompt = ids(p)
        groups.append((example(prompt + ids(c), p), example(prompt + ids(r), p)))
    groups.append((example(ids(5), 2), example(ids(6), 3)))
    return groups


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_shared_layout_gives_the_padded_log_probs_and_gradients(tiny_model_dir, attn_implementation):
    """Eager attention adds the mask to the scores, SDPA reads it: both must keep the replies apart."""
    model = load_causal_lm(load_config(DPOConfig, None, [f"model.name={tiny_model_dir}"]).model)
    model.set_attn_implementation(attn_implementation)
    groups = random_pairs(0)
    padded = collate([s for group in groups for s in group], pad_token_id=0)
    shared = collate_shared_prefix(groups, pad_token_id=0)

    def run(batch):
        model.zero_grad()
        totals, counts = model_sequence_logprobs(model, batch)
        totals.sum().backward()
        return totals.detach(), counts, [p.grad.clone() for p in model.parameters()]

    expected, expected_counts, expected_grads = run(padded)
    totals, counts, grads = run(shared)
    assert counts.tolist() == expected_counts.tolist()
    torch.testing.assert_close(totals, expected, rtol=1e-5, atol=1e-4)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # and the padded path itself is the plain one
        logits = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
        torch.testing.assert_close(sequence_logprobs(logits, padded["labels"])[0], expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("extra", [[], ["lora.enabled=true"], ["preference.loss=ipo"]])
def test_dpo_trains_the_same_with_and_without_the_shared_prompt(tiny_model_dir, tmp_path, extra):
    pairs_file = write_jsonl(tmp_path / "pairs.jsonl", planted_pairs(40))
    runs = {}
    for share in ("true", "false"):
        runs[share] = tmp_path / share
        run_dpo(dpo_config(tiny_model_dir, runs[share], pairs_file, "train.max_steps=3", "train.eval_every=2",
                           "data.max_examples=24", "data.max_eval_examples=8", f"preference.share_prompt={share}",
                           *extra))
    assert_same_curves(read_metrics(runs["true"]), read_metrics(runs["false"]),
                       ("loss", "eval_loss", "reward_margin", "logp_chosen", "length_rejected"))


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_shared_layout_gives_the_padded_rewards_and_gradients(tiny_model_dir, attn_implementation, pooling):
    model = load_reward_model(ModelConfig(name=str(tiny_model_dir)), LoraConfig(), pooling, seed=0)
    model.hf_model.set_attn_implementation(attn_implementation)
    groups = random_pairs(1)
    groups[0] = (*groups[0], example(groups[0][0].input_ids[:6] + [11, 12], 6))  # a ranking of three
    padded = collate([s for group in groups for s in group], pad_token_id=0)
    shared = collate_shared_prefix(groups, pad_token_id=0)

    def run(rewards_of):
        model.zero_grad()
        rewards = rewards_of()
        (rewards * torch.arange(1.0, len(rewards) + 1)).sum().backward()
        return rewards.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    expected, expected_grads = run(lambda: model(padded["input_ids"], padded["attention_mask"],
                                                 padded["labels"] != IGNORE_INDEX))
    rewards, grads = run(lambda: model(shared["input_ids"], shared["attention_mask"],
                                       position_ids=shared["position_ids"], **shared_layout(shared)))
    torch.testing.assert_close(rewards, expected, rtol=1e-5, atol=1e-5)
    assert len(grads) == len(expected_grads)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("data_format", "pooling"), [("pairs", "last"), ("rankings", "last"), ("rankings", "mean")])
def test_reward_model_trains_the_same_with_and_without_the_shared_prompt(tiny_model_dir, tmp_path, data_format,
                                                                          pooling):
    if data_format == "pairs":
        rows = planted_pairs(40)
    else:
        rows = [{"prompt": "Tell me about " + w, "responses": ["banana " + w, w, w + " " + w], "ranks": [1, 2, 3]}
                for w in WORDS * 3]
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    runs = {}
    for share in ("true", "false"):
        runs[share] = tmp_path / share
        run_rm(rm_config(tiny_model_dir, runs[share], data, "train.max_steps=2", "train.batch_size=8",
                         "train.micro_batch_size=4", f"reward.data_format={data_format}",
                         f"reward.share_prompt={share}", f"reward.pooling={pooling}"))
    assert_same_curves(read_metrics(runs["true"]), read_metrics(runs["false"]),
                       ("loss", "eval_loss", "accuracy", "eval_accuracy"))
