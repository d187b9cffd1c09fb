"""LoRA adapters (peft) on a causal LM: wrap a model for training, and merge the adapters back in.

LoRA (Hu et al. 2021, arXiv:2106.09685) freezes each targeted weight ``W`` and learns
``W + (alpha / r) * B @ A`` with ``A`` of shape (r, in) and ``B`` of shape (out, r), ``B`` starting at zero,
so the wrapped model starts out computing exactly what the base model does.
"""

from __future__ import annotations

import logging
import re

from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model
from torch import nn
from transformers import PreTrainedModel

from alignkit.config import LoraConfig, layer_indices
from alignkit.errors import AlignkitError, ConfigError

logger = logging.getLogger(__name__)


def apply_lora(model: PreTrainedModel, lora: LoraConfig, task_type: str = "CAUSAL_LM") -> PeftModel:
    """Wrap ``model`` with LoRA adapters on ``lora.target_modules`` in the blocks ``lora.layers`` selects;
    only the adapters are trainable (for ``task_type="SEQ_CLS"`` peft also trains the scalar head,
    ``score``, in full). Logs the trainable parameter count.
    """
    peft_config = PeftLoraConfig(
        task_type=task_type,
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        bias="none",
        **lora_targets(model, lora),
    )
    peft_model = get_peft_model(model, peft_config)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft_model.parameters())
    logger.info(
        "LoRA r=%d alpha=%g on %s (blocks: %s): %d trainable parameters of %d (%.2f%%)",
        lora.r, lora.alpha, ", ".join(lora.target_modules), lora.layers or "all", trainable, total,
        100 * trainable / total,
    )
    return peft_model


def lora_targets(model: nn.Module, lora: LoraConfig) -> dict:
    """peft's ``target_modules`` and ``layers_to_transform`` for ``lora`` on ``model``.

    A target matches a linear layer whose dotted name equals it or ends with ``.<target>`` (peft's
    rule); with ``lora.layers``, only in the selected transformer blocks (peft reads a block's index
    from the first numbered part of a layer's name, e.g. ``model.layers.3.self_attn.q_proj``), so a
    target may not itself name a block by index. A target that matches no linear layer raises
    AlignkitError naming it and listing the linear layer names the model has; a block past the model's
    last raises ConfigError (:func:`~alignkit.config.layer_indices`).
    """
    linear = _linear_modules(model)
    for target in lora.target_modules:
        if lora.layers is not None and re.search(r"(^|\.)\d+(\.|$)", target):
            raise ConfigError(f"lora.target_modules: '{target}' names a block by its index, which lora.layers "
                              "chooses; with lora.layers give names within a block, e.g. q_proj or mlp.down_proj")
        if not any(name == target or name.endswith("." + target) for name in linear):
            raise AlignkitError(
                f"lora.target_modules: '{target}' matches no linear layer of {type(model).__name__}; "
                f"its linear layers are: {', '.join(linear_layer_names(model))}"
            )
    return {"target_modules": list(lora.target_modules),
            "layers_to_transform": layer_indices(lora.layers, model.config.num_hidden_layers)}


def merge_lora(model: PeftModel) -> PreTrainedModel:
    """Fold the adapters into the base weights and return the plain transformers model.

    Changes ``model``'s base weights in place; pass a copy to keep training the adapters.
    """
    return model.merge_and_unload()


def linear_layer_names(model: nn.Module) -> list[str]:
    """The distinct short names of the model's linear layers (e.g. ``q_proj``), sorted."""
    return sorted({name.rsplit(".", 1)[-1] for name in _linear_modules(model)})


def _linear_modules(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
