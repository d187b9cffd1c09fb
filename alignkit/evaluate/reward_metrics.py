"""Reward-model evaluation: accuracy, calibration, rank correlation, length bias and ensembles.

Scores come in as torch tensors or plain sequences of numbers; the metrics come out as Python
floats (or dicts of them), computed in float64 on the CPU. The tensor-valued helpers at the end
(:func:`combine_ensemble`, :func:`length_residual`) are used while scoring rollouts in RL.
"""

import math
from collections.abc import Sequence

import torch

Numbers = torch.Tensor | Sequence[float]

ENSEMBLE_RULES = ("mean", "min", "mean_minus_std")


def float64_vector(values: Numbers) -> torch.Tensor:
    """A detached 1-D float64 CPU copy of a tensor or a sequence of numbers."""
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu", torch.float64).reshape(-1)
    return torch.tensor(list(values), dtype=torch.float64)


def _pair(first: Numbers, second: Numbers) -> tuple[torch.Tensor, torch.Tensor]:
    """Both inputs as float64 vectors; raises ValueError unless they are non-empty and equally long."""
    a, b = float64_vector(first), float64_vector(second)
    if a.numel() != b.numel() or a.numel() == 0:
        raise ValueError(f"expected two non-empty sequences of equal length, got {a.numel()} and {b.numel()}")
    return a, b


def pairwise_accuracy(chosen: Numbers, rejected: Numbers) -> float:
    """Share of pairs where the chosen reward is higher: mean of [r_c > r_r] + ½·[r_c = r_r]."""
    c, r = _pair(chosen, rejected)
    return float(((c > r).double() + 0.5 * (c == r).double()).mean())


def mean_margin(chosen: Numbers, rejected: Numbers) -> float:
    """Mean reward gap, mean of r_c - r_r."""
    c, r = _pair(chosen, rejected)
    return float((c - r).mean())


def calibration_bins(probs: Numbers, outcomes: Numbers, bins: int = 10) -> list[dict[str, float]]:
    """The points of a reliability diagram: per non-empty bin, its range, size, mean p and mean outcome.

    Bins are equal-width over [0, 1]: bin b holds b/B <= p < (b+1)/B, the last one also p = 1.
    """
    p, y = _pair(probs, outcomes)
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
    c, r = _pair(chosen, rejected)
    p = torch.sigmoid(c - r)
    probs = torch.cat([p, 1.0 - p])
    outcomes = torch.cat([torch.ones_like(p), torch.zeros_like(p)])
    return expected_calibration_error(probs, outcomes, bins)


def average_ranks(values: Numbers) -> torch.Tensor:
    """1-based ranks of the values, ties sharing the average of the ranks they span ([5, 7, 7] → [1, 2.5, 2.5])."""
    _, inverse, counts = torch.unique(float64_vector(values), return_inverse=True, return_counts=True)
    last = counts.cumsum(0).double()  # the highest rank in each run of equal values
    return (last - (counts.double() - 1.0) / 2.0)[inverse]


def pearson(x: Numbers, y: Numbers) -> float:
    """Pearson's correlation  Σ(x - x̄)(y - ȳ) / sqrt(Σ(x - x̄)² Σ(y - ȳ)²);  NaN when x or y is constant."""
    a, b = _pair(x, y)
    a, b = a - a.mean(), b - b.mean()
    denominator = torch.sqrt((a * a).sum() * (b * b).sum())
    if denominator == 0:
        return float("nan")
    return float((a * b).sum() / denominator)


def spearman(x: Numbers, y: Numbers) -> float:
    """Spearman's rank correlation: the Pearson correlation of the average ranks of x and y.

    NaN when either input is constant (the correlation is undefined), as in scipy.
    """
    a, b = _pair(x, y)
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
    c, r = _pair(chosen_reward, rejected_reward)
    lc, lr = _pair(chosen_len, rejected_len)
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
    c, r = _pair(chosen_reward, rejected_reward)
    lc, lr = _pair(chosen_len, rejected_len)
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
    lc, lr = _pair(chosen_len, rejected_len)
    return float(((lc < lr).double() + 0.5 * (lc == lr).double()).mean())


def combine_ensemble(scores: torch.Tensor, rule: str, lam: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine the rewards of M ensemble members for N samples, (M, N) → ((N,) combined, (N,) spread).

        mean:            R = mean_m r_m
        min:             R = min_m r_m                  (worst-case optimisation)
        mean_minus_std:  R = mean_m r_m - λ · std_m r_m (uncertainty-weighted optimisation)

    Coste et al. 2023, "Reward model ensembles help mitigate overoptimization". The spread is the
    population standard deviation over members (divisor M, not M - 1), also used by mean_minus_std.
    """
    if rule not in ENSEMBLE_RULES:
        raise ValueError(f"unknown ensemble rule {rule!r}; expected one of {', '.join(ENSEMBLE_RULES)}")
    if scores.dim() != 2:
        raise ValueError(f"expected scores of shape (members, samples), got {tuple(scores.shape)}")
    mean = scores.mean(dim=0)
    spread = scores.std(dim=0, correction=0)
    if rule == "mean":
        return mean, spread
    if rule == "min":
        return scores.min(dim=0).values, spread
    return mean - lam * spread, spread


def length_residual_fit(rewards: Numbers, lengths: Numbers) -> tuple[float, float]:
    """Ordinary least squares fit reward ≈ slope · length + intercept; returns (slope, intercept).

        slope = Σ (l - l̄)(r - r̄) / Σ (l - l̄)²,    intercept = r̄ - slope · l̄

    Raises ValueError when all lengths are equal (the slope is undefined).
    """
    r, length = _pair(rewards, lengths)
    centred = length - length.mean()
    spread = (centred * centred).sum()
    if spread == 0:
        raise ValueError("cannot fit reward against length: all lengths are equal")
    slope = float((centred * (r - r.mean())).sum() / spread)
    return slope, float(r.mean()) - slope * float(length.mean())


def length_residual(rewards: torch.Tensor, lengths: torch.Tensor, slope: float, intercept: float) -> torch.Tensor:
    """The length-normalised reward r - (slope · length + intercept), in the rewards' dtype.

    Fit slope and intercept once with :func:`length_residual_fit` on reference samples, then score
    RL rollouts with the residual, so the policy gains nothing from length alone (Singhal et al.
    2023, "A long way to go: investigating length correlations in RLHF").
    """
    return rewards - (slope * lengths.to(rewards.dtype) + intercept)
