"""Krippendorff's alpha and raw agreement against hand-computed values, the published example and a
slow pairwise reference."""

import itertools
import math
import random

import pytest

from alignkit.annotate.agreement import krippendorff_alpha, raw_agreement, without_coder

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the example with missing values:
# four coders, twelve units; published alphas: nominal 0.743, ordinal 0.815, interval 0.849.
K2011 = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}


def units(coders: dict) -> dict:
    n = len(next(iter(coders.values())))
    return {u: {c: v[u] for c, v in coders.items() if v[u] is not None} for u in range(n)}


def slow_alpha(data: dict, level: str) -> float:
    """α = 1 - D_o / D_e from its pairwise definition: D_o over value pairs within units (each weighted
    1/(m_u - 1)), D_e over all pairs of pairable values in the whole data; ordinal δ by counting."""
    pairable = [list(v.values()) for v in data.values() if len(v) >= 2]
    values = [x for unit in pairable for x in unit]
    n = len(values)
    counts = {c: values.count(c) for c in set(values)}

    def delta(c, k):
        if level == "nominal":
            return float(c != k)
        if level == "interval":
            return float(c - k) ** 2
        lo, hi = min(c, k), max(c, k)
        return (sum(counts[g] for g in counts if lo <= g <= hi) - (counts[c] + counts[k]) / 2) ** 2

    observed = sum(delta(a, b) / (len(u) - 1) for u in pairable for a, b in itertools.permutations(u, 2)) / n
    expected = sum(delta(a, b) for a, b in itertools.permutations(values, 2)) / (n * (n - 1))
    return 1 - observed / expected


def test_hand_computed_nominal_alpha():
    # coincidences o11 = 2, o12 = o21 = 1, o22 = 2; n1 = n2 = 3, n = 6
    # alpha = 1 - (n - 1) * (o12 + o21) / (n1 n2 + n2 n1) = 1 - 5 * 2 / 18 = 4/9
    data = {1: {"a": 1, "b": 1}, 2: {"a": 1, "b": 2}, 3: {"a": 2, "b": 2}}
    assert krippendorff_alpha(data, "nominal") == pytest.approx(4 / 9)
    # ordinal with two values: delta(1, 2) = (3 + 3 - 3)^2 = 9 on both sides, so the same ratio
    assert krippendorff_alpha(data, "ordinal") == pytest.approx(4 / 9)
    assert raw_agreement(data) == pytest.approx(2 / 3)


def test_published_example():
    data = units(K2011)
    assert krippendorff_alpha(data, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(data, "interval") == pytest.approx(0.849, abs=5e-4)
    assert krippendorff_alpha(data, "ordinal") == pytest.approx(0.815, abs=5e-4)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_matches_the_slow_reference_on_random_data(level):
    rng = random.Random(level)
    for _ in range(20):
        data = {u: {c: rng.randint(1, 5) for c in range(4) if rng.random() < 0.7} for u in range(15)}
        assert krippendorff_alpha(data, level) == pytest.approx(slow_alpha(data, level))


def test_perfect_agreement_undefined_cases_and_units_with_one_value():
    assert krippendorff_alpha({1: {"a": 1, "b": 1}, 2: {"a": 3, "b": 3}}, "ordinal") == 1.0
    assert math.isnan(krippendorff_alpha({1: {"a": 2, "b": 2}}, "nominal"))  # no variation at all
    assert math.isnan(krippendorff_alpha({1: {"a": 2}}, "nominal"))
    with_single = {1: {"a": 1, "b": 1}, 2: {"a": 1, "b": 2}, 3: {"a": 2, "b": 2}, 4: {"c": 1}}
    assert krippendorff_alpha(with_single, "nominal") == pytest.approx(4 / 9)


def test_raw_agreement_per_coder_and_leave_one_out():
    data = {1: {"a": 1, "b": 1, "c": 2}, 2: {"a": 2, "b": 2, "c": 1}}
    assert raw_agreement(data) == pytest.approx(2 / 6)
    assert raw_agreement(data, coder="a") == pytest.approx(2 / 4)
    assert raw_agreement(data, coder="c") == 0.0
    assert krippendorff_alpha(without_coder(data, "c"), "nominal") == 1.0
    assert math.isnan(raw_agreement({1: {"a": 1}}))
