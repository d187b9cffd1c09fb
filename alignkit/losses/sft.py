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

IGNORE_INDEX = -100


def shift_for_next_token(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Align position t's logits with token t+1: returns logits[:, :-1] and labels[:, 1:]."""
    return logits[:, :-1, :], labels[:, 1:]


def masked_token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token negative log-likelihood over labelled positions, and how many there are.

    logits: (B, T, V); labels: (B, T) token ids with ``IGNORE_INDEX`` where no loss is taken.
    Returns (L_sum, n) with L_sum = -Σ_{t: label_{t+1} ≠ ignore} log softmax(logits_t)[label_{t+1}].
    """
    logits, labels = shift_for_next_token(logits, labels)
    nll = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return nll, (labels != IGNORE_INDEX).sum()


def masked_token_correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """How many labelled next tokens are the argmax of the logits (numerator of token accuracy)."""
    logits, labels = shift_for_next_token(logits, labels)
    mask = labels != IGNORE_INDEX
    return ((logits.argmax(-1) == labels) & mask).sum()
