"""PPO losses and diagnostics against slow per-token loops, hand values, gradient signs and aggregation modes."""

import math

import pytest
import torch

from alignkit.losses.ppo import (
    aggregate,
    approx_kl,
    entropy_from_logits,
    explained_variance,
    loss_units,
    policy_loss,
    value_loss,
)

B, T = 4, 6


def random_inputs(seed):
    gen = torch.Generator().manual_seed(seed)
    logp = -torch.rand(B, T, generator=gen, dtype=torch.float64) * 3
    old_logp = logp + torch.randn(B, T, generator=gen, dtype=torch.float64) * 0.3  # ratios in and out of the clip
    advantages = torch.randn(B, T, generator=gen, dtype=torch.float64)
    mask = torch.zeros(B, T, dtype=torch.bool)
    for b, n in enumerate((6, 3, 1, 0)):
        mask[b, :n] = True
    return logp, old_logp, advantages, mask


def cells(mask):
    return [(b, t) for b in range(mask.shape[0]) for t in range(mask.shape[1])]


@pytest.mark.parametrize(("eps", "eps_high"), [(0.2, None), (0.2, 0.28), (0.1, 0.3)])
def test_policy_loss_matches_reference(eps, eps_high):
    logp, old_logp, adv, mask = random_inputs(0)
    loss, clipped = policy_loss(logp, old_logp, adv, mask, eps, clip_eps_high=eps_high)
    high = eps if eps_high is None else eps_high
    assert loss.shape == clipped.shape == (B, T) and clipped.dtype == torch.bool
    assert clipped.any()  # the inputs do reach the clip
    for b, t in cells(mask):
        if not mask[b, t]:
            assert float(loss[b, t]) == 0.0 and not clipped[b, t]
            continue
        ratio, a = math.exp(float(logp[b, t]) - float(old_logp[b, t])), float(adv[b, t])
        clipped_ratio = min(max(ratio, 1 - eps), 1 + high)
        assert math.isclose(float(loss[b, t]), -min(ratio * a, clipped_ratio * a), rel_tol=1e-12)
        assert bool(clipped[b, t]) == ((ratio > 1 + high and a > 0) or (ratio < 1 - eps and a < 0))


def test_policy_loss_hand_values_and_sequence_advantages():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 1.5, 0.5, 1.1]]))  # old π = 1, so ρ = exp(logp)
    adv = torch.tensor([[2.0, -2.0, -1.0, 3.0]])
    loss, clipped = policy_loss(logp, old, adv, torch.ones(1, 4), 0.2)
    # ρ=1.5, A=2: min(3, 2.4) = 2.4; ρ=1.5, A=-2: min(-3, -2.4) = -3; ρ=0.5, A=-1: min(-0.5, -0.8); ρ=1.1 inside
    assert torch.allclose(loss, torch.tensor([[-2.4, 3.0, 0.8, -3.3]]))
    assert clipped.tolist() == [[True, False, True, False]]
    # DAPO clip-higher: 1 + 0.6 no longer clips ρ = 1.5
    loss_high, clipped_high = policy_loss(logp, old, adv, torch.ones(1, 4), 0.2, clip_eps_high=0.6)
    assert torch.allclose(loss_high[0, 0], torch.tensor(-3.0)) and not clipped_high[0, 0]
    # one advantage per sequence, (B, 1), is broadcast over its tokens
    per_seq, _ = policy_loss(logp, old, torch.tensor([[2.0]]), torch.tensor([[1, 1, 1, 0]]), 0.2)
    assert torch.allclose(per_seq, torch.tensor([[-2.4, -2.4, -1.0, 0.0]]))
    # at ρ = 1 the loss is -A whatever ε
    same, none = policy_loss(old, old, adv, torch.ones(1, 4), 0.2)
    assert torch.equal(same, -adv) and not none.any()


def policy_grad(ratio, advantage, eps=0.2):
    logp = torch.tensor([[math.log(ratio)]], requires_grad=True)
    loss, _ = policy_loss(logp, torch.zeros(1, 1), torch.tensor([[advantage]]), torch.ones(1, 1), eps)
    loss.sum().backward()
    return float(logp.grad)


def test_policy_loss_gradient_directions():
    assert policy_grad(1.05, 1.0) < 0  # descent raises logp of a good token inside the clip
    assert policy_grad(0.95, -1.0) > 0  # and lowers a bad one
    assert policy_grad(1.3, 1.0) == 0.0  # clipped above: no further push up
    assert policy_grad(0.7, -1.0) == 0.0  # clipped below: no further push down
    assert policy_grad(0.7, 1.0) < 0  # below the range with A > 0 the unclipped term still pulls back up
    assert policy_grad(1.3, -1.0) > 0  # above with A < 0 likewise pulls down
    assert math.isclose(policy_grad(1.1, 2.0), -2.2, rel_tol=1e-6)  # ∂(-ρA)/∂logp = -ρA


def test_padding_never_contributes_to_gradients():
    logp, old_logp, adv, mask = random_inputs(1)
    logp = logp.clone().requires_grad_(True)
    values = torch.randn(B, T, dtype=torch.float64, requires_grad=True)
    garbage = torch.where(mask, adv, torch.full_like(adv, 1e6))
    total = policy_loss(logp, old_logp, garbage, mask, 0.2)[0].sum()
    total = total + value_loss(values, values.detach(), garbage, mask, 0.2).sum()
    total = total + approx_kl(logp, old_logp, mask).sum()
    total.backward()
    assert not logp.grad[~mask].any() and not values.grad[~mask].any()
    assert logp.grad[mask].abs().sum() > 0 and values.grad[mask].abs().sum() > 0


@pytest.mark.parametrize("eps", [0.2, None])
def test_value_loss_matches_reference(eps):
    gen = torch.Generator().manual_seed(2)
    values, old_values, returns = (torch.randn(B, T, generator=gen, dtype=torch.float64) for _ in range(3))
    _, _, _, mask = random_inputs(2)
    got = value_loss(values, old_values, returns, mask, eps)
    for b, t in cells(mask):
        v, v_old, g = float(values[b, t]), float(old_values[b, t]), float(returns[b, t])
        expected = 0.5 * (v - g) ** 2
        if eps is not None:
            expected = max(expected, 0.5 * (v_old + min(max(v - v_old, -eps), eps) - g) ** 2)
        assert math.isclose(float(got[b, t]), expected if mask[b, t] else 0.0, rel_tol=1e-12)


def test_value_loss_hand_values_and_gradients():
    old, ret = torch.zeros(1, 3), torch.tensor([[1.0, 1.0, -1.0]])
    values = torch.tensor([[0.5, 2.0, 0.1]], requires_grad=True)
    loss = value_loss(values, old, ret, torch.ones(1, 3), 0.2)
    # V=0.5: clipped to 0.2, error 0.8 beats 0.5 → ½·0.64; V=2: clipped 0.2 error 0.8 < 1 → ½·1; V=0.1 inside
    assert torch.allclose(loss, torch.tensor([[0.32, 0.5, 0.605]]))
    loss.sum().backward()
    # the clipped branch wins for V = 0.5 and holds it: no gradient; the others move V toward G
    assert values.grad.tolist()[0][0] == 0.0
    assert math.isclose(values.grad.tolist()[0][1], 1.0, rel_tol=1e-6)
    assert math.isclose(values.grad.tolist()[0][2], 1.1, rel_tol=1e-6)


def test_approx_kl():
    logp, old_logp, _, mask = random_inputs(3)
    got = approx_kl(logp, old_logp, mask)
    for b, t in cells(mask):
        log_ratio = float(logp[b, t]) - float(old_logp[b, t])
        expected = (math.exp(log_ratio) - 1) - log_ratio if mask[b, t] else 0.0
        assert math.isclose(float(got[b, t]), expected, rel_tol=1e-9, abs_tol=1e-15)
    assert (got >= 0).all()
    assert not approx_kl(logp, logp, mask).any()
    # ρ = 2: 1 - ln 2
    assert math.isclose(
        float(approx_kl(torch.tensor([math.log(2.0)]), torch.zeros(1), torch.ones(1))), 1 - math.log(2), rel_tol=1e-6
    )


def test_entropy_matches_reference_and_chunks():
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 5, 11, generator=gen, dtype=torch.float64) * 3
    got = entropy_from_logits(logits)
    assert got.shape == (3, 5)
    for b in range(3):
        for t in range(5):
            z = [float(v) for v in logits[b, t]]
            top = max(z)
            weights = [math.exp(v - top) for v in z]
            total = sum(weights)
            expected = -sum(w / total * math.log(w / total) for w in weights)
            assert math.isclose(float(got[b, t]), expected, rel_tol=1e-9)
    assert torch.allclose(entropy_from_logits(logits, chunk_size=4), got)
    # uniform over V: ln V; one-hot-like: ~0; bfloat16 in, float32 out
    assert math.isclose(float(entropy_from_logits(torch.zeros(1, 1, 8))), math.log(8), rel_tol=1e-6)
    assert float(entropy_from_logits(torch.tensor([[[100.0, 0.0, 0.0]]]))) < 1e-20
    assert entropy_from_logits(logits.bfloat16()).dtype == torch.float32


def test_explained_variance():
    returns = torch.tensor([[1.0, 2.0, 3.0, 50.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    assert explained_variance(returns, returns, mask) == 1.0
    assert explained_variance(torch.full_like(returns, 2.0), returns, mask) == 0.0
    # V = [0, 1, 2]: residual [1, 1, 1] has variance 0 → 1
    assert explained_variance(torch.tensor([[0.0, 1.0, 2.0, 0.0]]), returns, mask) == 1.0
    # residual [-1, 0, -2]: population variance 2/3 over Var[G] = 2/3 → 0
    assert math.isclose(explained_variance(torch.tensor([[2.0, 2.0, 5.0, 0.0]]), returns, mask), 0.0, abs_tol=1e-12)
    assert math.isnan(explained_variance(returns, torch.ones(1, 4), mask))
    gen = torch.Generator().manual_seed(5)
    v, g = torch.randn(2, 6, generator=gen), torch.randn(2, 6, generator=gen)
    m = torch.ones(2, 6)
    flat_v, flat_g = v.flatten().tolist(), g.flatten().tolist()

    def pvar(xs):
        mean = sum(xs) / len(xs)
        return sum((x - mean) ** 2 for x in xs) / len(xs)

    expected = 1 - pvar([a - b for a, b in zip(flat_g, flat_v, strict=True)]) / pvar(flat_g)
    assert math.isclose(explained_variance(v, g, m), expected, rel_tol=1e-6)


def test_aggregate_hand_values():
    loss = torch.tensor([[1.0, 2.0, 3.0, 9.0], [4.0, 9.0, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    total, units = aggregate(loss, mask, "token_mean")
    assert (float(total), float(units)) == (10.0, 4.0)  # DAPO: 10 / 4
    total, units = aggregate(loss, mask, "sequence_mean")
    assert (float(total), float(units)) == (6.0, 2.0)  # GRPO: (2 + 4) / 2
    total, units = aggregate(loss, mask, "constant")
    assert (float(total), float(units)) == (10.0, 8.0)  # Dr. GRPO: 10 / (2 · 4)
    assert float(aggregate(loss, mask, "constant", max_len=16)[1]) == 32.0
    for mode in ("token_mean", "sequence_mean", "constant"):
        assert float(loss_units(mask, mode)) == float(aggregate(loss, mask, mode)[1])
    with pytest.raises(ValueError, match="unknown aggregation 'mean'"):
        aggregate(loss, mask, "mean")


def test_aggregate_matches_reference_and_splits_over_micro_batches():
    gen = torch.Generator().manual_seed(6)
    loss = torch.rand(B, T, generator=gen, dtype=torch.float64)
    _, _, _, mask = random_inputs(6)
    tokens = [(b, t) for b, t in cells(mask) if mask[b, t]]
    rows = [[float(loss[b, t]) for t in range(T) if mask[b, t]] for b in range(B)]
    expected = {
        "token_mean": sum(float(loss[b, t]) for b, t in tokens) / len(tokens),
        "sequence_mean": sum(sum(r) / len(r) if r else 0.0 for r in rows) / B,
        "constant": sum(float(loss[b, t]) for b, t in tokens) / (B * T),
    }
    for mode, value in expected.items():
        total, units = aggregate(loss, mask, mode)
        assert math.isclose(float(total / units), value, rel_tol=1e-12)
        # two micro-batches: Σ sums / Σ units is the same number (the engine's normalisation)
        halves = [aggregate(loss[i : i + 2], mask[i : i + 2], mode, max_len=T) for i in (0, 2)]
        assert math.isclose(sum(float(s) for s, _ in halves) / sum(float(u) for _, u in halves), value, rel_tol=1e-12)
