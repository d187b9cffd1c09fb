"""LoRA adapters (peft) on a causal LM: wrap a model for training, and merge the adapters back in.

LoRA (Hu et al. 2021, arXiv:2106.09685) freezes each targeted weight ``W`` and learns
``W + (alpha / r) * B @ A`` with ``A`` of shape (r, in) and ``B`` of shape (out, r), ``B`` starting at zero,
so the wrapped model starts out computing exactly what the base model does.
"""

from __future__ import annotations

import logging

from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model
from torch import nn
from transformers import PreTrainedModel

from alignkit.config import LoraConfig
from alignkit.errors import AlignkitError

logger = logging.getLogger(__name__)


def apply_lora(model: PreTrainedModel, lora: LoraConfig, task_type: str = "CAUSAL_LM") -> PeftModel:
    """Wrap ``model`` with LoRA adapters on ``lora.target_modules``; only the adapters are trainable
    (for ``task_type="SEQ_CLS"`` peft also trains the scalar head, ``score``, in full).

    A target matches a linear layer whose dotted name equals it or ends with ``.<target>`` (peft's
    rule). A target that matches no linear layer raises AlignkitError naming it and listing the
    linear layer names the model has. Logs the trainable parameter count.
    """
    linear = _linear_modules(model)
    for target in lora.target_modules:
        if not any(name == target or name.endswith("." + target) for name in linear):
            raise AlignkitError(
                f"lora.target_modules: '{target}' matches no linear layer of {type(model).__name__}; "
                f"its linear layers are: {', '.join(linear_layer_names(model))}"
            )
    peft_config = PeftLoraConfig(
        task_type=task_type,
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        bias="none",
    )
    peft_model = get_peft_model(model, peft_config)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft_model.parameters())
    logger.info(
        "LoRA r=%d alpha=%g on %s: %d trainable parameters of %d (%.2f%%)",
        lora.r, lora.alpha, ", ".join(lora.target_modules), trainable, total, 100 * trainable / total,
    )
    return peft_model


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
