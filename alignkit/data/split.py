"""Deterministic held-out splits."""

import math
from typing import TypeVar

import torch

T = TypeVar("T")


def holdout_split(records: list[T], fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """Shuffle with ``seed`` and hold out ``ceil(fraction · n)`` records: returns (train, held_out).

    The same records, fraction and seed always give the same split, on any machine.
    """
    n_held = math.ceil(fraction * len(records)) if fraction > 0 else 0
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(seed)).tolist()
    held = sorted(order[:n_held])
    kept = sorted(order[n_held:])
    return [records[i] for i in kept], [records[i] for i in held]
