"""Length exploitation diagnostics against hand-computed values and slow, obvious references (the win
rate's interval is checked in test_winrate.py)."""

import math

import pytest
import torch

from alignkit.evaluate.length_bias import (
    length_bucket_gain,
    length_matched_win_rate,
    reward_length_correlation,
)
from alignkit.evaluate.winrate import win_rate
from alignkit.tensors import pearson


def reference_pearson(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    return cov / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


def reference_split(r0, l0, r1, l1, edges):
    """Kitagawa's split written out bucket by bucket, with a missing side's mean set to the other's."""
    def bucket(length):
        return next(b for b in range(len(edges) - 1) if length <= edges[b + 1] or b == len(edges) - 2)

    within = shift = 0.0
    for b in range(len(edges) - 1):
        before = [r for r, length in zip(r0, l0, strict=True) if bucket(length) == b]
        after = [r for r, length in zip(r1, l1, strict=True) if bucket(length) == b]
        if not before and not after:
            continue
        m0 = sum(before) / len(before) if before else sum(after) / len(after)
        m1 = sum(after) / len(after) if after else m0
        w0, w1 = len(before) / len(r0), len(after) / len(r1)
        within += (w0 + w1) / 2 * (m1 - m0)
        shift += (w1 - w0) * (m0 + m1) / 2
    return within, shift


def test_pearson_and_spearman_hand_values():
    assert pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)  # cov 4 / sqrt(5 · 5)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    result = reward_length_correlation([1.0, 3.0, 2.0, 4.0], torch.tensor([10, 20, 30, 40]))
    assert result["pearson"] == pytest.approx(0.8) and result["spearman"] == pytest.approx(0.8) and result["n"] == 4
    # a monotone but curved relation: Spearman 1, Pearson below 1
    result = reward_length_correlation([1.0, 2.0, 3.0, 100.0], [1, 2, 3, 4])
    assert result["spearman"] == pytest.approx(1.0) and result["pearson"] < 0.9
    with pytest.raises(ValueError, match="equal length"):
        reward_length_correlation([1.0, 2.0], [1])


def test_pearson_matches_reference():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, generator=gen), torch.randn(40, generator=gen)
    assert pearson(x, x + y) == pytest.approx(reference_pearson(x.tolist(), (x + y).tolist()), abs=1e-12)


def test_all_gain_from_length():
    # reward is 1 for long replies and 0 for short ones; training only made more replies long
    before = ([0.0, 0.0, 0.0, 1.0], [10, 10, 10, 30])
    after = ([0.0, 1.0, 1.0, 1.0], [10, 30, 30, 30])
    result = length_bucket_gain(*before, *after, buckets=2)  # pooled median 20 splits short from long
    assert result.total_gain == pytest.approx(0.5)
    assert result.within_bucket_gain == pytest.approx(0.0)
    assert result.length_shift_gain == pytest.approx(0.5)  # (.75 - .25) · 1 + (.25 - .75) · 0
    short, long = result.buckets
    assert (short.count_before, short.count_after, short.mean_before, short.mean_after) == (3, 1, 0.0, 0.0)
    assert (long.count_before, long.count_after, long.gain) == (1, 3, 0.0)
    assert (short.lower, short.upper, long.upper) == (10.0, 20.0, 30.0)


def test_all_gain_within_buckets_when_lengths_do_not_move():
    lengths = [5, 8, 13, 21, 34, 55]
    rewards = [0.1, 0.5, 0.2, 0.9, 0.3, 0.4]
    result = length_bucket_gain(rewards, lengths, [r + 2.0 for r in rewards], lengths, buckets=3)
    assert result.total_gain == pytest.approx(2.0)
    assert result.within_bucket_gain == pytest.approx(2.0)
    assert result.length_shift_gain == pytest.approx(0.0, abs=1e-12)
    assert all(b.gain == pytest.approx(2.0) for b in result.buckets)


def test_mixed_gain_hand_values_and_one_sided_buckets():
    # pooled lengths 10 20 20 30 | 35 40 40 50: two buckets split at 32.5.
    # before: short 0, 0, 1 (mean 1/3), long 1; after: short 1, long 2, 2, 2. w0 = (3/4, 1/4), w1 = (1/4, 3/4)
    before = ([0.0, 0.0, 1.0, 1.0], [10, 20, 30, 40])
    after = ([1.0, 2.0, 2.0, 2.0], [20, 35, 40, 50])
    result = length_bucket_gain(*before, *after, buckets=2)
    assert result.total_gain == pytest.approx(1.75 - 0.5)
    assert result.within_bucket_gain == pytest.approx(0.5 * (1 - 1 / 3) + 0.5 * (2 - 1))  # 5/6
    assert result.length_shift_gain == pytest.approx(-0.5 * (1 / 3 + 1) / 2 + 0.5 * (1 + 2) / 2)  # 5/12
    assert [b.gain for b in result.buckets] == pytest.approx([2 / 3, 1.0])
    # four buckets (edges 10, 20, 32.5, 40, 50): (20, 32.5] holds only the before-reply 30 and (40, 50] only
    # the after-reply 50; their rewards count as length shift, and the split stays exact
    result = length_bucket_gain(*before, *after, buckets=4)
    assert [(b.count_before, b.count_after) for b in result.buckets] == [(2, 1), (1, 0), (1, 2), (0, 1)]
    assert math.isnan(result.buckets[1].mean_after) and math.isnan(result.buckets[3].mean_before)
    assert math.isnan(result.buckets[3].gain)
    # within: bucket 0 ½(½ + ¼)(1 - 0), bucket 2 ½(¼ + ½)(2 - 1)
    assert result.within_bucket_gain == pytest.approx(0.375 + 0.375)
    assert result.within_bucket_gain + result.length_shift_gain == pytest.approx(result.total_gain)


def test_decomposition_matches_reference_and_is_exact():
    gen = torch.Generator().manual_seed(3)
    l0, l1 = torch.randint(5, 60, (50,), generator=gen), torch.randint(20, 120, (70,), generator=gen)
    r0, r1 = 0.02 * l0 + torch.randn(50, generator=gen), 0.02 * l1 + 0.3 + torch.randn(70, generator=gen)
    result = length_bucket_gain(r0, l0, r1, l1, buckets=5)
    edges = torch.quantile(torch.cat([l0, l1]).double(), torch.linspace(0, 1, 6, dtype=torch.float64)).tolist()
    within, shift = reference_split(r0.tolist(), l0.tolist(), r1.tolist(), l1.tolist(), edges)
    assert result.within_bucket_gain == pytest.approx(within, abs=1e-9)
    assert result.length_shift_gain == pytest.approx(shift, abs=1e-9)
    assert result.total_gain == pytest.approx(float(r1.double().mean() - r0.double().mean()), abs=1e-9)
    assert within + shift == pytest.approx(result.total_gain, abs=1e-9)
    assert sum(b.count_before for b in result.buckets) == 50 and sum(b.count_after for b in result.buckets) == 70
    assert result.length_shift_gain > 0  # the after-replies are longer and length pays


def test_length_matched_win_rate_keeps_only_matched_prompts():
    policy, baseline = [3.0, 1.0, 5.0, 2.0, 9.0], [1.0, 2.0, 5.0, 1.0, 0.0]
    policy_len, baseline_len = [100, 50, 10, 40, 300], [95, 54, 10, 20, 100]
    result = length_matched_win_rate(policy, baseline, policy_len, baseline_len, max_ratio=1.1)
    assert (result.matched, result.total) == (3, 5)  # prompts 0, 1 and 2; 3 and 4 differ two- and threefold
    assert (result.win_rate.wins, result.win_rate.losses, result.win_rate.ties) == (1, 1, 1)
    assert result.win_rate.rate == 0.5
    assert result.win_rate == win_rate(torch.tensor([3.0, 1.0, 5.0]).double(), torch.tensor([1.0, 2.0, 5.0]).double())
    by_tokens = length_matched_win_rate(policy, baseline, policy_len, baseline_len, max_ratio=None, max_difference=5)
    assert by_tokens.matched == 3 and by_tokens.win_rate.rate == 0.5
    both = length_matched_win_rate(policy, baseline, policy_len, baseline_len, max_ratio=1.1, max_difference=4)
    assert both.matched == 2  # prompt 1 (4 tokens apart) is in, prompt 0 (5 apart) is out
    assert length_matched_win_rate([1.0], [0.0], [0], [0]).matched == 1  # two empty replies match
    none = length_matched_win_rate([1.0], [0.0], [10], [30])
    assert (none.matched, none.win_rate) == (0, None)
    with pytest.raises(ValueError, match="max_ratio, max_difference"):
        length_matched_win_rate([1.0], [0.0], [1], [1], max_ratio=None)
