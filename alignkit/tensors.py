"""Tensor helpers every layer may use: the label left out of the loss, log-probabilities of labelled
tokens, masked statistics, and float64 vectors with Pearson's correlation.

Log-probabilities take logits (B, T, V) and labels (B, T) holding ``IGNORE_INDEX`` where no token is
scored; position t's logits predict label t + 1. Masked statistics take a ``mask`` of the same shape as
their input, 1 (or True) on the valid positions and 0 elsewhere:

    masked mean        Σ x·m / Σ m
    masked variance    Σ m (x - x̄)² / n, times n / (n - 1) unbiased (Bessel's correction; TRL's default)
    whitening          (x - mean) / sqrt(var + eps) over the valid positions (TRL, OpenRLHF)
"""

from collections.abc import Sequence

import torch

IGNORE_INDEX = -100
"""The label of positions left out of the loss (PyTorch's cross-entropy default)."""

Numbers = torch.Tensor | Sequence[float]


def shift_for_next_token(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Align position t's logits with token t+1: returns logits[:, :-1] and labels[:, 1:]."""
    return logits[:, :-1, :], labels[:, 1:]


def token_logprobs(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log π(label_{t+1} | tokens ≤ t) and the mask of labelled positions, each (B, T - 1).

        logp_t = log softmax(logits_t / temperature)[label_{t+1}]     (0 where label_{t+1} = ignore)

    logits: (B, T, V); labels: (B, T). ``temperature`` is the sampling temperature the tokens were drawn
    with, so the log-probabilities are those of the sampling distribution. The chosen logit is gathered
    and the log-partition subtracted, so no (B, T, V) log-softmax tensor is kept; in at least float32.
    """
    logits, labels = shift_for_next_token(logits, labels)
    mask = labels != ignore_index
    targets = torch.where(mask, labels, torch.zeros_like(labels)).unsqueeze(-1)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    if temperature != 1.0:
        logits = logits / temperature
    logps = logits.gather(-1, targets).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return logps * mask, mask


def sequence_logprobs(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX, average: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence log π(y | x) over labelled positions, and the number of labelled tokens, each (B,).

        log π(y | x) = Σ_{t: label_{t+1} ≠ ignore} log softmax(logits_t)[label_{t+1}]

    logits: (B, T, V); labels: (B, T). With ``average`` the sum is divided by the token count (a
    sequence without labelled tokens gives 0). See :func:`token_logprobs`.
    """
    logps, mask = token_logprobs(logits, labels, ignore_index)
    total = logps.sum(-1)
    count = mask.sum(-1)
    if average:
        total = total / count.clamp(min=1)
    return total, count


def gathered_sequence_logprobs(
    logits: torch.Tensor, tokens: torch.Tensor, sequences: torch.Tensor, num_sequences: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence Σ log π of listed tokens, and their counts, each (num_sequences,).

        log π(y_s) = Σ_{n: sequences[n] = s} log softmax(logits[n])[tokens[n]]

    logits: (N, V), the logits that predict each listed token (the layout of
    :mod:`alignkit.data.shared_prefix`, computed at those positions only); tokens, sequences: (N,).
    In at least float32.
    """
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    logps = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    totals = torch.zeros(num_sequences, dtype=logps.dtype, device=logps.device).index_add(0, sequences, logps)
    counts = torch.zeros(num_sequences, dtype=torch.long, device=logps.device).index_add(
        0, sequences, torch.ones_like(sequences))
    return totals, counts


def float_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``mask`` as floats of ``like``'s dtype, at least float32."""
    return mask.to(torch.promote_types(like.dtype, torch.float32))


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is set: Σ x·m / Σ m (0 when nothing is set).

    Over all elements with ``dim=None`` (a scalar), else along ``dim``.
    """
    m = float_mask(mask, x)
    if dim is None:
        return (x * m).sum() / m.sum().clamp(min=1.0)
    return (x * m).sum(dim) / m.sum(dim).clamp(min=1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of ``x`` over all positions where ``mask`` is set, a scalar.

    Σ m (x - x̄)² / n, times n / (n - 1) when ``unbiased`` (Bessel's correction; TRL's default).
    Raises ValueError when there are fewer valid elements than the estimate needs (1, or 2 unbiased).
    """
    m = float_mask(mask, x)
    n = float(m.sum())
    if n < (2 if unbiased else 1):
        raise ValueError(f"masked_var needs at least {2 if unbiased else 1} valid elements, got {n:g}")
    centred = x - masked_mean(x, m)
    variance = (centred**2 * m).sum() / n
    return variance * n / (n - 1) if unbiased else variance


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) over the valid positions, 0 on padding (TRL's and OpenRLHF's whitening).

    The mean and the (unbiased) variance are taken over every valid element of the tensor, so the
    statistics are those of this tensor only: whiten the whole rollout batch, not each micro-batch.
    ``shift_mean=False`` adds the mean back (rescales without centring), as done for rewards; the
    default centres, as done for advantages (CleanRL's ``norm_adv``).
    """
    m = float_mask(mask, x)
    mean, var = masked_mean(x, m), masked_var(x, m)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * m


def float64_vector(values: Numbers) -> torch.Tensor:
    """A detached 1-D float64 CPU copy of a tensor or a sequence of numbers."""
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu", torch.float64).reshape(-1)
    return torch.tensor(list(values), dtype=torch.float64)


def float64_pair(first: Numbers, second: Numbers) -> tuple[torch.Tensor, torch.Tensor]:
    """Both inputs as float64 vectors; raises ValueError unless they are non-empty and equally long."""
    a, b = float64_vector(first), float64_vector(second)
    if a.numel() != b.numel() or a.numel() == 0:
        raise ValueError(f"expected two non-empty sequences of equal length, got {a.numel()} and {b.numel()}")
    return a, b


def pearson(x: Numbers, y: Numbers) -> float:
    """Pearson's correlation  Σ(x - x̄)(y - ȳ) / sqrt(Σ(x - x̄)² Σ(y - ȳ)²);  NaN when x or y is constant."""
    a, b = float64_pair(x, y)
    a, b = a - a.mean(), b - b.mean()
    denominator = torch.sqrt((a * a).sum() * (b * b).sum())
    if denominator == 0:
        return float("nan")
    return float((a * b).sum() / denominator)
