"""The loss of a process reward model: the binary cross-entropy of every labelled step.

With s_k the head's logit at step k's last token and y_k the step's label (1 right, 0 wrong, a share in
between: Math-Shepherd's soft label, the share of rollouts from the step that reach the right answer),

    L = Σ_k  -y_k log σ(s_k) - (1 - y_k) log(1 - σ(s_k))

summed over the labelled steps of a batch (the engine divides by their number). A step counts as
predicted right when s_k > 0, and as right when y_k ≥ ½.
"""

import torch
import torch.nn.functional as F


def step_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Σ_k BCE(σ(s_k), y_k) over ``logits`` s and ``labels`` y (both (K,)), and the count of steps whose
    predicted and labelled rightness agree (``accuracy``)."""
    losses = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    agree = ((logits > 0) == (labels >= 0.5)).sum()
    return losses.sum(), {"accuracy": agree}
