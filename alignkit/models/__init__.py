"""Models: loading by name (the default SmolLM2, a local folder, a hub id), saving, LoRA, tiny test models."""

from alignkit.models.loading import (
    load_causal_lm,
    load_model_and_tokenizer,
    load_pretrained,
    load_tokenizer,
    resolve_model_path,
    save_model,
)
from alignkit.models.lora import apply_lora, linear_layer_names, merge_lora
from alignkit.models.smollm2 import (
    SMOLLM2,
    load_smollm2_gguf,
    smollm2_gguf_path,
    smollm2_model_dir,
    smollm2_tokenizer_dir,
)
from alignkit.models.tiny import build_tiny_model

__all__ = [
    "SMOLLM2",
    "apply_lora",
    "build_tiny_model",
    "linear_layer_names",
    "load_causal_lm",
    "load_pretrained",
    "load_model_and_tokenizer",
    "load_smollm2_gguf",
    "load_tokenizer",
    "merge_lora",
    "resolve_model_path",
    "save_model",
    "smollm2_gguf_path",
    "smollm2_model_dir",
    "smollm2_tokenizer_dir",
]
