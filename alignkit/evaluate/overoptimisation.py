"""Reward over-optimisation: the gold reward against the distance d = √KL(π ‖ π_ref) the policy travelled.

Gao, Schulman & Hilton 2022, "Scaling laws for reward model overoptimization", found the
gold reward, measured from the initial policy's (so R(0) = 0), follows

    best-of-n:  R_bon(d) = d (α - β d)
    RL:         R_rl(d)  = d (α - β log d)

Both are linear in (α, β), so :func:`fit_gao` solves them by least squares. A fitted peak is where
optimising the proxy further starts to lower the gold reward. :func:`observed_peak` finds the peak of a
measured curve directly, after a centred moving mean smooths its noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from alignkit.tensors import Numbers, float64_vector

GAO_FORMS = ("bon", "rl")


@dataclass(frozen=True)
class GaoFit:
    """Fitted α, β of one form; the peak (d*, R(d*)), None when the curve has no maximum at d > 0;
    the number of points used and of points dropped (d = 0 in the RL form)."""

    form: str
    alpha: float
    beta: float
    peak_d: float | None
    peak_reward: float | None
    num_points: int
    num_dropped: int


def gao_curve(d: Numbers, alpha: float, beta: float, form: str) -> torch.Tensor:
    """R(d) of the form ("bon" or "rl", see the module docstring) at each d >= 0, float64. The RL form
    at d = 0 is its limit, 0."""
    _check_form(form)
    x = float64_vector(d)
    if (x < 0).any():
        raise ValueError("d = √KL must be >= 0")
    if form == "bon":
        return x * (alpha - beta * x)
    return torch.where(x > 0, x * (alpha - beta * torch.log(x.clamp_min(1e-300))), torch.zeros_like(x))


def gao_peak(alpha: float, beta: float, form: str) -> tuple[float, float] | None:
    """(d*, R(d*)) of the fitted curve's maximum over d > 0, or None when it has none.

        best-of-n:  R' = α - 2βd = 0      →  d* = α / (2β),        R(d*) = α² / (4β)
        RL:         R' = α - β(log d + 1)  →  d* = exp(α/β - 1),   R(d*) = β d*

    Both are maxima only for β > 0 (R'' = -2β and -β/d). With β <= 0 the curve never turns down: None.
    Best-of-n with β > 0 and α <= 0 falls from d = 0 on, so it has no maximum at d > 0 either: None.
    RL with exp(α/β - 1) beyond float range: None (the turn is too far out to matter).
    """
    _check_form(form)
    if beta <= 0:
        return None
    if form == "bon":
        if alpha <= 0:
            return None
        return alpha / (2 * beta), alpha * alpha / (4 * beta)
    try:
        peak_d = math.exp(alpha / beta - 1)
    except OverflowError:
        return None
    return peak_d, beta * peak_d


def fit_gao(d: Numbers, reward: Numbers, form: str) -> GaoFit:
    """Least-squares α, β of R(d) = d(α - β d) ("bon") or R(d) = d(α - β log d) ("rl") through the
    points (d_i, reward_i), and the fitted peak (:func:`gao_peak`).

    Minimises Σ_i (reward_i - α x_i + β z_i)² with x = d and z = d² ("bon") or z = d log d ("rl"):
    ordinary least squares on the design matrix [x, -z], with no intercept, because the forms pass
    through R(0) = 0. Pass the gold reward minus the initial policy's, not the raw reward.
    d = √KL(π ‖ π_ref) must be >= 0. In the RL form, d log d at d = 0 is only a limit, so points with
    d = 0 are dropped (counted in ``num_dropped``); in the best-of-n form they are kept. Raises
    ValueError unless at least two distinct d > 0 remain (otherwise α and β are not identified).
    """
    _check_form(form)
    x, y = float64_vector(d), float64_vector(reward)
    if x.numel() != y.numel():
        raise ValueError(f"got {x.numel()} values of d but {y.numel()} rewards")
    if (x < 0).any() or not torch.isfinite(x).all() or not torch.isfinite(y).all():
        raise ValueError("d = √KL must be finite and >= 0, and rewards finite")
    dropped = 0
    if form == "rl":
        keep = x > 0
        dropped = int((~keep).sum())
        x, y = x[keep], y[keep]
    if torch.unique(x[x > 0]).numel() < 2:
        raise ValueError(f"fitting the {form} form needs at least two distinct d > 0")
    z = x * x if form == "bon" else x * torch.log(x)
    design = torch.stack([x, -z], dim=1)
    alpha, beta = torch.linalg.lstsq(design, y.unsqueeze(1), driver="gelsd").solution.squeeze(1).tolist()
    peak = gao_peak(alpha, beta, form)
    return GaoFit(form, alpha, beta, *(peak or (None, None)), num_points=x.numel(), num_dropped=dropped)


def moving_mean(values: Numbers, window: int = 3) -> torch.Tensor:
    """Centred moving mean, float64: out_i = mean(values_j for |j - i| <= window // 2 that exist).

    ``window`` must be odd and >= 1; near the ends the window shrinks to the points there are.
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd number >= 1, got {window}")
    v = float64_vector(values)
    half = window // 2
    sums = torch.nn.functional.pad(v, (1, 0)).cumsum(0)  # sums[k] = v[0] + ... + v[k - 1]
    i = torch.arange(v.numel())
    low, high = (i - half).clamp_min(0), (i + half + 1).clamp_max(v.numel())
    return (sums[high] - sums[low]) / (high - low).double()


@dataclass(frozen=True)
class ObservedPeak:
    """The d at which the smoothed reward is highest, that smoothed reward, and the point's index in
    the input."""

    d: float
    reward: float
    index: int


def observed_peak(d: Numbers, reward: Numbers, window: int = 3) -> ObservedPeak:
    """Peak of a measured (noisy) reward curve: sort the points by d (stable), smooth the rewards with
    :func:`moving_mean` of ``window`` points, and return the point where the smoothed reward is highest
    (the smallest d among equal highs). ``window=1`` is the raw maximum."""
    x, y = float64_vector(d), float64_vector(reward)
    if x.numel() != y.numel() or x.numel() == 0:
        raise ValueError(f"expected non-empty d and reward of equal length, got {x.numel()} and {y.numel()}")
    order = torch.sort(x, stable=True).indices
    smoothed = moving_mean(y[order], window)
    best = int(torch.argmax(smoothed))
    return ObservedPeak(float(x[order[best]]), float(smoothed[best]), int(order[best]))


def _check_form(form: str) -> None:
    if form not in GAO_FORMS:
        raise ValueError(f"unknown form {form!r}: expected one of {', '.join(GAO_FORMS)}")
