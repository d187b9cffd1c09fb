"""Small data builders and checks shared by the tests."""

import gzip
import json
import os
import random

import pytest

WORDS = [
    "river", "stone", "cloud", "paper", "music", "garden", "window", "letter", "bridge", "candle", "forest", "silver"
]


def planted_pairs(n: int, seed: int = 0) -> list[dict]:
    """Chosen responses contain the word 'banana'; rejected ones do not. Otherwise alike."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        prompt = "Tell me about " + rng.choice(WORDS)
        base = [rng.choice(WORDS) for _ in range(rng.randint(4, 9))]
        chosen = list(base)
        chosen.insert(rng.randrange(len(chosen) + 1), "banana")
        rows.append({"prompt": prompt, "chosen": " ".join(chosen), "rejected": " ".join(base + [rng.choice(WORDS)])})
    return rows


def write_jsonl(path, rows):
    """``rows`` as JSON lines at ``path`` (gzip-compressed when the name ends in .gz); returns the path."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as out:
        out.write("".join(json.dumps(row) + "\n" for row in rows))
    return path


def assert_same_curves(first: list[dict], second: list[dict], keys) -> None:
    """Two runs' metrics rows log each of ``keys`` at the same steps with the same values (rel 1e-4, abs
    1e-5). A key that is never logged fails: a misspelt or unlogged key cannot pass unchecked."""
    assert len(first) == len(second)
    for key in keys:
        a, b = ([(row["step"], row[key]) for row in rows if key in row] for rows in (first, second))
        assert a, f"{key} is never logged"
        assert [step for step, _ in a] == [step for step, _ in b], key
        assert [value for _, value in b] == pytest.approx([value for _, value in a], rel=1e-4, abs=1e-5), key


def word_policy(out_dir, tokenizer_dir, scale: float = 50.0):
    """A tiny random model whose replies are mostly the words of :data:`WORDS` (their embedding rows,
    tied to the output layer, scaled up), so a reward on one word is within reach of a few RL updates."""
    import torch
    from transformers import AutoModelForCausalLM

    from alignkit.models import build_tiny_model, load_tokenizer

    build_tiny_model(out_dir, tokenizer_dir)
    tokenizer = load_tokenizer(str(out_dir))
    model = AutoModelForCausalLM.from_pretrained(out_dir)
    with torch.no_grad():
        embeddings = model.get_input_embeddings().weight
        for word in WORDS:
            (token,) = tokenizer.encode(" " + word, add_special_tokens=False)
            embeddings[token] *= scale
    model.save_pretrained(out_dir)
    return out_dir


def river_share(prompts, completions):
    """The planted reward: the share of a reply's words that are 'river'."""
    return [c.text.split().count("river") / max(len(c.text.split()), 1) for c in completions]


def process_rank_reward(prompts, completions):
    """Every reply scores the rank of the process that sampled it (0 on the first process, 1 on the second)."""
    return [float(os.environ.get("RANK", 0))] * len(completions)


def reply_tokens(prompts, completions):
    """A reward that differs between replies: each reply's length in tokens."""
    return [float(c.num_tokens) for c in completions]


def first_token_parity(prompts, completions):
    """A reward that differs between the replies of a random model: 1 when a reply's first token id is odd."""
    return [float(c.token_ids[0] % 2) for c in completions]
