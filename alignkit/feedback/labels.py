"""Soft preference labels from option log-probabilities, and how they agree with human labels.

A pair is asked about twice: first with its first reply as option (A) and its second as (B), then with the
two swapped. The soft label is the probability that the first reply is better (Bai et al. 2022, section
4.1; averaging both orders against position bias as in Lee et al. 2023, "RLAIF", section 2.2):

    p_first   = exp(l_A) / (exp(l_A) + exp(l_B))    of the first ordering (first reply is A)
    p_swapped = exp(l_B) / (exp(l_A) + exp(l_B))    of the swapped ordering (first reply is B)
    label     = (p_first + p_swapped) / 2            (p_first alone without the swap)

With chain of thought each ordering's probability is clamped to [low, high] (the paper uses 40-60%)
before averaging, since reasoning makes the answers overconfident.

Agreement counts a probability above 1/2 as preferring the first reply, below as preferring the second,
and 1/2 (within :data:`TIE_TOLERANCE`, so that 0.9 and 0.1 averaged is a tie despite rounding) as a tie
worth half.
"""

from __future__ import annotations

import dataclasses

import torch

TIE_TOLERANCE = 1e-9


@dataclasses.dataclass(frozen=True)
class SoftLabels:
    """Per pair (shape (n,)): ``p_first``, ``p_swapped`` (None without the swap) and ``label``."""

    p_first: torch.Tensor
    p_swapped: torch.Tensor | None
    label: torch.Tensor


def soft_labels(
    first: torch.Tensor, swapped: torch.Tensor | None = None, clamp: tuple[float, float] | None = None
) -> SoftLabels:
    """Soft labels from option log-probabilities (module doc).

    ``first``: (n, 2) log-probabilities of options (A) and (B) when the first reply is (A); ``swapped``:
    (n, 2) the same when the first reply is (B), or None. Log-probabilities need not be normalised (only
    their difference counts). ``clamp``: (low, high) bounds of each ordering's probability, or None.
    """
    for name, value in (("first", first), ("swapped", swapped)):
        if value is not None and (value.dim() != 2 or value.shape[1] != 2):
            raise ValueError(f"{name} must have shape (n, 2), got {tuple(value.shape)}")
    if swapped is not None and swapped.shape != first.shape:
        raise ValueError(f"first and swapped differ in shape: {tuple(first.shape)} and {tuple(swapped.shape)}")
    if clamp is not None and not 0.0 <= clamp[0] <= clamp[1] <= 1.0:
        raise ValueError(f"clamp must be (low, high) with 0 <= low <= high <= 1, got {clamp}")

    def bounded(p: torch.Tensor) -> torch.Tensor:
        return p if clamp is None else p.clamp(clamp[0], clamp[1])

    p_first = bounded(torch.softmax(first.double(), dim=-1)[:, 0])
    if swapped is None:
        return SoftLabels(p_first, None, p_first)
    p_swapped = bounded(torch.softmax(swapped.double(), dim=-1)[:, 1])
    return SoftLabels(p_first, p_swapped, (p_first + p_swapped) / 2)


def preference_score(p: torch.Tensor) -> torch.Tensor:
    """1 where ``p`` prefers the first reply (p > 1/2), 0 where it prefers the second, 1/2 at a tie
    (|p - 1/2| <= TIE_TOLERANCE)."""
    tie = (p - 0.5).abs() <= TIE_TOLERANCE
    return torch.where(tie, 0.5, (p > 0.5).double())


def label_summary(labels: SoftLabels, human: bool) -> dict:
    """The summary figures of a labelling run.

    Always: ``num_pairs``, ``mean_label`` (mean probability that the first reply is better). With the
    swap: ``position_bias_rate``, the share of pairs whose preferred reply changes when the order changes
    (a tie on one side and a preference on the other counts as a change), and ``option_a_rate``, the share
    of all questions answered with (A) (ties half). With ``human`` (the first reply of each pair is the
    human's choice): ``agreement`` of the labels with the humans, ``agreement_without_swap`` (first
    ordering alone) and ``agreement_swapped_order`` (swapped ordering alone).
    """
    n = labels.label.numel()
    if n == 0:
        raise ValueError("label_summary needs at least one pair")
    summary = {"num_pairs": n, "mean_label": float(labels.label.mean())}
    if human:
        summary["agreement"] = float(preference_score(labels.label).mean())
        summary["agreement_without_swap"] = float(preference_score(labels.p_first).mean())
    if labels.p_swapped is not None:
        first, swapped = preference_score(labels.p_first), preference_score(labels.p_swapped)
        summary["position_bias_rate"] = float((first != swapped).double().mean())
        summary["option_a_rate"] = float((first.sum() + (1 - swapped).sum()) / (2 * n))
        if human:
            summary["agreement_swapped_order"] = float(swapped.mean())
    return summary
