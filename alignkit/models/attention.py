"""A custom 4-D attention mask (the shared-prompt layout of :mod:`alignkit.data.shared_prefix`) in the
form the model's attention reads.

transformers passes a 4-D ``attention_mask`` to the attention function unchanged
(``masking_utils._preprocess_mask_arguments``), and the functions read it differently: eager attention
adds it to the scores, so a boolean mask adds 0 or 1 and masks nothing; SDPA keeps the keys where a
boolean mask is True and adds a float one; flash attention cannot take an arbitrary mask at all. An
additive float mask in the model's dtype, 0 where a query may attend and the dtype's minimum where it
may not, is read alike by eager and SDPA; other implementations are refused.
"""

from __future__ import annotations

import torch

CUSTOM_MASK_ATTENTION = ("eager", "sdpa")


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean mask (True: may attend) → 0 where True, ``torch.finfo(dtype).min`` where False, in ``dtype``."""
    blocked = torch.tensor(torch.finfo(dtype).min, dtype=dtype, device=mask.device)
    return torch.where(mask, torch.zeros((), dtype=dtype, device=mask.device), blocked)


def model_attention_mask(model: torch.nn.Module, mask: torch.Tensor) -> torch.Tensor:
    """The attention mask to hand ``model``: a 2-D padding mask as it is, a boolean 4-D mask (R, 1, L, L)
    as :func:`additive_mask` in the model's dtype. ValueError for a 4-D mask and an attention
    implementation that cannot apply it."""
    if mask.dim() != 4:
        return mask
    model = getattr(model, "module", model)
    implementation = model.config._attn_implementation
    if implementation not in CUSTOM_MASK_ATTENTION:
        raise ValueError(
            f"the shared-prompt layout needs attention that applies a custom 4-D mask "
            f"({' or '.join(CUSTOM_MASK_ATTENTION)}), but the model uses {implementation!r}: load it with "
            "attn_implementation='sdpa', or set share_prompt: false")
    return additive_mask(mask, model.dtype)
