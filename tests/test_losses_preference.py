"""The preference losses against slow, obvious references, hand-computed values, limits and gradient signs."""

import math
from decimal import Decimal

import pytest
import torch

from alignkit.losses.preference import (
    PAIRWISE_LOSSES,
    cdpo_loss,
    dpo_loss,
    hinge_loss,
    implicit_rewards,
    ipo_loss,
    kto_loss,
    kto_reference_point,
    log1mexp,
    orpo_loss,
    simpo_loss,
)
from alignkit.tensors import IGNORE_INDEX, sequence_logprobs

N = 25


def log_sigmoid(x):
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def sigmoid(x):
    return math.exp(log_sigmoid(x))


def random_pairs(seed, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(N, generator=gen, dtype=torch.float64) * scale for _ in range(4)]


def h_of(pc, pr, rc, rr, i):
    return (float(pc[i]) - float(rc[i])) - (float(pr[i]) - float(rr[i]))


REFERENCE_PAIRWISE = {
    "dpo": lambda h, beta: -log_sigmoid(beta * h),
    "cdpo": lambda h, beta, eps=0.2: -(1 - eps) * log_sigmoid(beta * h) - eps * log_sigmoid(-beta * h),
    "ipo": lambda h, beta: (h - 1 / (2 * beta)) ** 2,
    "hinge": lambda h, beta: max(0.0, 1 - beta * h),
}
KNOBS = {"cdpo": {"label_smoothing": 0.2}}


@pytest.mark.parametrize("name", sorted(REFERENCE_PAIRWISE))
def test_pairwise_losses_match_reference(name):
    pc, pr, rc, rr = random_pairs(0)
    got = PAIRWISE_LOSSES[name](pc, pr, rc, rr, 0.3, **KNOBS.get(name, {}))
    assert got.shape == (N,)
    for i in range(N):
        expected = REFERENCE_PAIRWISE[name](h_of(pc, pr, rc, rr, i), 0.3)
        assert math.isclose(float(got[i]), expected, rel_tol=1e-9, abs_tol=1e-12)


def test_pairwise_hand_values():
    # pc - rc = 1.5, pr - rr = -0.5: h = 2; β = 0.5 gives βh = 1
    pc, pr, rc, rr = (torch.tensor([v], dtype=torch.float64) for v in (-1.0, -3.0, -2.5, -2.5))
    assert math.isclose(float(dpo_loss(pc, pr, rc, rr, 0.5)), math.log1p(math.exp(-1.0)), rel_tol=1e-12)
    cdpo = float(cdpo_loss(pc, pr, rc, rr, 0.5, 0.25))
    assert math.isclose(cdpo, 0.75 * math.log1p(math.exp(-1.0)) + 0.25 * math.log1p(math.exp(1.0)), rel_tol=1e-12)
    assert math.isclose(float(ipo_loss(pc, pr, rc, rr, 0.5)), 1.0, rel_tol=1e-12)  # (2 - 1)²
    assert float(hinge_loss(pc, pr, rc, rr, 0.5)) == 0.0  # exactly on the margin
    assert math.isclose(float(hinge_loss(pc, pr, rc, rr, 0.25)), 0.5, rel_tol=1e-12)
    chosen, rejected = implicit_rewards(pc, pr, rc, rr, 0.5)
    assert float(chosen) == 0.75 and float(rejected) == -0.25


def test_pairwise_limits_when_policy_is_reference():
    pc, pr, _, _ = random_pairs(1)
    ln2 = torch.full((N,), math.log(2.0), dtype=torch.float64)
    assert torch.allclose(dpo_loss(pc, pr, pc, pr, 0.1), ln2)
    assert torch.allclose(cdpo_loss(pc, pr, pc, pr, 0.1, 0.3), ln2)
    assert torch.allclose(hinge_loss(pc, pr, pc, pr, 0.1), torch.ones(N, dtype=torch.float64))
    assert torch.allclose(ipo_loss(pc, pr, pc, pr, 0.1), torch.full((N,), 1 / (4 * 0.1**2), dtype=torch.float64))
    rc, rr = random_pairs(2)[:2]
    assert torch.allclose(cdpo_loss(pc, pr, rc, rr, 0.1, 0.0), dpo_loss(pc, pr, rc, rr, 0.1))  # ε = 0 is DPO
    chosen, rejected = implicit_rewards(pc, pr, pc, pr, 0.1)
    assert not chosen.any() and not rejected.any()


def test_dpo_is_finite_for_extreme_margins():
    big = torch.tensor([1000.0, -1000.0])
    zero = torch.zeros(2)
    assert torch.allclose(dpo_loss(big, zero, zero, zero, 1.0), torch.tensor([0.0, 1000.0]))


def pairwise_grads(fn, h, beta, **knobs):
    """d loss / d pc and d loss / d pr at a pair whose log-ratio difference is h."""
    pc = torch.tensor([h - 2.0], requires_grad=True)
    pr = torch.tensor([-3.0], requires_grad=True)
    fn(pc, pr, torch.tensor([-2.0]), torch.tensor([-3.0]), beta, **knobs).sum().backward()
    return float(pc.grad), float(pr.grad)


@pytest.mark.parametrize(
    ("fn", "h", "knobs"),
    [
        (dpo_loss, 3.0, {}),
        (dpo_loss, -3.0, {}),
        (cdpo_loss, 0.5, {"label_smoothing": 0.2}),
        (ipo_loss, 0.4, {}),  # below the target 1/(2β) = 1
        (ipo_loss, -5.0, {}),
        (hinge_loss, 1.5, {}),  # inside the margin βh < 1
    ],
)
def test_pairwise_gradients_raise_chosen_and_lower_rejected(fn, h, knobs):
    d_chosen, d_rejected = pairwise_grads(fn, h, 0.5, **knobs)
    assert d_chosen < 0 < d_rejected
    assert math.isclose(d_chosen, -d_rejected, rel_tol=1e-6)


def test_ipo_and_hinge_stop_pushing_past_their_targets():
    assert pairwise_grads(ipo_loss, 1.5, 0.5)[0] > 0  # above 1/(2β) IPO pulls h back
    assert pairwise_grads(hinge_loss, 2.5, 0.5) == (0.0, 0.0)


def test_kto_matches_reference():
    gen = torch.Generator().manual_seed(3)
    policy, reference = torch.randn(N, generator=gen, dtype=torch.float64) * 3, torch.randn(N, generator=gen) * 3
    desirable = torch.rand(N, generator=gen) > 0.4
    z0 = torch.tensor(0.7, dtype=torch.float64)
    got = kto_loss(policy, reference, desirable, z0, 0.2, desirable_weight=1.5, undesirable_weight=0.8)
    for i in range(N):
        r = float(policy[i]) - float(reference[i])
        weight, value = (1.5, r - 0.7) if desirable[i] else (0.8, 0.7 - r)
        expected = weight * (1 - sigmoid(0.2 * value))
        assert math.isclose(float(got[i]), expected, rel_tol=1e-6)


def test_kto_hand_values_and_clamped_reference_point():
    policy, reference = torch.tensor([-1.0, -1.0]), torch.tensor([-1.0 - math.log(3), -1.0 - math.log(3)])
    desirable = torch.tensor([True, False])
    # r = ln 3, z0 = 0, β = 1: σ(ln 3) = 3/4
    got = kto_loss(policy, reference, desirable, torch.tensor(0.0), 1.0)
    assert torch.allclose(got, torch.tensor([0.25, 0.75]))
    # a negative estimate is clamped to 0
    assert torch.allclose(kto_loss(policy, reference, desirable, torch.tensor(-2.0), 1.0), got)
    # policy = reference and z0 = 0: both halves are λ / 2
    same = kto_loss(policy, policy, desirable, torch.tensor(0.0), 0.1, desirable_weight=2.0)
    assert torch.allclose(same, torch.tensor([1.0, 0.5]))


def test_kto_gradients_and_detached_reference_point():
    policy = torch.tensor([-4.0, -4.0], requires_grad=True)
    z0 = torch.tensor(0.3, requires_grad=True)
    kto_loss(policy, torch.tensor([-5.0, -5.0]), torch.tensor([True, False]), z0, 0.5).sum().backward()
    assert policy.grad[0] < 0 < policy.grad[1]  # desirable pushed up, undesirable down
    assert z0.grad is None


def test_kto_reference_point():
    policy = torch.tensor([-1.0, -2.0, -3.0], requires_grad=True)
    reference = torch.tensor([-2.0, -2.0, -2.5])
    estimate = kto_reference_point((policy - reference).sum(), torch.tensor(3.0))
    assert math.isclose(float(estimate), (1.0 + 0.0 - 0.5) / 3, rel_tol=1e-6)
    assert estimate.shape == () and not estimate.requires_grad
    assert float(kto_reference_point((reference - policy).sum(), torch.tensor(3.0))) == 0.0  # negative mean clamped
    assert float(kto_reference_point(torch.tensor(0.0), torch.tensor(0.0))) == 0.0  # an empty batch


def test_log1mexp_is_accurate_on_both_sides():
    x = torch.tensor([-1e-8, -1e-3, -0.5, -math.log(2.0), -1.0, -30.0], dtype=torch.float64)
    for got, xi in zip(log1mexp(x), x.tolist(), strict=True):
        expected = float((1 - Decimal(xi).exp()).ln())  # 28 significant digits
        assert math.isclose(float(got), expected, rel_tol=1e-12)
    x32 = torch.tensor([-1e-6, -50.0], requires_grad=True)
    log1mexp(x32).sum().backward()
    assert torch.isfinite(x32.grad).all()


def test_orpo_matches_reference():
    gen = torch.Generator().manual_seed(4)
    chosen, rejected = -torch.rand(N, generator=gen) * 3 - 1e-3, -torch.rand(N, generator=gen) * 3 - 1e-3
    nll = torch.rand(N, generator=gen)
    loss, term = orpo_loss(chosen, rejected, nll, 0.1)
    for i in range(N):
        c, r = float(chosen[i]), float(rejected[i])
        log_odds = (c - math.log(1 - math.exp(c))) - (r - math.log(1 - math.exp(r)))
        assert math.isclose(float(term[i]), -log_sigmoid(log_odds), rel_tol=1e-5)
        assert math.isclose(float(loss[i]), float(nll[i]) - 0.1 * log_sigmoid(log_odds), rel_tol=1e-5)


def test_orpo_hand_values_and_gradients():
    # p_c = 3/4: odds 3; p_r = 1/4: odds 1/3; odds ratio 9 → term = log(1 + 1/9) = log(10/9)
    chosen = torch.tensor([math.log(0.75)], requires_grad=True)
    rejected = torch.tensor([math.log(0.25)], requires_grad=True)
    loss, term = orpo_loss(chosen, rejected, torch.tensor([2.0]), 0.5)
    assert math.isclose(float(term), math.log(10 / 9), rel_tol=1e-6)
    assert math.isclose(float(loss.detach()), 2.0 + 0.5 * math.log(10 / 9), rel_tol=1e-6)
    assert not term.requires_grad
    loss.sum().backward()
    assert chosen.grad < 0 < rejected.grad
    _, even = orpo_loss(torch.tensor([-0.7]), torch.tensor([-0.7]), torch.zeros(1), 1.0)
    assert math.isclose(float(even), math.log(2.0), rel_tol=1e-6)


ODDS_REJECTED = math.exp(-1.0) / (1 - math.exp(-1.0))  # p_r = e^-1: log odds -0.5413


@pytest.mark.parametrize(("chosen_value", "chosen_grad"), [
    (-1e-8, -1.0 - 0.5 * ODDS_REJECTED),  # NLL's -1, plus λ dL_OR/dc = -λ σ(-Δ)/(1 - p_c) → -λ odds_r/p_c
    (0.0, -1.0),  # p_c rounds to 1: log(1 - p_c) is held at log(float32 tiny), the term passes no gradient to c
])
def test_orpo_is_finite_when_the_chosen_reply_is_certain(chosen_value, chosen_grad):
    """A mean log-probability of 0 (or within float32 rounding of it) means p_c = 1 and log(1 - p_c) = -inf."""
    chosen = torch.tensor([chosen_value], requires_grad=True)
    rejected = torch.tensor([-1.0], requires_grad=True)
    loss, term = orpo_loss(chosen, rejected, -chosen, 0.5)
    # log odds(y_c) ≥ -c - log(1e-8) = 18.42, so the term is log(1 + e^(-0.54 - 18.42)) < 6e-9
    assert 0.0 <= float(term) < 6e-9
    assert float(loss.detach()) == pytest.approx(-chosen_value, abs=1e-8)
    loss.sum().backward()
    assert float(chosen.grad) == pytest.approx(chosen_grad, rel=1e-5)
    assert 0.0 <= float(rejected.grad) < 1e-8  # λ σ(-Δ) / (1 - p_r) with σ(-Δ) < 6e-9
    both_certain = torch.zeros(1, requires_grad=True)
    loss, term = orpo_loss(both_certain, both_certain, torch.zeros(1), 1.0)
    assert float(term) == pytest.approx(math.log(2.0))  # equal odds: a tie
    loss.sum().backward()
    assert torch.isfinite(both_certain.grad).all()


def test_simpo_matches_reference_hand_values_and_limits():
    gen = torch.Generator().manual_seed(5)
    chosen, rejected = -torch.rand(N, generator=gen) * 3, -torch.rand(N, generator=gen) * 3
    got = simpo_loss(chosen, rejected, 2.0, 0.5)
    for i in range(N):
        expected = -log_sigmoid(2.0 * float(chosen[i]) - 2.0 * float(rejected[i]) - 0.5)
        assert math.isclose(float(got[i]), expected, rel_tol=1e-5)
    assert torch.allclose(simpo_loss(chosen, chosen, 2.0, 0.0), torch.full((N,), math.log(2.0)))
    # β·gap = 2, γ = 2 - ln 3: the argument is ln 3 and σ(ln 3) = 3/4
    value = simpo_loss(torch.tensor([-1.0]), torch.tensor([-2.0]), 2.0, 2.0 - math.log(3.0))
    assert math.isclose(float(value), math.log(4 / 3), rel_tol=1e-6)
    c, r = torch.tensor([-1.0], requires_grad=True), torch.tensor([-1.5], requires_grad=True)
    simpo_loss(c, r, 2.0, 1.0).sum().backward()
    assert c.grad < 0 < r.grad


def reference_sequence_logprobs(logits, labels):
    """Loop over positions: Σ log softmax(logits[b, t])[labels[b, t+1]] over labelled t+1, and the count."""
    sums, counts = [], []
    for b in range(labels.shape[0]):
        total, count = 0.0, 0
        for t in range(labels.shape[1] - 1):
            target = int(labels[b, t + 1])
            if target == IGNORE_INDEX:
                continue
            row = [float(x) for x in logits[b, t]]
            total += row[target] - math.log(sum(math.exp(x) for x in row))
            count += 1
        sums.append(total)
        counts.append(count)
    return sums, counts


def test_sequence_logprobs_matches_reference():
    torch.manual_seed(6)
    logits = torch.randn(4, 9, 13) * 2
    labels = torch.randint(0, 13, (4, 9))
    labels[0, :5] = IGNORE_INDEX  # masked prompt
    labels[1, :3] = IGNORE_INDEX  # prompt and padding
    labels[1, 7:] = IGNORE_INDEX
    labels[3, :] = IGNORE_INDEX  # nothing labelled
    sums, counts = sequence_logprobs(logits, labels)
    means, mean_counts = sequence_logprobs(logits, labels, average=True)
    expected, expected_counts = reference_sequence_logprobs(logits, labels)
    assert counts.tolist() == expected_counts == mean_counts.tolist() == [4, 4, 8, 0]
    for b in range(4):
        assert math.isclose(float(sums[b]), expected[b], rel_tol=1e-5, abs_tol=1e-6)
        assert math.isclose(float(means[b]), expected[b] / max(expected_counts[b], 1), rel_tol=1e-5, abs_tol=1e-6)


def test_sequence_logprobs_hand_values_custom_ignore_and_bfloat16():
    # vocabulary of 2: position 0 gives token 1 p = 3/4, position 1 gives token 0 p = 1/2
    logits = torch.tensor([[[0.0, math.log(3.0)], [5.0, 5.0], [9.0, 0.0]]])
    labels = torch.tensor([[-1, 1, 0]])
    total, count = sequence_logprobs(logits, labels, ignore_index=-1)
    assert int(count) == 2 and math.isclose(float(total), math.log(0.75) + math.log(0.5), rel_tol=1e-6)
    mean, _ = sequence_logprobs(logits, labels, ignore_index=-1, average=True)
    assert math.isclose(float(mean), (math.log(0.75) + math.log(0.5)) / 2, rel_tol=1e-6)
    low, _ = sequence_logprobs(logits.bfloat16(), labels, ignore_index=-1)
    assert low.dtype == torch.float32


def test_sequence_logprobs_gradient_reaches_only_labelled_positions():
    logits = torch.randn(1, 4, 5, requires_grad=True)
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 2, IGNORE_INDEX]])
    sequence_logprobs(logits, labels)[0].sum().backward()
    assert logits.grad[0, 1].abs().sum() > 0
    assert logits.grad[0, [0, 2, 3]].abs().sum() == 0
