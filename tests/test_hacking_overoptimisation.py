"""Gao et al. 2022 over-optimisation fits: recovery of known α, β from synthetic noisy points, the peak
formulas, degenerate cases, and the moving-mean peak of a noisy curve against a slow reference."""

import math

import pytest
import torch

from alignkit.evaluate.overoptimisation import (
    fit_gao,
    gao_curve,
    gao_peak,
    moving_mean,
    observed_peak,
)


def reference_fit(d, r, form):
    """Normal equations of r ≈ α x - β z, solved by Cramer's rule one sum at a time."""
    points = [(x, y) for x, y in zip(d, r, strict=True) if form == "bon" or x > 0]
    xs = [x for x, _ in points]
    zs = [x * x if form == "bon" else x * math.log(x) for x in xs]
    ys = [y for _, y in points]
    sxx = sum(x * x for x in xs)
    szz = sum(z * z for z in zs)
    sxz = sum(x * z for x, z in zip(xs, zs, strict=True))
    sxy = sum(x * y for x, y in zip(xs, ys, strict=True))
    szy = sum(z * y for z, y in zip(zs, ys, strict=True))
    # [sxx, -sxz; -sxz, szz] [α; β] = [sxy; -szy]
    det = sxx * szz - sxz * sxz
    return (sxy * szz - sxz * szy) / det, (sxz * sxy - sxx * szy) / det


@pytest.mark.parametrize(("form", "alpha", "beta"), [("bon", 1.2, 0.3), ("rl", 0.8, 0.5)])
def test_fit_recovers_exact_parameters(form, alpha, beta):
    d = torch.linspace(0.2, 6.0, 30, dtype=torch.float64)
    fit = fit_gao(d, gao_curve(d, alpha, beta, form), form)
    assert (fit.alpha, fit.beta) == (pytest.approx(alpha, abs=1e-9), pytest.approx(beta, abs=1e-9))
    assert (fit.num_points, fit.num_dropped) == (30, 0)


@pytest.mark.parametrize(("form", "alpha", "beta"), [("bon", 1.2, 0.3), ("rl", 0.8, 0.5)])
def test_fit_recovers_parameters_from_noisy_points(form, alpha, beta):
    gen = torch.Generator().manual_seed(0)
    d = 0.1 + 5.9 * torch.rand(400, generator=gen, dtype=torch.float64)
    reward = gao_curve(d, alpha, beta, form) + 0.05 * torch.randn(400, generator=gen, dtype=torch.float64)
    fit = fit_gao(d, reward, form)
    assert fit.alpha == pytest.approx(alpha, abs=0.03) and fit.beta == pytest.approx(beta, abs=0.02)
    assert (fit.alpha, fit.beta) == pytest.approx(reference_fit(d.tolist(), reward.tolist(), form), abs=1e-8)
    true_peak = gao_peak(alpha, beta, form)
    assert fit.peak_d == pytest.approx(true_peak[0], rel=0.1)
    assert fit.peak_reward == pytest.approx(true_peak[1], rel=0.1)


def test_peak_formulas():
    # best-of-n: R = d(2 - 0.5 d) peaks at d = 2 with R = 2; RL: R = d(1 - log d) peaks at d = 1 with R = 1
    assert gao_peak(2.0, 0.5, "bon") == pytest.approx((2.0, 2.0))
    assert gao_peak(1.0, 1.0, "rl") == pytest.approx((1.0, 1.0))
    assert gao_peak(3.0, 1.0, "rl") == pytest.approx((math.e**2, math.e**2))
    for form, alpha, beta in [("bon", 1.3, 0.4), ("rl", 0.7, 0.9), ("rl", -0.5, 0.2)]:
        peak_d, peak_reward = gao_peak(alpha, beta, form)
        grid = torch.linspace(1e-4, 4 * peak_d, 200_001, dtype=torch.float64)
        values = gao_curve(grid, alpha, beta, form)
        assert float(grid[values.argmax()]) == pytest.approx(peak_d, rel=1e-3)
        assert float(values.max()) == pytest.approx(peak_reward, rel=1e-6)
        assert float(gao_curve([peak_d], alpha, beta, form)[0]) == pytest.approx(peak_reward)


def test_no_peak_in_degenerate_cases():
    assert gao_peak(1.0, 0.0, "bon") is None and gao_peak(1.0, -0.2, "rl") is None  # never turns down
    assert gao_peak(-1.0, 0.5, "bon") is None  # falls from d = 0 on
    assert gao_peak(1000.0, 0.1, "rl") is None  # exp(9999) is beyond float range
    d = torch.tensor([0.5, 1.0, 2.0, 3.0])
    fit = fit_gao(d, 0.7 * d + 0.1 * d * d, "bon")  # still rising faster and faster: β = -0.1
    assert fit.beta == pytest.approx(-0.1) and (fit.peak_d, fit.peak_reward) == (None, None)


def test_rl_form_drops_zero_distance_and_bon_keeps_it():
    d = torch.tensor([0.0, 0.0, 0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    reward = gao_curve(d, 1.0, 0.4, "rl")
    fit = fit_gao(d, reward, "rl")
    assert (fit.num_points, fit.num_dropped) == (4, 2) and fit.alpha == pytest.approx(1.0)
    assert fit_gao(d, gao_curve(d, 1.0, 0.4, "bon"), "bon").num_points == 6
    assert float(gao_curve([0.0], 1.0, 0.4, "rl")[0]) == 0.0


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="two distinct"):
        fit_gao([0.0, 1.0, 1.0], [0.0, 1.0, 1.0], "rl")
    with pytest.raises(ValueError, match=">= 0"):
        fit_gao([-1.0, 1.0, 2.0], [0.0, 1.0, 1.0], "bon")
    with pytest.raises(ValueError, match="unknown form"):
        fit_gao([1.0, 2.0], [0.0, 1.0], "ppo")
    with pytest.raises(ValueError, match="rewards"):
        fit_gao([1.0, 2.0], [0.0], "bon")


def reference_moving_mean(values, window):
    half = window // 2
    out = []
    for i in range(len(values)):
        neighbours = [values[j] for j in range(i - half, i + half + 1) if 0 <= j < len(values)]
        out.append(sum(neighbours) / len(neighbours))
    return out


def test_moving_mean_hand_values_and_reference():
    assert moving_mean([1.0, 2.0, 6.0, 3.0], 3).tolist() == pytest.approx([1.5, 3.0, 11 / 3, 4.5])
    assert moving_mean([4.0, 5.0], 1).tolist() == [4.0, 5.0]
    values = torch.randn(37, generator=torch.Generator().manual_seed(2)).tolist()
    for window in (1, 3, 5, 7, 99):
        assert moving_mean(values, window).tolist() == pytest.approx(reference_moving_mean(values, window))
    with pytest.raises(ValueError, match="odd"):
        moving_mean(values, 4)


def test_observed_peak_smooths_out_a_spike():
    # a lone spike at d = 0.5 beats the raw maximum; after smoothing the broad hump at d = 2 wins
    d = [3.0, 0.5, 1.0, 2.0, 1.5, 2.5, 0.0]
    reward = [0.5, 2.0, 0.0, 1.5, 1.2, 1.3, 0.0]
    raw = observed_peak(d, reward, window=1)
    assert (raw.d, raw.reward, raw.index) == (0.5, 2.0, 1)
    smooth = observed_peak(d, reward, window=3)  # sorted: 0 .5 1 1.5 2 2.5 3 → 0 2 0 1.2 1.5 1.3 .5
    assert (smooth.d, smooth.index) == (2.0, 3) and smooth.reward == pytest.approx(4.0 / 3)


def test_observed_peak_of_a_noisy_gao_curve_is_near_the_true_peak():
    gen = torch.Generator().manual_seed(1)
    d = torch.linspace(0.05, 8.0, 160, dtype=torch.float64)
    reward = gao_curve(d, 1.0, 0.25, "bon") + 0.05 * torch.randn(160, generator=gen, dtype=torch.float64)
    assert observed_peak(d, reward, window=15).d == pytest.approx(2.0, abs=0.4)
