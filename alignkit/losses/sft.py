"""Supervised fine-tuning loss: prompt-masked next-token cross-entropy.

For a sequence x_1..x_T with loss mask m_t (1 on response tokens, 0 on prompt and padding),

    L_sum = - Σ_t m_t · log π(x_t | x_<t)

The sum (not the mean) is returned with the token count, so the training engine can divide by the
number of response tokens in the whole optimizer step, across micro-batches and processes. A per
micro-batch mean would weight short and long batches differently and make the result depend on
how the global batch was split.
"""

import torch
import torch.nn.functional as F

from alignkit.tensors import IGNORE_INDEX


def next_token_targets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every labelled next token of ``labels`` (B, T): (rows, columns, targets), each (N,), where the
    logits at (rows[n], columns[n]) predict targets[n] = labels[rows[n], columns[n] + 1] ≠ ignore."""
    rows, columns = (labels[:, 1:] != IGNORE_INDEX).nonzero(as_tuple=True)
    return rows, columns, labels[rows, columns + 1]


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-Σ_n log softmax(logits[n])[targets[n]] for logits (N, V) and targets (N,), in float32."""
    return F.cross_entropy(logits.float(), targets, reduction="sum")


def token_correct(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """How many targets are the argmax of their logits (N, V)."""
    return (logits.argmax(-1) == targets).sum()


def masked_token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token negative log-likelihood over labelled positions, and how many there are.

    logits: (B, T, V); labels: (B, T) token ids with ``IGNORE_INDEX`` where no loss is taken.
    Returns (L_sum, n) with L_sum = -Σ_{t: label_{t+1} ≠ ignore} log softmax(logits_t)[label_{t+1}].
    """
    rows, columns, targets = next_token_targets(labels)
    return token_nll(logits[rows, columns], targets), torch.tensor(targets.numel(), device=targets.device)


def masked_token_correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """How many labelled next tokens are the argmax of the logits (numerator of token accuracy)."""
    rows, columns, targets = next_token_targets(labels)
    return token_correct(logits[rows, columns], targets)
