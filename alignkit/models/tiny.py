"""A tiny random model with SmolLM2's architecture and tokenizer, for fast tests.

Same family as SmolLM2-135M (Llama blocks, grouped-query attention, SiLU MLP, RMSNorm, RoPE with
theta 1e5, tied input and output embeddings, the same vocabulary and special tokens) but a few
thousand times smaller, so a test can load, train and save it in well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from alignkit.io import atomic_directory

TINY_ARCHITECTURE: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "hidden_act": "silu",
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0},
    "tie_word_embeddings": True,
}


def build_tiny_model(
    out_dir: str | Path, tokenizer_dir: str | Path, *, seed: int = 0, **config_overrides: Any
) -> Path:
    """Build a random tiny LlamaForCausalLM and save it with the tokenizer as a Hugging Face folder.

    The vocabulary size and bos/eos/pad ids come from the tokenizer in ``tokenizer_dir`` (pad falls back
    to eos when the tokenizer has none). ``config_overrides`` replace any LlamaConfig field of
    :data:`TINY_ARCHITECTURE`. The same ``seed`` gives the same weights; the global RNG is not touched.
    Written atomically (safetensors); returns ``out_dir``.
    """
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config = LlamaConfig(
        **{
            **TINY_ARCHITECTURE,
            "vocab_size": len(tokenizer),
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": pad_id,
            **config_overrides,
        }
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    out = Path(out_dir)
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out
