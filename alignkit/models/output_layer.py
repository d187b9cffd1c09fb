"""A causal LM's output layer run only at the positions whose logits a loss reads.

The output layer of a small model is a large share of its work: SmolLM2-135M's vocabulary projection
(576 × 49,152) costs 27% of a forward pass per position. A loss over some tokens of a batch (the replies
of preference pairs, the responses of demonstrations) needs the logits of those positions only, yet a
model's forward computes them for every kept column of every row, padding and other rows' prompts
included, and materialises a (rows, columns, vocabulary) tensor.

:func:`logits_at` runs the model's usual forward with a pre-hook on its output embeddings that picks the
hidden states at the listed (row, column) pairs first, so the projection, its backward and the logits
tensor cover exactly N positions. The hook sits on the layer itself, so the forward still goes through
any wrapper (peft, DistributedDataParallel) unchanged.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


def logits_at(model, rows: torch.Tensor, columns: torch.Tensor, **inputs) -> torch.Tensor:
    """``model(**inputs).logits`` at positions (rows[n], columns[n]) only, shape (N, V).

    Columns count from the first column the forward keeps (``inputs["logits_to_keep"]`` from the right,
    as transformers' causal LMs slice the hidden states before the output layer; all columns without it).
    """
    with _output_layer_only_at(model, rows, columns):
        return model(**inputs).logits[0]


@contextmanager
def _output_layer_only_at(model, rows: torch.Tensor, columns: torch.Tensor):
    head = getattr(model, "module", model).get_output_embeddings()

    def select(_module, args):
        hidden, *rest = args
        return (hidden[rows, columns].unsqueeze(0), *rest)

    handle = head.register_forward_pre_hook(select)
    try:
        yield
    finally:
        handle.remove()
