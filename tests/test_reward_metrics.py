"""Reward-model metrics against slow, obvious references and against values computed by hand."""

import math

import pytest
import torch

from alignkit.evaluate.reward_metrics import (
    average_ranks,
    calibration_bins,
    expected_calibration_error,
    length_balanced_accuracy,
    length_diagnostics,
    length_residual_fit,
    mean_margin,
    pairwise_accuracy,
    pairwise_ece,
    shorter_wins_accuracy,
    spearman,
)
from alignkit.models.combine import combine_ensemble, length_residual


def reference_accuracy(c, r):
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(c, r, strict=True)) / len(c)


def reference_ece(probs, outcomes, bins):
    """Put each prediction in its bin one at a time, then sum the weighted gaps."""
    members = [[] for _ in range(bins)]
    for p, y in zip(probs, outcomes, strict=True):
        members[min(int(p * bins), bins - 1)].append((p, y))
    total = 0.0
    for rows in members:
        if rows:
            gap = sum(p for p, _ in rows) / len(rows) - sum(y for _, y in rows) / len(rows)
            total += len(rows) / len(probs) * abs(gap)
    return total


def reference_spearman(x, y):
    """Rank by counting (smaller values, plus half the other equal ones), then Pearson by loops."""

    def ranks(v):
        return [1 + sum(b < a for b in v) + 0.5 * (sum(b == a for b in v) - 1) for a in v]

    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return cov / math.sqrt(vx * vy)


def test_accuracy_and_margin_hand_values():
    assert pairwise_accuracy([1.0, 2.0, 3.0], [0.0, 2.0, 4.0]) == 0.5
    assert math.isclose(mean_margin([1.0, 2.0, 3.0], [0.0, 2.0, 4.0]), 0.0, abs_tol=1e-12)
    assert mean_margin(torch.tensor([3.0, 1.0]), torch.tensor([1.0, 0.0])) == 1.5


def test_accuracy_matches_reference():
    gen = torch.Generator().manual_seed(0)
    c, r = torch.randint(0, 4, (50,), generator=gen).float(), torch.randint(0, 4, (50,), generator=gen).float()
    assert math.isclose(pairwise_accuracy(c, r), reference_accuracy(c.tolist(), r.tolist()))
    with pytest.raises(ValueError, match="equal length"):
        pairwise_accuracy([1.0], [1.0, 2.0])


def test_ece_hand_values():
    # bin 0: p .05, outcome 0 → .05; bin 1: mean p .15, mean outcome .5 → .35; bin 9: .95 vs 1 → .05
    probs, outcomes = [0.05, 0.15, 0.15, 0.95], [0, 1, 0, 1]
    assert math.isclose(expected_calibration_error(probs, outcomes), 0.25 * 0.05 + 0.5 * 0.35 + 0.25 * 0.05)
    # p = 1 falls in the last bin, p = 0 in the first; both perfectly calibrated here
    assert expected_calibration_error([0.0, 1.0], [0, 1]) == 0.0
    rows = calibration_bins(probs, outcomes)
    assert [(row["lower"], row["count"]) for row in rows] == [(0.0, 1), (0.1, 2), (0.9, 1)]


def test_ece_matches_reference():
    gen = torch.Generator().manual_seed(1)
    probs = torch.rand(200, generator=gen)
    outcomes = (torch.rand(200, generator=gen) < probs).float()
    for bins in (5, 10, 15):
        expected = reference_ece(probs.double().tolist(), outcomes.tolist(), bins)
        assert math.isclose(expected_calibration_error(probs, outcomes, bins), expected, rel_tol=1e-9)


def test_pairwise_ece_mirrors_each_pair():
    # gap 0: p = 1/2 both ways round, half the outcomes 1 → calibrated
    assert math.isclose(pairwise_ece([0.0, 2.0], [0.0, 2.0]), 0.0, abs_tol=1e-12)
    # gap ln 3: (3/4, outcome 1) and (1/4, outcome 0) are both off by 1/4
    assert math.isclose(pairwise_ece([math.log(3)], [0.0]), 0.25, rel_tol=1e-9)
    gen = torch.Generator().manual_seed(2)
    c, r = torch.randn(40, generator=gen), torch.randn(40, generator=gen)
    p = torch.sigmoid(c.double() - r.double()).tolist()
    expected = reference_ece(p + [1 - x for x in p], [1] * 40 + [0] * 40, 10)
    assert math.isclose(pairwise_ece(c, r), expected, rel_tol=1e-6)


def test_spearman_hand_values():
    assert math.isclose(spearman([1, 2, 3], [3, 2, 1]), -1.0)
    assert math.isclose(spearman([10, 20, 30], [1, 5, 100]), 1.0)
    # ranks [1, 2.5, 2.5, 4] vs [1, 2, 3, 4]: cov 4.5, variances 4.5 and 5
    assert math.isclose(spearman([1, 2, 2, 3], [1, 2, 3, 4]), math.sqrt(0.9))
    assert average_ranks([5, 7, 7, 1]).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_spearman_matches_reference():
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        x = torch.randint(0, 6, (30,), generator=gen).tolist()
        y = (torch.randn(30, generator=gen) + torch.tensor(x) * 0.3).tolist()
        assert math.isclose(spearman(x, y), reference_spearman(x, y), rel_tol=1e-9)


def test_length_diagnostics_hand_values():
    chosen, rejected = [2.0, 1.0, 0.0, 3.0], [1.0, 2.0, 0.0, 0.0]
    chosen_len, rejected_len = [20, 10, 30, 50], [10, 20, 30, 40]
    got = length_diagnostics(chosen, rejected, chosen_len, rejected_len, buckets=2)
    # pair 2 has equal lengths; pairs 0, 3 chose the longer, pair 1 the shorter
    assert math.isclose(got["longer_chosen_rate"], 2 / 3)
    # the longer response scores higher in pairs 0 and 3 (2 > 1, 3 > 0) and in pair 1 (2 > 1)
    assert got["longer_wins_rate"] == 1.0
    rewards, lengths = chosen + rejected, chosen_len + rejected_len
    assert math.isclose(got["reward_length_spearman"], reference_spearman(rewards, lengths))
    # mean lengths 15, 15, 30, 45: median 22.5 splits them two and two
    assert got["accuracy_by_length_bucket"] == [
        {"bucket": "15-15 tokens", "pairs": 2, "accuracy": 0.5},
        {"bucket": "30-45 tokens", "pairs": 2, "accuracy": 0.75},
    ]


def test_length_diagnostics_matches_reference():
    gen = torch.Generator().manual_seed(4)
    n, buckets = 60, 4
    c, r = torch.randn(n, generator=gen), torch.randn(n, generator=gen)
    lc, lr = torch.randint(5, 50, (n,), generator=gen), torch.randint(5, 50, (n,), generator=gen)
    got = length_diagnostics(c, r, lc, lr, buckets=buckets)
    differ = [i for i in range(n) if lc[i] != lr[i]]
    assert math.isclose(got["longer_chosen_rate"], sum(bool(lc[i] > lr[i]) for i in differ) / len(differ))
    wins = sum(bool((c[i] > r[i]) == (lc[i] > lr[i])) for i in differ)  # no reward ties in continuous noise
    assert math.isclose(got["longer_wins_rate"], wins / len(differ))
    # buckets by hand: quantile edges with linear interpolation, bucket b is (q_b, q_{b+1}], the first closed
    means = sorted(float(lc[i] + lr[i]) / 2 for i in range(n))
    edges = []
    for b in range(buckets + 1):
        pos = b / buckets * (n - 1)
        lo = int(math.floor(pos))
        edges.append(means[lo] + (pos - lo) * (means[min(lo + 1, n - 1)] - means[lo]))
    expected = []
    for b in range(buckets):
        members = [
            i for i in range(n)
            if (edges[b] < float(lc[i] + lr[i]) / 2 or b == 0) and float(lc[i] + lr[i]) / 2 <= edges[b + 1]
        ]
        if members:
            acc = reference_accuracy([float(c[i]) for i in members], [float(r[i]) for i in members])
            expected.append((len(members), acc))
    assert [(row["pairs"], row["accuracy"]) for row in got["accuracy_by_length_bucket"]] == expected
    assert sum(row["pairs"] for row in got["accuracy_by_length_bucket"]) == n


def test_length_diagnostics_all_equal_lengths():
    got = length_diagnostics([1.0, 0.0], [0.0, 1.0], [5, 5], [5, 5])
    assert math.isnan(got["longer_chosen_rate"]) and math.isnan(got["longer_wins_rate"])
    assert got["accuracy_by_length_bucket"] == [{"bucket": "5-5 tokens", "pairs": 2, "accuracy": 0.5}]


def test_combine_ensemble_hand_values():
    scores = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, -1.0]])
    mean, spread = combine_ensemble(scores, "mean")
    assert mean.tolist() == [2.0, 2.0, 1.0] and spread.tolist() == [1.0, 0.0, 2.0]
    assert combine_ensemble(scores, "min")[0].tolist() == [1.0, 2.0, -1.0]
    assert combine_ensemble(scores, "mean_minus_std")[0].tolist() == [1.0, 2.0, -1.0]
    assert combine_ensemble(scores, "mean_minus_std", lam=0.5)[0].tolist() == [1.5, 2.0, 0.0]
    with pytest.raises(ValueError, match="mean, min, mean_minus_std"):
        combine_ensemble(scores, "max")


def test_combine_ensemble_matches_reference():
    scores = torch.randn(5, 7, generator=torch.Generator().manual_seed(5))
    for rule in ("mean", "min", "mean_minus_std"):
        combined, spread = combine_ensemble(scores, rule, lam=0.7)
        for j in range(7):
            column = [float(scores[m, j]) for m in range(5)]
            mu = sum(column) / 5
            sd = math.sqrt(sum((x - mu) ** 2 for x in column) / 5)
            expected = {"mean": mu, "min": min(column), "mean_minus_std": mu - 0.7 * sd}[rule]
            assert math.isclose(float(combined[j]), expected, rel_tol=1e-5, abs_tol=1e-6)
            assert math.isclose(float(spread[j]), sd, rel_tol=1e-5)


def test_length_residual_hand_values():
    lengths = torch.tensor([1.0, 2.0, 3.0])
    rewards = 2 * lengths + 1
    slope, intercept = length_residual_fit(rewards, lengths)
    assert math.isclose(slope, 2.0, rel_tol=1e-9) and math.isclose(intercept, 1.0, rel_tol=1e-9)
    assert length_residual(torch.tensor([4.0]), torch.tensor([1]), 2.0, 1.0).tolist() == [1.0]
    with pytest.raises(ValueError, match="all lengths are equal"):
        length_residual_fit([1.0, 2.0], [3, 3])


def test_length_residual_matches_reference():
    gen = torch.Generator().manual_seed(6)
    lengths = torch.randint(10, 200, (50,), generator=gen)
    rewards = 0.01 * lengths + torch.randn(50, generator=gen)
    slope, intercept = length_residual_fit(rewards, lengths)
    x, y = lengths.double().tolist(), rewards.double().tolist()
    n = len(x)
    sx, sy = sum(x), sum(y)
    sxx, sxy = sum(a * a for a in x), sum(a * b for a, b in zip(x, y, strict=True))
    expected_slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    assert math.isclose(slope, expected_slope, rel_tol=1e-9)
    assert math.isclose(intercept, (sy - expected_slope * sx) / n, rel_tol=1e-9)
    residual = length_residual(rewards, lengths, slope, intercept)
    assert residual.dtype == rewards.dtype
    # least-squares residuals have zero mean and no linear relation left with length
    assert abs(float(residual.mean())) < 1e-5
    assert abs(float(((lengths - lengths.float().mean()) * residual).mean())) < 1e-3


def test_length_balanced_accuracy_hand_values():
    # pairs 0-2: chosen longer (right, right, wrong); 3-4: chosen shorter (right, reward tie); 5: equal lengths
    chosen, rejected = [1.0, 2.0, 0.0, 3.0, 1.0, 0.0], [0.0, 1.0, 1.0, 2.0, 1.0, 5.0]
    chosen_len, rejected_len = [10, 20, 30, 5, 6, 7], [5, 10, 20, 10, 12, 7]
    got = length_balanced_accuracy(chosen, rejected, chosen_len, rejected_len)
    assert got["accuracy_chosen_longer"] == pytest.approx(2 / 3)
    assert got["accuracy_chosen_shorter"] == pytest.approx(0.75)
    assert (got["pairs_chosen_longer"], got["pairs_chosen_shorter"]) == (3, 2)
    assert got["length_balanced_accuracy"] == pytest.approx((2 / 3 + 0.75) / 2)
    # Agresti-Caffo: p_l = 3/5, p_s = 2.5/4, se = ½ sqrt(0.6·0.4/5 + 0.625·0.375/4), centre 0.6125
    se = 0.5 * math.sqrt(0.6 * 0.4 / 5 + 0.625 * 0.375 / 4)
    assert got["length_balanced_interval"] == pytest.approx([0.6125 - 1.959964 * se, 0.6125 + 1.959964 * se])
    assert shorter_wins_accuracy(chosen_len, rejected_len) == pytest.approx((2 + 0.5) / 6)


def test_a_length_only_rule_scores_one_half_balanced():
    generator = torch.Generator().manual_seed(0)
    chosen_len = torch.randint(1, 200, (400,), generator=generator)
    rejected_len = torch.randint(1, 200, (400,), generator=generator)
    rejected_len[:250] = chosen_len[:250] + 7  # most chosen replies shorter, as in HH-harmless
    shorter = length_balanced_accuracy(-chosen_len, -rejected_len, chosen_len, rejected_len)
    longer = length_balanced_accuracy(chosen_len, rejected_len, chosen_len, rejected_len)
    assert shorter["length_balanced_accuracy"] == 0.5 and longer["length_balanced_accuracy"] == 0.5
    equal = int((chosen_len == rejected_len).sum())
    plain = pairwise_accuracy(-chosen_len.double(), -rejected_len.double())
    assert plain > 0.6 and shorter_wins_accuracy(chosen_len, rejected_len) == pytest.approx(plain)
    assert shorter["pairs_chosen_longer"] + shorter["pairs_chosen_shorter"] == 400 - equal


def test_length_balanced_accuracy_needs_both_groups():
    got = length_balanced_accuracy([1.0, 0.0], [0.0, 1.0], [5, 6], [1, 2])
    assert got["accuracy_chosen_longer"] == 0.5 and math.isnan(got["accuracy_chosen_shorter"])
    assert math.isnan(got["length_balanced_accuracy"])
