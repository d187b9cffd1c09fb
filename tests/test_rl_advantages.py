"""Advantage estimators against slow per-row loops, hand-computed values, limits and layout errors."""

import math

import pytest
import torch

from alignkit.rl.advantages import (
    gae,
    group_advantages,
    per_token_rewards,
    process_group_advantages,
    rloo_advantages,
)
from alignkit.tensors import masked_mean, masked_var, masked_whiten

B, T = 5, 7


def random_batch(seed, lengths=(7, 4, 1, 0, 5), start=(0, 0, 0, 0, 2)):
    """(B, T) rewards and values with garbage on padding, and a mask whose row b is valid on start..start+length."""
    gen = torch.Generator().manual_seed(seed)
    rewards = torch.randn(B, T, generator=gen, dtype=torch.float64)
    values = torch.randn(B, T, generator=gen, dtype=torch.float64)
    mask = torch.zeros(B, T, dtype=torch.bool)
    for b, (s, n) in enumerate(zip(start, lengths, strict=True)):
        mask[b, s : s + n] = True
    return rewards, values, mask


def valid_positions(mask, b):
    return [t for t in range(mask.shape[1]) if mask[b, t]]


def reference_gae(rewards, values, mask, gamma, lam):
    """Per row, over its valid positions only: δ_t = r_t + γ V_{t+1} - V_t, A_t = Σ_l (γλ)^l δ_{t+l}."""
    adv = [[0.0] * mask.shape[1] for _ in range(mask.shape[0])]
    ret = [[0.0] * mask.shape[1] for _ in range(mask.shape[0])]
    for b in range(mask.shape[0]):
        ts = valid_positions(mask, b)
        v = [float(values[b, t]) for t in ts] + [0.0]
        deltas = [float(rewards[b, t]) + gamma * v[i + 1] - v[i] for i, t in enumerate(ts)]
        for i, t in enumerate(ts):
            adv[b][t] = sum((gamma * lam) ** l * deltas[i + l] for l in range(len(ts) - i))  # noqa: E741
            ret[b][t] = adv[b][t] + v[i]
    return adv, ret


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 0.95), (0.9, 0.8), (0.99, 1.0), (0.5, 0.0)])
def test_gae_matches_reference(gamma, lam):
    rewards, values, mask = random_batch(0)
    adv, ret = gae(rewards, values, mask, gamma, lam)
    expected_adv, expected_ret = reference_gae(rewards, values, mask, gamma, lam)
    assert adv.shape == ret.shape == (B, T)
    assert torch.allclose(adv, torch.tensor(expected_adv, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(ret, torch.tensor(expected_ret, dtype=torch.float64), atol=1e-12)
    assert not adv[~mask].any() and not ret[~mask].any()


def test_gae_hand_values():
    rewards = torch.tensor([[1.0, 0.0, 2.0, 9.0]])
    values = torch.tensor([[0.5, 1.0, 1.5, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    # γ = λ = 1: A = reward-to-go - V = [3, 2, 2] - [0.5, 1, 1.5]; returns = reward-to-go
    adv, ret = gae(rewards, values, mask, 1.0, 1.0)
    assert torch.allclose(adv, torch.tensor([[2.5, 1.0, 0.5, 0.0]]))
    assert torch.allclose(ret, torch.tensor([[3.0, 2.0, 2.0, 0.0]]))
    # γ = 0: one-step TD error r_t - V_t
    adv, ret = gae(rewards, values, mask, 0.0, 0.95)
    assert torch.allclose(adv, torch.tensor([[0.5, -1.0, 0.5, 0.0]]))
    assert torch.allclose(ret, torch.tensor([[1.0, 0.0, 2.0, 0.0]]))
    # γ = 0.5, λ = 0: δ = [1 + 0.5 - 0.5, 0 + 0.75 - 1, 2 + 0 - 1.5] (V after the end is 0, not 9)
    adv, _ = gae(rewards, values, mask, 0.5, 0.0)
    assert torch.allclose(adv, torch.tensor([[1.0, -0.25, 0.5, 0.0]]))
    # γ = 0.5, λ = 0.5: A_2 = 0.5, A_1 = -0.25 + 0.25·0.5, A_0 = 1 + 0.25·(-0.125)
    adv, _ = gae(rewards, values, mask, 0.5, 0.5)
    assert torch.allclose(adv, torch.tensor([[1.0 - 0.03125, -0.125, 0.5, 0.0]]))


def test_gae_ignores_what_is_written_on_padding():
    rewards, values, mask = random_batch(1)
    noisy_rewards = torch.where(mask, rewards, torch.full_like(rewards, 1e6))
    noisy_values = torch.where(mask, values, torch.full_like(values, -1e6))
    for got, expected in zip(
        gae(noisy_rewards, noisy_values, mask, 0.9, 0.9), reference_gae(rewards, values, mask, 0.9, 0.9), strict=True
    ):
        assert torch.allclose(got, torch.tensor(expected, dtype=torch.float64), atol=1e-12)


def reference_per_token_rewards(score, kl, mask, beta):
    out = [[0.0] * mask.shape[1] for _ in range(mask.shape[0])]
    for b in range(mask.shape[0]):
        ts = valid_positions(mask, b)
        for t in ts:
            out[b][t] = -beta * float(kl[b, t])
        if ts:
            out[b][ts[-1]] += float(score[b])
    return out


def test_per_token_rewards_matches_reference():
    _, kl, mask = random_batch(2)
    score = torch.randn(B, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    got = per_token_rewards(score, kl, mask, 0.05)
    assert got.shape == (B, T)
    assert torch.allclose(got, torch.tensor(reference_per_token_rewards(score, kl, mask, 0.05), dtype=torch.float64))


def test_per_token_rewards_hand_values():
    kl = torch.tensor([[0.2, -0.4, 1.0, 5.0], [0.1, 0.1, 0.1, 0.1]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    got = per_token_rewards(torch.tensor([3.0, 7.0]), kl, mask, 0.5)
    assert torch.allclose(got, torch.tensor([[-0.1, 0.2, 2.5, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    # β = 0: only the score, at the last valid token
    only_score = per_token_rewards(torch.tensor([3.0, 7.0]), kl, mask, 0.0)
    assert torch.equal(only_score[0], torch.tensor([0.0, 0.0, 3.0, 0.0]))


def test_masked_mean_and_var_match_reference():
    x, _, mask = random_batch(4)
    kept = [float(x[b, t]) for b in range(B) for t in valid_positions(mask, b)]
    n, mean = len(kept), sum(kept) / len(kept)
    population = sum((v - mean) ** 2 for v in kept) / n
    assert math.isclose(float(masked_mean(x, mask)), mean, rel_tol=1e-12)
    assert math.isclose(float(masked_var(x, mask, unbiased=False)), population, rel_tol=1e-12)
    assert math.isclose(float(masked_var(x, mask)), population * n / (n - 1), rel_tol=1e-12)
    rows = masked_mean(x, mask, dim=1)
    for b in range(B):
        ts = valid_positions(mask, b)
        expected = sum(float(x[b, t]) for t in ts) / len(ts) if ts else 0.0
        assert math.isclose(float(rows[b]), expected, rel_tol=1e-12, abs_tol=1e-15)


def test_masked_var_hand_values_and_too_few_elements():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[True, True, True, False]])
    assert float(masked_var(x, mask)) == 1.0  # ((-1)² + 0 + 1²) / 2
    assert math.isclose(float(masked_var(x, mask, unbiased=False)), 2 / 3, rel_tol=1e-6)
    one = torch.tensor([[True, False, False, False]])
    assert float(masked_var(x, one, unbiased=False)) == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        masked_var(x, one)


def test_masked_whiten():
    x, _, mask = random_batch(5)
    x = x * 3 + 2
    kept = [float(x[b, t]) for b in range(B) for t in valid_positions(mask, b)]
    mean = sum(kept) / len(kept)
    std = math.sqrt(sum((v - mean) ** 2 for v in kept) / (len(kept) - 1) + 1e-8)
    centred = [[(float(x[b, t]) - mean) / std if mask[b, t] else 0.0 for t in range(T)] for b in range(B)]
    rescaled = [[v + mean if mask[b, t] else 0.0 for t, v in enumerate(row)] for b, row in enumerate(centred)]
    assert torch.allclose(masked_whiten(x, mask), torch.tensor(centred, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(masked_whiten(x, mask, shift_mean=False), torch.tensor(rescaled, dtype=torch.float64),
                          atol=1e-12)
    # hand values: [1, 2, 3] has mean 2 and unbiased variance 1
    small = masked_whiten(torch.tensor([[1.0, 2.0, 3.0, 50.0]]), torch.tensor([[1, 1, 1, 0]]), eps=0.0)
    assert torch.allclose(small, torch.tensor([[-1.0, 0.0, 1.0, 0.0]]))


def test_group_advantages_hand_values():
    rewards = torch.tensor([1.0, 2.0, 3.0, 4.0])
    sigma = math.sqrt(0.5)  # unbiased std of each pair: sqrt((0.5² + 0.5²) / 1)
    got = group_advantages(rewards, 2, eps=0.0)
    assert torch.allclose(got, torch.tensor([-0.5, 0.5, -0.5, 0.5]) / sigma)
    assert torch.allclose(group_advantages(rewards, 2), torch.tensor([-0.5, 0.5, -0.5, 0.5]) / (sigma + 1e-4))
    # one group of 4: mean 2.5, unbiased std sqrt(5/3)
    assert torch.allclose(group_advantages(rewards, 4, eps=0.0), (rewards - 2.5) / math.sqrt(5 / 3))
    # Dr. GRPO: centred only
    assert torch.allclose(group_advantages(rewards, 2, normalise_std=False), torch.tensor([-0.5, 0.5, -0.5, 0.5]))
    # identical rewards in a group: zero advantages, not NaN
    assert torch.equal(group_advantages(torch.tensor([1.0, 1.0, 0.0, 1.0]), 2)[:2], torch.zeros(2))


def test_group_and_rloo_advantages_match_reference():
    gen = torch.Generator().manual_seed(6)
    rewards = torch.randn(12, generator=gen, dtype=torch.float64)
    for g in (2, 3, 4, 6):
        grpo, rloo = group_advantages(rewards, g, eps=1e-4), rloo_advantages(rewards, g)
        for i in range(12):
            group = [float(r) for r in rewards[i // g * g : i // g * g + g]]
            mean = sum(group) / g
            std = math.sqrt(sum((r - mean) ** 2 for r in group) / (g - 1))
            others = [r for j, r in enumerate(group) if j != i % g]
            assert math.isclose(float(grpo[i]), (group[i % g] - mean) / (std + 1e-4), rel_tol=1e-10)
            assert math.isclose(float(rloo[i]), group[i % g] - sum(others) / len(others), rel_tol=1e-10, abs_tol=1e-12)
            assert math.isclose(float(rloo[i]), g / (g - 1) * (group[i % g] - mean), rel_tol=1e-10, abs_tol=1e-12)


def test_rloo_hand_values():
    # group [1, 2, 6]: baselines (2 + 6)/2, (1 + 6)/2, (1 + 2)/2
    assert torch.allclose(rloo_advantages(torch.tensor([1.0, 2.0, 6.0]), 3), torch.tensor([-3.0, -1.5, 4.5]))
    assert torch.allclose(rloo_advantages(torch.tensor([0.0, 1.0, 5.0, 5.0]), 2), torch.tensor([-1.0, 1.0, 0.0, 0.0]))


@pytest.mark.parametrize("fn", [group_advantages, rloo_advantages])
def test_group_layout_errors(fn):
    with pytest.raises(ValueError, match="do not split into groups of 3"):
        fn(torch.zeros(4), 3)
    with pytest.raises(ValueError, match="at least 2"):
        fn(torch.zeros(4), 1)
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        fn(torch.zeros(2, 2), 2)


def test_step_rewards_add_to_the_dense_rewards_at_their_tokens():
    mask = torch.tensor([[True, True, True, True]])
    steps = torch.tensor([[0.0, 0.5, 0.0, 0.25]])
    rewards = per_token_rewards(torch.tensor([1.0]), torch.full((1, 4), 0.2), mask, 0.5, steps)
    assert rewards[0].tolist() == pytest.approx([-0.1, 0.4, -0.1, 1.15])


def test_process_group_advantages_hand_values():
    # Reply A: steps ending at tokens 1 and 3 (0.9, 0.5); reply B: one step ending at token 2 (0.1), 3 tokens.
    # The group's step rewards 0.9, 0.5, 0.1: mean 0.5, sample std 0.4 → normalised 1, 0 and -1; a token's
    # advantage sums the normalised rewards of the steps that end at or after it.
    rewards = torch.tensor([[0.0, 0.9, 0.0, 0.5], [0.0, 0.0, 0.1, 0.0]])
    ends = torch.tensor([[False, True, False, True], [False, False, True, False]])
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    advantages = process_group_advantages(rewards, ends, mask, group_size=2)
    assert advantages.flatten().tolist() == pytest.approx([1, 1, 0, 0, -1, -1, -1, 0], abs=1e-3)
    # a group with a single step has nothing to compare it with: zero advantages
    lone = process_group_advantages(rewards[:, :2], ends[:, :2], mask[:, :2], group_size=2)
    assert lone.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    with pytest.raises(ValueError, match="same shape"):
        process_group_advantages(rewards, ends[:, :2], mask, group_size=2)


def test_process_group_advantages_match_a_slow_loop():
    gen = torch.Generator().manual_seed(3)
    rewards = torch.rand(6, 5, generator=gen)
    ends = torch.rand(6, 5, generator=gen) < 0.4
    mask = torch.ones(6, 5, dtype=torch.bool)
    got = process_group_advantages(rewards * ends, ends, mask, group_size=3)
    for g in range(2):
        rows = range(3 * g, 3 * g + 3)
        values = [float(rewards[r, t]) for r in rows for t in range(5) if ends[r, t]]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        for r in rows:
            for t in range(5):
                expected = sum((float(rewards[r, u]) - mean) / (std + 1e-4) for u in range(t, 5) if ends[r, u])
                assert float(got[r, t]) == pytest.approx(expected, abs=1e-5)
