"""Inter-annotator agreement: Krippendorff's alpha (nominal, ordinal, interval) and raw agreement.

Reliability data is a mapping ``unit -> {coder: value}``: a unit is one thing judged (an item for a
pairwise choice, one response of an item for a rank), a coder an annotator. Coders who did not judge
a unit are simply absent; units judged by fewer than two coders carry no information and are ignored.

Krippendorff's alpha (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability"):

    o_ck = Σ_u  #{(i, j), i ≠ j : v_ui = c, v_uj = k} / (m_u - 1)      coincidences, m_u values in unit u
    n_c  = Σ_k o_ck,   n = Σ_c n_c
    α    = 1 - (n - 1) · Σ_ck o_ck δ²(c, k) / Σ_ck n_c n_k δ²(c, k)

with δ²(c, k) = [c ≠ k] (nominal), (c - k)² (interval), or, for ordinal values sorted c < ... < k,
δ²(c, k) = (Σ_{g = c..k} n_g - (n_c + n_k) / 2)². α = 1 is perfect agreement, 0 what chance gives;
it is NaN when every pairable value is the same (no expected disagreement to compare with).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Mapping

Data = Mapping[Hashable, Mapping[Hashable, Hashable]]
LEVELS = ("nominal", "ordinal", "interval")


def coincidences(data: Data) -> Counter:
    """The coincidence matrix ``{(c, k): o_ck}`` over units with at least two values."""
    matrix: Counter = Counter()
    for values in data.values():
        values = list(values.values())
        m = len(values)
        if m < 2:
            continue
        for i, c in enumerate(values):
            for j, k in enumerate(values):
                if i != j:
                    matrix[c, k] += 1.0 / (m - 1)
    return matrix


def distance(level: str, totals: Mapping) -> callable:
    """δ²(c, k) for ``level``; ``totals`` are the value counts n_c (the ordinal metric needs them)."""
    if level == "nominal":
        return lambda c, k: float(c != k)
    if level == "interval":
        return lambda c, k: float(c - k) ** 2
    if level != "ordinal":
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    order = sorted(totals)
    cumulative, running = {}, 0.0
    for value in order:
        running += totals[value]
        cumulative[value] = running

    def ordinal(c, k):
        low, high = min(c, k), max(c, k)
        between = cumulative[high] - cumulative[low] + totals[low]  # Σ n_g for low <= g <= high
        return (between - (totals[c] + totals[k]) / 2.0) ** 2

    return ordinal


def krippendorff_alpha(data: Data, level: str = "nominal") -> float:
    """Krippendorff's alpha of ``data`` at the measurement ``level`` (see the module doc); NaN when
    fewer than two pairable values exist or all of them are equal."""
    matrix = coincidences(data)
    totals: Counter = Counter()
    for (c, _k), weight in matrix.items():
        totals[c] += weight
    n = sum(totals.values())
    if n < 2:
        return math.nan
    delta = distance(level, totals)
    observed = sum(weight * delta(c, k) for (c, k), weight in matrix.items())
    expected = sum(totals[c] * totals[k] * delta(c, k) for c in totals for k in totals)
    if expected == 0:
        return math.nan
    return 1.0 - (n - 1) * observed / expected


def raw_agreement(data: Data, coder: Hashable | None = None) -> float:
    """Share of coder pairs on a unit that gave the same value, pooled over units; with ``coder``, only
    the pairs that include that coder (how often they agree with the others). NaN without pairs."""
    agree = total = 0
    for values in data.values():
        coders = list(values)
        for a in range(len(coders)):
            for b in range(a + 1, len(coders)):
                if coder is not None and coder not in (coders[a], coders[b]):
                    continue
                total += 1
                agree += values[coders[a]] == values[coders[b]]
    return agree / total if total else math.nan


def without_coder(data: Data, coder: Hashable) -> dict:
    """``data`` with one coder's values removed (alpha without them shows whether they add noise)."""
    return {unit: {c: v for c, v in values.items() if c != coder} for unit, values in data.items()}
