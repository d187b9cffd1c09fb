"""The real SmolLM2-135M-Instruct: GGUF conversion, fast reload, sensible greedy answers (minutes on CPU)."""

import json
import time

import pytest
import torch
from transformers import AutoTokenizer

from alignkit.config import ModelConfig
from alignkit.models import SMOLLM2, load_causal_lm, load_smollm2_gguf, load_tokenizer, smollm2_model_dir
from alignkit.models.smollm2 import smollm2_gguf_path

pytestmark = pytest.mark.slow

PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def model_dir():
    return smollm2_model_dir()  # converts on the first run, then reuses the cache


@pytest.fixture(scope="module")
def reloaded(model_dir):
    start = time.perf_counter()
    model = load_causal_lm(ModelConfig(name=SMOLLM2))
    return model, time.perf_counter() - start


def test_converted_folder_is_plain_safetensors(model_dir):
    names = {p.name for p in model_dir.iterdir()}
    assert "model.safetensors" in names and "tokenizer.json" in names and "chat_template.jinja" in names
    assert not any(name.endswith((".bin", ".gguf")) for name in names)
    config = json.loads((model_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30
    assert smollm2_model_dir() == model_dir  # second call: the cache, at once


def test_reload_is_fast_and_answers_sensibly(reloaded, model_dir):
    model, seconds = reloaded
    assert seconds < 20, f"reloading the converted folder took {seconds:.1f} s"
    tokenizer = load_tokenizer(str(model_dir))
    ids = tokenizer.apply_chat_template(
        PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=20, do_sample=False)
    reply = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in reply, reply


def test_logits_match_the_gguf_model(reloaded, model_dir):
    gguf_model = load_smollm2_gguf()
    assert getattr(gguf_model, "hf_quantizer", None) is None
    assert not hasattr(gguf_model.config, "quantization_config")
    tokenizer = load_tokenizer(str(model_dir))
    batch = tokenizer(["Alignment makes a language model helpful and harmless."], return_tensors="pt")
    with torch.no_grad():
        expected = gguf_model(**batch).logits
        got = reloaded[0](**batch).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_cached_tokenizer_matches_the_gguf_tokenizer(model_dir):
    gguf = smollm2_gguf_path()
    original = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    cached = AutoTokenizer.from_pretrained(model_dir)
    text = "Hello, world! 3 + 4 = 7. Ünïcödé and\ttabs\n<|im_start|>user"
    assert cached(text)["input_ids"] == original(text)["input_ids"]
    chat = cached.apply_chat_template(PROMPT, tokenize=False)
    assert chat == original.apply_chat_template(PROMPT, tokenize=False)
    for attr in ("eos_token", "pad_token", "bos_token"):
        assert getattr(cached, attr) == getattr(original, attr)
