"""Sampling from a policy with HFGenerator on a tiny random model: order, lengths, stopping, seeds, batching."""

import pytest
import torch
from helpers import word_policy
from transformers import GenerationConfig as ModelGenerationConfig

from alignkit.config import GenerationConfig
from alignkit.errors import AlignkitError
from alignkit.models import build_tiny_model, load_tokenizer
from alignkit.models.reference import logprobs_from
from alignkit.rl.generation import HFGenerator, load_policy_generator, prompt_token_rows

PROMPTS = [
    ({"role": "user", "content": "Hi"},),
    ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me about rivers and stones."}),
    ({"role": "user", "content": "One two three four five six seven eight nine ten"},),
    ({"role": "user", "content": "Why?"},),
    ({"role": "user", "content": "Write about a garden."},),
]


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory, tokenizer_dir):
    """A tiny model with larger random weights, so greedy replies differ from prompt to prompt."""
    return build_tiny_model(tmp_path_factory.mktemp("policy") / "model", tokenizer_dir, initializer_range=0.2)


@pytest.fixture(scope="module")
def generator(policy_dir):
    return load_policy_generator(policy_dir)


def greedy(**fields) -> GenerationConfig:
    return GenerationConfig(**{"temperature": 0.0, "max_new_tokens": 6, **fields})


def test_one_completion_per_prompt_in_input_order(generator):
    together = generator.generate(PROMPTS, greedy(batch_size=2))
    alone = [generator.generate([prompt], greedy())[0] for prompt in PROMPTS]
    assert together == alone
    assert len({c.token_ids for c in together}) > 1  # the prompts really get different replies
    assert generator.generate([], greedy()) == []


def test_greedy_replies_do_not_depend_on_batch_size(generator):
    replies = [generator.generate(PROMPTS, greedy(batch_size=size)) for size in (1, 3, 16)]
    assert replies[0] == replies[1] == replies[2]


def test_lengths_and_texts(generator, tokenizer):
    for completion in generator.generate(PROMPTS, GenerationConfig(max_new_tokens=5, temperature=1.0)):
        assert completion.num_tokens == len(completion.token_ids) <= 5
        assert completion.text == tokenizer.decode(completion.token_ids, skip_special_tokens=True)


def test_same_seed_same_samples_and_the_callers_rng_is_untouched(generator):
    config = GenerationConfig(max_new_tokens=6, temperature=1.0, seed=3, batch_size=2)
    state = torch.get_rng_state()
    first = generator.generate(PROMPTS, config)
    assert torch.equal(torch.get_rng_state(), state)
    assert [c.text for c in generator.generate(PROMPTS, config)] == [c.text for c in first]
    other = generator.generate(PROMPTS, GenerationConfig(max_new_tokens=6, temperature=1.0, seed=4, batch_size=2))
    assert [c.token_ids for c in other] != [c.token_ids for c in first]


def test_a_reply_cut_at_max_new_tokens_is_unfinished(generator):
    stops = set(generator.stop_ids)
    for completion in generator.generate(PROMPTS, greedy(max_new_tokens=1)):
        assert completion.num_tokens == 1
        assert completion.finished == (completion.token_ids[0] in stops)


def test_a_reply_that_emits_the_stop_token_is_finished(policy_dir):
    plain = load_policy_generator(policy_dir)
    first_token = plain.generate(PROMPTS[:1], greedy())[0].token_ids[0]
    tokenizer = load_tokenizer(str(policy_dir))
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(first_token)  # the model's first greedy token now stops it
    completion = HFGenerator(plain.model, tokenizer).generate(PROMPTS[:1], greedy())[0]
    assert completion.finished and completion.token_ids == (first_token,) and completion.num_tokens == 1


def test_long_prompts_lose_their_oldest_tokens_and_are_counted(generator, capsys):
    generator.model.train()
    completions = generator.generate(PROMPTS, greedy(max_prompt_length=12))
    assert len(completions) == len(PROMPTS)
    assert "prompts longer than 12 tokens" in capsys.readouterr().err
    assert generator.model.training  # the model is left in the mode it had
    generator.model.eval()


@pytest.fixture(scope="module")
def penalised_dir(tmp_path_factory, tokenizer_dir):
    """A model that mostly says the same dozen words, whose generation_config.json asks for a repetition
    penalty and no repeated 2-grams: left on, both would reshape the distribution replies are drawn from."""
    out = word_policy(tmp_path_factory.mktemp("penalised") / "model", tokenizer_dir)
    ModelGenerationConfig(do_sample=True, repetition_penalty=1.5, no_repeat_ngram_size=2, top_k=20).save_pretrained(out)
    return out


def test_sampled_log_probs_are_the_training_pass_log_probs_whatever_the_models_generation_config(penalised_dir):
    generator = load_policy_generator(penalised_dir)
    assert generator.model.generation_config.repetition_penalty == 1.5  # the settings are really there
    config = GenerationConfig(max_new_tokens=10, temperature=0.8, batch_size=2, seed=1)
    completions = generator.generate(PROMPTS, config)
    rows = prompt_token_rows(PROMPTS, generator.tokenizer, config.max_prompt_length)
    repeated = 0
    for row, completion in zip(rows, completions, strict=True):
        ids = torch.tensor([row + list(completion.token_ids)])
        labels = torch.full_like(ids, -100)
        labels[0, len(row) :] = ids[0, len(row) :]
        with torch.no_grad():
            training = logprobs_from(generator.model(input_ids=ids).logits, labels, 0, 0.8)[0, len(row) - 1 :]
        assert len(completion.logprobs) == completion.num_tokens
        assert torch.allclose(torch.tensor(completion.logprobs), training, atol=2e-4), completion.text
        repeated += len(completion.token_ids) - len(set(completion.token_ids))
    assert repeated > 0  # replies repeat tokens, which the penalty would have pushed down


def test_a_generation_config_setting_that_cannot_be_switched_off_is_refused(tmp_path, tokenizer_dir):
    out = build_tiny_model(tmp_path / "model", tokenizer_dir)
    ModelGenerationConfig(do_sample=True, min_p=0.1).save_pretrained(out)
    with pytest.raises(AlignkitError, match="min_p"):
        load_policy_generator(out).generate(PROMPTS[:1], greedy())
