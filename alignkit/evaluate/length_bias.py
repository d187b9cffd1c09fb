"""Length exploitation: does a policy's reward come from saying more rather than saying it better?

Three views (Singhal et al. 2023, "A long way to go: investigating length correlations in RLHF"):

- :func:`reward_length_correlation`: Pearson and Spearman correlation of reward and reply length;
- :func:`length_bucket_gain`: the reward gain from before to after training, within buckets of equal
  length, and the overall gain split exactly into a within-bucket part and a part from the length shift;
- :func:`length_matched_win_rate`: the win rate of policy over baseline on the prompts whose two replies
  are about equally long, so a judge that likes long replies cannot decide it.

Lengths are in whatever unit the caller counts (tokens, words); rewards and lengths come in as tensors
or sequences of numbers and the results are Python floats, computed in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from alignkit.evaluate.reward_metrics import spearman
from alignkit.evaluate.winrate import WinRate, win_rate
from alignkit.tensors import Numbers, float64_vector, pearson


def _same_size(*vectors: torch.Tensor) -> None:
    sizes = [v.numel() for v in vectors]
    if len(set(sizes)) != 1 or sizes[0] == 0:
        raise ValueError(f"expected non-empty sequences of equal length, got lengths {sizes}")


def reward_length_correlation(rewards: Numbers, lengths: Numbers) -> dict[str, float]:
    """``{"pearson": ..., "spearman": ..., "n": ...}`` of reward against length over a set of replies
    (Spearman with average ranks for ties; either is NaN when rewards or lengths are constant)."""
    r, length = float64_vector(rewards), float64_vector(lengths)
    _same_size(r, length)
    return {"pearson": pearson(r, length), "spearman": spearman(r, length), "n": r.numel()}


@dataclass(frozen=True)
class LengthBucket:
    """One length bucket: lower < length <= upper (the first bucket also length = lower), its reply
    counts and mean rewards before and after (NaN on a side with no reply in the bucket), and the gain."""

    lower: float
    upper: float
    count_before: int
    count_after: int
    mean_before: float
    mean_after: float
    gain: float


@dataclass(frozen=True)
class LengthBucketGain:
    """The buckets and the exact split ``total_gain = within_bucket_gain + length_shift_gain``."""

    buckets: list[LengthBucket]
    total_gain: float
    within_bucket_gain: float
    length_shift_gain: float


def length_bucket_gain(
    rewards_before: Numbers, lengths_before: Numbers, rewards_after: Numbers, lengths_after: Numbers,
    buckets: int = 4,
) -> LengthBucketGain:
    """The reward gain of training, within buckets of similar length and split into two exact parts.

    Bucket edges are the 0, 1/B, ..., 1 quantiles q_0..q_B of the pooled lengths (before and after
    together); bucket b holds q_b < length <= q_{b+1}, the first also length = q_0. Buckets empty on both
    sides are dropped (tied quantiles). Per bucket b, with n0_b, n1_b the replies in it before and after:

        w0_b = n0_b / n0,  w1_b = n1_b / n1          share of replies in bucket b
        m0_b, m1_b                                    mean reward in bucket b (NaN when empty)

    The overall gain  Δ = mean(r_after) - mean(r_before) = Σ_b w1_b m1_b - Σ_b w0_b m0_b  splits as
    (Kitagawa 1955, "Components of a difference between two rates", the symmetric decomposition):

        within_bucket_gain = Σ_b ½(w0_b + w1_b) (m1_b - m0_b)      reward gained at equal length
        length_shift_gain  = Σ_b (w1_b - w0_b) ½(m0_b + m1_b)      reward gained by moving between buckets

    and within + shift = Δ exactly. A bucket with replies on one side only has no within-bucket evidence:
    its gain counts as 0 and its missing mean is taken equal to the other side's, so all of its reward
    enters the length-shift part (and the identity still holds). If reward depends on length only
    through the bucket, all of Δ is length shift; if lengths do not move, all of Δ is within-bucket.
    The within part is in the spirit of the "weighted reward gain" of Singhal et al. 2023, with averaged weights.
    """
    r0, l0, r1, l1 = (float64_vector(v) for v in (rewards_before, lengths_before, rewards_after, lengths_after))
    _same_size(r0, l0)
    _same_size(r1, l1)
    if buckets < 1:
        raise ValueError(f"buckets must be at least 1, got {buckets}")
    edges = torch.quantile(torch.cat([l0, l1]), torch.linspace(0, 1, buckets + 1, dtype=torch.float64))
    index0, index1 = torch.bucketize(l0, edges[1:-1]), torch.bucketize(l1, edges[1:-1])
    rows, within, shift = [], 0.0, 0.0
    for b in range(buckets):
        in0, in1 = index0 == b, index1 == b
        n0, n1 = int(in0.sum()), int(in1.sum())
        if n0 == 0 and n1 == 0:
            continue
        m0 = float(r0[in0].mean()) if n0 else math.nan
        m1 = float(r1[in1].mean()) if n1 else math.nan
        w0, w1 = n0 / r0.numel(), n1 / r1.numel()
        both = n0 > 0 and n1 > 0
        gain = m1 - m0 if both else math.nan
        if both:
            within += 0.5 * (w0 + w1) * gain
        shift += (w1 - w0) * (0.5 * (m0 + m1) if both else (m0 if n0 else m1))
        rows.append(LengthBucket(float(edges[b]), float(edges[b + 1]), n0, n1, m0, m1, gain))
    total = float(r1.mean() - r0.mean())
    return LengthBucketGain(rows, total, within, shift)


@dataclass(frozen=True)
class LengthMatchedWinRate:
    """How many of ``total`` prompts had replies of matched length, and the win rate over those
    (None when no prompt matched)."""

    matched: int
    total: int
    win_rate: WinRate | None


def length_matched_win_rate(
    policy_scores: Numbers, baseline_scores: Numbers, policy_lengths: Numbers, baseline_lengths: Numbers,
    *, max_ratio: float | None = 1.1, max_difference: float | None = None,
) -> LengthMatchedWinRate:
    """Win rate of policy over baseline (:func:`~alignkit.evaluate.winrate.win_rate`, its interval
    included) on the prompts whose two replies have matched lengths l_p, l_b:

        max(l_p, l_b) <= max_ratio · min(l_p, l_b)     (when max_ratio is given; two empty replies match)
        |l_p - l_b| <= max_difference                  (when max_difference is given)

    A prompt is kept when it meets every tolerance given; at least one must be given. One entry per
    prompt in each input, in the same prompt order.
    """
    sp, sb, lp, lb = (float64_vector(v) for v in (policy_scores, baseline_scores, policy_lengths, baseline_lengths))
    _same_size(sp, sb, lp, lb)
    if max_ratio is None and max_difference is None:
        raise ValueError("give max_ratio, max_difference or both")
    if max_ratio is not None and max_ratio < 1:
        raise ValueError(f"max_ratio must be >= 1, got {max_ratio}")
    if max_difference is not None and max_difference < 0:
        raise ValueError(f"max_difference must be >= 0, got {max_difference}")
    keep = torch.ones_like(lp, dtype=torch.bool)
    if max_ratio is not None:
        keep &= torch.maximum(lp, lb) <= max_ratio * torch.minimum(lp, lb)
    if max_difference is not None:
        keep &= (lp - lb).abs() <= max_difference
    matched = int(keep.sum())
    result = win_rate(sp[keep], sb[keep]) if matched else None
    return LengthMatchedWinRate(matched, sp.numel(), result)
