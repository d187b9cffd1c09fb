"""Packing and collation: a packed batch computes exactly what its examples compute one at a time."""

import itertools

import pytest
import torch
import torch.nn.functional as F
import transformers

from alignkit.data.collate import collate
from alignkit.data.packing import PackedRow, concatenate, pack_examples
from alignkit.data.readers import read_rows
from alignkit.data.sources import DATASETS
from alignkit.data.tokenize import TokenizedExample, tokenize_demonstration
from alignkit.errors import DataError
from alignkit.tensors import IGNORE_INDEX


def example(ids, labels=None):
    return TokenizedExample(list(ids), list(labels if labels is not None else ids), 0)


def test_pack_examples_is_greedy_and_restarts_positions():
    rows = pack_examples(
        [example([1, 2, 3]), example([4, 5]), example([6, 7, 8, 9]), example([10])], max_length=5
    )
    assert [row.input_ids for row in rows] == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]
    assert [row.position_ids for row in rows] == [[0, 1, 2, 0, 1], [0, 1, 2, 3, 0]]
    # the first token of each example is never predicted, alone or packed
    assert [row.labels for row in rows] == [[-100, 2, 3, -100, 5], [-100, 7, 8, 9, -100]]
    with pytest.raises(
        DataError, match="example 1: is 6 tokens \\(expected 1 to the packing max_length, 5\\)"
    ):
        pack_examples([example([1]), example(range(6))], max_length=5)


def test_collate_padded_examples():
    batch = collate([example([5, 6, 7], [-100, 6, 7]), example([8])], pad_token_id=2)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 2, 2]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert "position_ids" not in batch


def test_collate_packed_rows():
    rows = [PackedRow([1, 2, 3, 4], [-100, 2, -100, 4], [0, 1, 0, 1]), PackedRow([5, 6], [-100, 6], [0, 1])]
    batch = collate(rows, pad_token_id=2)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4], [5, 6, 2, 2]]
    assert batch["labels"].tolist() == [[-100, 2, -100, 4], [-100, 6, -100, -100]]
    assert batch["position_ids"].tolist() == [[0, 1, 0, 1], [0, 1, 0, 1]]  # padding is its own segment
    assert "attention_mask" not in batch
    with pytest.raises(ValueError, match="mix of PackedRow and TokenizedExample"):
        collate([rows[0], example([1])], pad_token_id=2)


# ---------------------------------------------------------------- the claim, on a tiny random model


@pytest.fixture(scope="module")
def examples(data_dir, tokenizer):
    spec = DATASETS["hh-rlhf-harmless"]
    rows = itertools.islice(read_rows(str(data_dir / spec.local)), 8)
    records = [spec.adapters["demonstration"](row, where)[0] for where, row in rows]
    return [tokenize_demonstration(r, tokenizer, max_length=160) for r in records]


def tiny_llama(tokenizer, attn_implementation):
    """A tiny random Llama; large initial weights make its predictions depend clearly on context."""
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        initializer_range=0.5,
    )
    model = transformers.LlamaForCausalLM(config).float().eval()
    model.set_attn_implementation(attn_implementation)
    return model


def summed_loss(model, batch, **extra) -> torch.Tensor:
    """Summed next-token cross-entropy over labelled positions."""
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
    with torch.no_grad():
        logits = model(**inputs, **extra).logits
    labels = batch["labels"][:, 1:].reshape(-1)
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), labels, ignore_index=IGNORE_INDEX, reduction="sum"
    )


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_packed_loss_equals_one_at_a_time(tokenizer, examples, attn_implementation):
    model = tiny_llama(tokenizer, attn_implementation)
    pad = tokenizer.pad_token_id
    alone = sum(summed_loss(model, collate([ex], pad), use_cache=False) for ex in examples)

    rows = pack_examples(examples, max_length=400)
    assert len(rows) < len(examples) and max(len(r.input_ids) for r in rows) <= 400  # really packed
    packed_batch = collate(rows, pad)
    packed = summed_loss(model, packed_batch, use_cache=False)
    assert packed.item() == pytest.approx(alone.item(), rel=1e-4)

    padded = summed_loss(model, collate(examples, pad), use_cache=False)  # plain right-padded batch
    assert padded.item() == pytest.approx(alone.item(), rel=1e-4)

    # negative controls: one causal mask over the whole row lets examples attend to each other
    plain_positions = torch.arange(packed_batch["input_ids"].shape[1]).expand_as(packed_batch["input_ids"])
    leaky = summed_loss(model, {**packed_batch, "position_ids": plain_positions}, use_cache=False)
    assert abs(leaky.item() - alone.item()) > 5e-3 * alone.item()
    # with a cache (config.use_cache is true by default) transformers skips the packed-sequence check
    cached = summed_loss(model, packed_batch)
    assert abs(cached.item() - alone.item()) > 1e-3 * alone.item()


def test_concatenate_lays_rows_end_to_end():
    packed = pack_examples([example([1, 2]), example([3])], max_length=3)[0]
    joined = concatenate([example([7, 8, 9]), packed])
    assert joined.input_ids == [7, 8, 9, 1, 2, 3]
    assert joined.position_ids == [0, 1, 2, 0, 1, 0]
    assert joined.labels == [-100, 8, 9, -100, 2, -100]


def test_padding_free_sft_step_gives_the_padded_loss_and_gradients(tiny_model_dir):
    from alignkit.config import ModelConfig
    from alignkit.models import load_causal_lm
    from alignkit.train.sft import SFTStep

    torch.manual_seed(0)
    model = load_causal_lm(ModelConfig(name=str(tiny_model_dir)))
    rows = [example(torch.randint(1, 200, (n,)).tolist(), [IGNORE_INDEX] * 2 + list(range(3, n + 1)))
            for n in (9, 4, 6)]

    def run(padding_free):
        model.zero_grad()
        step = SFTStep(pad_token_id=0, padding_free=padding_free)
        batch = step.collate(rows)
        out = step.loss(model, batch)
        out.loss_sum.backward()
        return batch, out.loss_sum.detach(), [p.grad.clone() for p in model.parameters()]

    padded, loss, grads = run(False)
    free, free_loss, free_grads = run(True)
    assert free["input_ids"].shape == (1, 19) and padded["input_ids"].shape == (3, 9)
    assert SFTStep(0, True).count(free) == SFTStep(0, False).count(padded)
    torch.testing.assert_close(free_loss, loss, rtol=1e-5, atol=1e-5)
    for grad, expected in zip(free_grads, grads, strict=True):
        torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-4)
