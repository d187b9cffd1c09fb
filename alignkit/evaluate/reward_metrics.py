"""Reward-model evaluation: accuracy, calibration, rank correlation, length bias and ensembles.

Scores come in as torch tensors or plain sequences of numbers; the metrics come out as Python
floats (or dicts of them), computed in float64 on the CPU. How a scorer combines its members' rewards
and removes their length trend is :mod:`alignkit.models.combine`; :func:`length_residual_fit` fits that trend.
"""

import math

import torch

from alignkit.tensors import Numbers, float64_pair, float64_vector, pearson


def pairwise_accuracy(chosen: Numbers, rejected: Numbers) -> float:
    """Share of pairs where the chosen reward is higher: mean of [r_c > r_r] + ½·[r_c = r_r]."""
    c, r = float64_pair(chosen, rejected)
    return float(((c > r).double() + 0.5 * (c == r).double()).mean())


def mean_margin(chosen: Numbers, rejected: Numbers) -> float:
    """Mean reward gap, mean of r_c - r_r."""
    c, r = float64_pair(chosen, rejected)
    return float((c - r).mean())


def calibration_bins(probs: Numbers, outcomes: Numbers, bins: int = 10) -> list[dict[str, float]]:
    """The points of a reliability diagram: per non-empty bin, its range, size, mean p and mean outcome.

    Bins are equal-width over [0, 1]: bin b holds b/B <= p < (b+1)/B, the last one also p = 1.
    """
    p, y = float64_pair(probs, outcomes)
    index = torch.clamp((p * bins).floor().long(), 0, bins - 1)
    rows = []
    for b in range(bins):
        members = index == b
        if members.any():
            rows.append({
                "lower": b / bins,
                "upper": (b + 1) / bins,
                "count": int(members.sum()),
                "mean_prob": float(p[members].mean()),
                "mean_outcome": float(y[members].mean()),
            })
    return rows


def expected_calibration_error(probs: Numbers, outcomes: Numbers, bins: int = 10) -> float:
    """Expected calibration error of predicted probabilities against 0/1 outcomes.

        ECE = Σ_b (n_b / n) · | mean(p in b) - mean(outcome in b) |

    over equal-width bins of [0, 1] (see :func:`calibration_bins`). For a reward model use
    :func:`pairwise_ece`, which builds probs and outcomes from chosen and rejected rewards.
    """
    rows = calibration_bins(probs, outcomes, bins)
    n = sum(row["count"] for row in rows)
    return sum(row["count"] / n * abs(row["mean_prob"] - row["mean_outcome"]) for row in rows)


def pairwise_ece(chosen: Numbers, rejected: Numbers, bins: int = 10) -> float:
    """ECE of the Bradley-Terry probability p = σ(r_c - r_r) that the chosen response is better.

    Every pair is seen both ways round: (p, outcome 1) for chosen-vs-rejected, as labelled, and the
    mirrored (1 - p, outcome 0) for rejected-vs-chosen. Without the mirror all outcomes would be 1
    and only the upper half of the reliability diagram would be tested; with it the diagram covers
    [0, 1], and the result is the same whether the model is read as predicting "chosen is better"
    or "rejected is better".
    """
    c, r = float64_pair(chosen, rejected)
    p = torch.sigmoid(c - r)
    probs = torch.cat([p, 1.0 - p])
    outcomes = torch.cat([torch.ones_like(p), torch.zeros_like(p)])
    return expected_calibration_error(probs, outcomes, bins)


def average_ranks(values: Numbers) -> torch.Tensor:
    """1-based ranks of the values, ties sharing the average of the ranks they span ([5, 7, 7] → [1, 2.5, 2.5])."""
    _, inverse, counts = torch.unique(float64_vector(values), return_inverse=True, return_counts=True)
    last = counts.cumsum(0).double()  # the highest rank in each run of equal values
    return (last - (counts.double() - 1.0) / 2.0)[inverse]


def spearman(x: Numbers, y: Numbers) -> float:
    """Spearman's rank correlation: the Pearson correlation of the average ranks of x and y.

    NaN when either input is constant (the correlation is undefined), as in scipy.
    """
    a, b = float64_pair(x, y)
    return pearson(average_ranks(a), average_ranks(b))


def _length_buckets(mean_length: torch.Tensor, buckets: int) -> list[torch.Tensor]:
    """Masks of the non-empty quantile buckets: bucket b holds q_b < length <= q_{b+1} (the first also q_0)."""
    edges = torch.quantile(mean_length, torch.linspace(0, 1, buckets + 1, dtype=torch.float64))
    index = torch.bucketize(mean_length, edges[1:-1])
    return [index == b for b in range(buckets) if (index == b).any()]


def length_diagnostics(
    chosen_reward: Numbers, rejected_reward: Numbers, chosen_len: Numbers, rejected_len: Numbers, buckets: int = 4
) -> dict:
    """How much a reward model's scores follow response length (Singhal et al. 2023).

    - ``reward_length_spearman``: Spearman correlation of reward and length over all 2P responses;
    - ``longer_chosen_rate``: share of pairs whose label prefers the longer response;
    - ``longer_wins_rate``: share of pairs whose rewards prefer the longer response (reward ties ½);
    - ``accuracy_by_length_bucket``: pairwise accuracy within quantile buckets of the pair's mean
      length, as ``{"bucket": "a-b tokens", "pairs": n, "accuracy": x}`` with a, b the smallest and
      largest mean length in the bucket.

    Pairs of equal length are left out of both rates (NaN if no pair is left).
    """
    c, r = float64_pair(chosen_reward, rejected_reward)
    lc, lr = float64_pair(chosen_len, rejected_len)
    if lc.numel() != c.numel():
        raise ValueError(f"got {c.numel()} reward pairs but {lc.numel()} length pairs")
    differ = lc != lr
    chosen_longer = lc[differ] > lr[differ]
    if differ.any():
        longer_chosen = float(chosen_longer.double().mean())
        longer_reward = torch.where(chosen_longer, c[differ], r[differ])
        shorter_reward = torch.where(chosen_longer, r[differ], c[differ])
        longer_wins = pairwise_accuracy(longer_reward, shorter_reward)
    else:
        longer_chosen = longer_wins = float("nan")
    mean_length = (lc + lr) / 2.0
    by_bucket = [
        {
            "bucket": f"{float(mean_length[m].min()):g}-{float(mean_length[m].max()):g} tokens",
            "pairs": int(m.sum()),
            "accuracy": pairwise_accuracy(c[m], r[m]),
        }
        for m in _length_buckets(mean_length, buckets)
    ]
    return {
        "reward_length_spearman": spearman(torch.cat([c, r]), torch.cat([lc, lr])),
        "longer_chosen_rate": longer_chosen,
        "longer_wins_rate": longer_wins,
        "accuracy_by_length_bucket": by_bucket,
    }


def length_balanced_accuracy(
    chosen_reward: Numbers, rejected_reward: Numbers, chosen_len: Numbers, rejected_len: Numbers, z: float = 1.959964
) -> dict:
    """Accuracy split by which reply is longer, and the length-balanced accuracy with its interval.

        acc_longer  = accuracy on the pairs whose chosen reply is the longer one      (n_l pairs)
        acc_shorter = accuracy on the pairs whose chosen reply is the shorter one     (n_s pairs)
        balanced    = ½ (acc_longer + acc_shorter)

    Any rule that looks only at length ("the shorter reply wins", or the longer) is right on all of
    one group and none of the other, so it scores exactly 0.5 here, whatever share of pairs each group
    holds; plain accuracy rewards such a rule by that share. Pairs of equal length are left out; a reward
    tie counts half. The interval is the adjusted Wald interval of a mean of two independent proportions
    (Agresti & Caffo 2000, "Simple and effective confidence intervals for proportions and differences of
    proportions": one success and one failure added to each group):

        p̃_g = (x_g + 1) / (n_g + 2),   se = ½ sqrt(Σ_g p̃_g (1 - p̃_g) / (n_g + 2)),   ½ (p̃_l + p̃_s) ± z·se

    clipped to [0, 1]. Keys: ``length_balanced_accuracy``, ``length_balanced_interval``,
    ``accuracy_chosen_longer``, ``accuracy_chosen_shorter``, ``pairs_chosen_longer``, ``pairs_chosen_shorter``
    (an accuracy is NaN, and the balanced figures too, when its group is empty).
    """
    c, r = float64_pair(chosen_reward, rejected_reward)
    lc, lr = float64_pair(chosen_len, rejected_len)
    if lc.numel() != c.numel():
        raise ValueError(f"got {c.numel()} reward pairs but {lc.numel()} length pairs")
    correct = (c > r).double() + 0.5 * (c == r).double()
    groups = {"longer": lc > lr, "shorter": lc < lr}
    counts = {g: int(m.sum()) for g, m in groups.items()}
    hits = {g: float(correct[m].sum()) for g, m in groups.items()}
    accuracy = {g: hits[g] / counts[g] if counts[g] else float("nan") for g in groups}
    balanced, interval = float("nan"), (float("nan"), float("nan"))
    if all(counts.values()):
        balanced = 0.5 * (accuracy["longer"] + accuracy["shorter"])
        adjusted = {g: (hits[g] + 1) / (counts[g] + 2) for g in groups}
        se = 0.5 * math.sqrt(sum(adjusted[g] * (1 - adjusted[g]) / (counts[g] + 2) for g in groups))
        centre = 0.5 * (adjusted["longer"] + adjusted["shorter"])
        interval = (max(0.0, centre - z * se), min(1.0, centre + z * se))
    return {
        "length_balanced_accuracy": balanced,
        "length_balanced_interval": list(interval),
        "accuracy_chosen_longer": accuracy["longer"],
        "accuracy_chosen_shorter": accuracy["shorter"],
        "pairs_chosen_longer": counts["longer"],
        "pairs_chosen_shorter": counts["shorter"],
    }


def shorter_wins_accuracy(chosen_len: Numbers, rejected_len: Numbers) -> float:
    """Accuracy of the rule "the shorter reply wins" on the same pairs: 1 where the chosen reply is the
    shorter, 0 where it is the longer, ½ where both are equally long."""
    lc, lr = float64_pair(chosen_len, rejected_len)
    return float(((lc < lr).double() + 0.5 * (lc == lr).double()).mean())


def length_residual_fit(rewards: Numbers, lengths: Numbers) -> tuple[float, float]:
    """Ordinary least squares fit reward ≈ slope · length + intercept; returns (slope, intercept).

        slope = Σ (l - l̄)(r - r̄) / Σ (l - l̄)²,    intercept = r̄ - slope · l̄

    Raises ValueError when all lengths are equal (the slope is undefined).
    """
    r, length = float64_pair(rewards, lengths)
    centred = length - length.mean()
    spread = (centred * centred).sum()
    if spread == 0:
        raise ValueError("cannot fit reward against length: all lengths are equal")
    slope = float((centred * (r - r.mean())).sum() / spread)
    return slope, float(r.mean()) - slope * float(length.mean())
