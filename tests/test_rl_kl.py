"""KL estimators against their formulas, exact KL on sampled categoricals, and the β controllers by hand."""

import math

import pytest
import torch

from alignkit.rl.kl import AdaptiveKLController, FixedKLController, kl_estimate


def test_estimators_match_formulas_elementwise():
    gen = torch.Generator().manual_seed(0)
    logp = -torch.rand(3, 6, generator=gen, dtype=torch.float64) * 4
    ref = -torch.rand(3, 6, generator=gen, dtype=torch.float64) * 4
    k1, k2, k3 = (kl_estimate(logp, ref, kind) for kind in ("k1", "k2", "k3"))
    for b in range(3):
        for t in range(6):
            log_r = float(ref[b, t]) - float(logp[b, t])
            assert math.isclose(float(k1[b, t]), -log_r, rel_tol=1e-12)
            assert math.isclose(float(k2[b, t]), 0.5 * log_r**2, rel_tol=1e-12)
            assert math.isclose(float(k3[b, t]), math.exp(log_r) - 1 - log_r, rel_tol=1e-9, abs_tol=1e-15)
    assert (k2 >= 0).all() and (k3 >= 0).all()


def test_estimators_hand_values_zero_at_equality_and_mask():
    # π_θ = 1/2, π_ref = 1/4: log r = -ln 2, r = 1/2
    logp, ref = torch.tensor([[math.log(0.5)]]), torch.tensor([[math.log(0.25)]])
    assert math.isclose(float(kl_estimate(logp, ref, "k1")), math.log(2), rel_tol=1e-6)
    assert math.isclose(float(kl_estimate(logp, ref, "k2")), 0.5 * math.log(2) ** 2, rel_tol=1e-6)
    assert math.isclose(float(kl_estimate(logp, ref, "k3")), -0.5 + math.log(2), rel_tol=1e-6)
    same = torch.randn(2, 5)
    for kind in ("k1", "k2", "k3"):
        assert not kl_estimate(same, same, kind).any()
    masked = kl_estimate(torch.zeros(1, 3), torch.full((1, 3), -1.0), "k3", mask=torch.tensor([[1, 1, 0]]))
    assert torch.allclose(masked, torch.tensor([[math.exp(-1), math.exp(-1), 0.0]]))
    assert kl_estimate(logp.bfloat16(), ref.bfloat16(), "k3").dtype == torch.float32


def test_unknown_estimator():
    with pytest.raises(ValueError, match="unknown KL estimator 'k4'"):
        kl_estimate(torch.zeros(1), torch.zeros(1), "k4")


@pytest.mark.parametrize("seed", [0, 1])
def test_k1_and_k3_are_unbiased_and_k2_close_for_near_distributions(seed):
    gen = torch.Generator().manual_seed(seed)
    p = torch.softmax(torch.randn(6, generator=gen, dtype=torch.float64), 0)
    q = torch.softmax(torch.randn(6, generator=gen, dtype=torch.float64), 0)
    exact = float((p * (p.log() - q.log())).sum())
    tokens = torch.multinomial(p, 200_000, replacement=True, generator=gen)
    logp, ref = p.log()[tokens], q.log()[tokens]
    for kind in ("k1", "k3"):
        samples = kl_estimate(logp, ref, kind)
        stderr = float(samples.std()) / math.sqrt(samples.numel())
        assert abs(float(samples.mean()) - exact) < 5 * stderr + 1e-6, kind
    assert (kl_estimate(logp, ref, "k3") >= 0).all()
    # k2 is biased in general but agrees to second order when the distributions are close
    q_near = torch.softmax(p.log() + 0.05 * torch.randn(6, generator=gen, dtype=torch.float64), 0)
    exact_near = float((p * (p.log() - q_near.log())).sum())
    k2 = float(kl_estimate(logp, q_near.log()[tokens], "k2").mean())
    assert abs(k2 - exact_near) < 0.1 * exact_near


def exact_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) = Σ_y p(y) (log p(y) - log q(y)) over every category."""
    return (log_p.exp() * (log_p - log_q)).sum()


@pytest.mark.parametrize("seed", [0, 1])
def test_each_estimator_in_the_loss_follows_the_gradient_of_the_divergence_it_claims(seed):
    """E_{y~π}[k(y)] summed exactly over a categorical π = softmax(logits), the weights π(y) detached
    as sampling leaves them; its gradient against autograd of the exact divergence."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(7, generator=gen, dtype=torch.float64).requires_grad_()
    log_ref = torch.log_softmax(torch.randn(7, generator=gen, dtype=torch.float64), 0)

    def grad_of(loss_of_logp) -> torch.Tensor:
        return torch.autograd.grad(loss_of_logp(torch.log_softmax(logits, 0)), logits)[0]

    def in_the_loss(kind):
        return lambda log_p: (log_p.exp().detach() * kl_estimate(log_p, log_ref, kind)).sum()

    forward_kl = grad_of(lambda log_p: exact_kl(log_p, log_ref))  # ∇ KL(π ‖ π_ref)
    reverse_kl = grad_of(lambda log_p: exact_kl(log_ref, log_p))  # ∇ KL(π_ref ‖ π)
    assert torch.allclose(grad_of(in_the_loss("k2")), forward_kl, rtol=1e-10, atol=1e-12)
    assert torch.allclose(grad_of(in_the_loss("k3")), reverse_kl, rtol=1e-10, atol=1e-12)
    assert torch.allclose(grad_of(in_the_loss("k1")), torch.zeros(7, dtype=torch.float64), atol=1e-12)
    assert forward_kl.abs().max() > 0.05 and (forward_kl - reverse_kl).abs().max() > 0.01  # the checks can tell


def test_gradient_of_k3_pulls_policy_toward_reference():
    logp = torch.tensor([math.log(0.5)], requires_grad=True)
    kl_estimate(logp, torch.tensor([math.log(0.25)]), "k3").sum().backward()
    assert logp.grad > 0  # ∂k3/∂logp = 1 - r > 0 when π_ref < π_θ: descent lowers logp


def test_adaptive_controller_hand_values():
    ctl = AdaptiveKLController(0.2, target=6.0, horizon=10_000)
    # KL 9: e = 9/6 - 1 = 0.5 clipped to 0.2; β = 0.2 (1 + 0.2 · 256 / 10000)
    assert math.isclose(ctl.update(9.0, 256), 0.2 * (1 + 0.2 * 256 / 10_000), rel_tol=1e-12)
    before = ctl.value
    # KL 4.5: e = -0.25 clipped to -0.2
    assert math.isclose(ctl.update(torch.tensor(4.5), 1000), before * (1 - 0.2 * 0.1), rel_tol=1e-6)
    before = ctl.value
    # KL 6.6: e = 0.1, inside the clip
    ctl.update(6.6, 5000)
    assert math.isclose(ctl.value, before * (1 + 0.1 * 0.5), rel_tol=1e-12)
    before = ctl.value
    assert ctl.update(6.0, 10_000) == before  # on target: unchanged


def test_adaptive_controller_stays_positive_when_an_update_spans_many_horizons():
    # 128 completions per update, horizon 16: n/H = 8. Without a clip, 1 + e·n/H = 1 - 0.2·8 < 0.
    low = AdaptiveKLController(0.1, target=1.0, horizon=16)
    # KL 0: e = -1 clipped to -0.2; step e·n/H = -1.6 clipped to -0.2; β = 0.1 · 0.8
    assert math.isclose(low.update(0.0, 128), 0.08, rel_tol=1e-12)
    assert math.isclose(low.update(0.0, 128), 0.064, rel_tol=1e-12)  # 0.08 · 0.8: shrinks, never flips sign
    high = AdaptiveKLController(0.1, target=1.0, horizon=16)
    # KL 3: e = 2 clipped to 0.2; step 1.6 clipped to 0.2; β = 0.1 · 1.2
    assert math.isclose(high.update(3.0, 128), 0.12, rel_tol=1e-12)
    # a step inside the clip is unchanged: e = 0.05 (KL 1.05), n/H = 2: β = 0.12 · 1.1
    assert math.isclose(high.update(1.05, 32), 0.132, rel_tol=1e-12)


def test_adaptive_controller_stops_at_its_floor_and_climbs_from_it():
    ctl = AdaptiveKLController(0.1, target=1.0, horizon=16, floor=0.05)
    # KL 0 over 128 completions: β · 0.8 each update, 0.08, 0.064, then 0.0512, then 0.04096 → held at 0.05
    assert [round(ctl.update(0.0, 128), 6) for _ in range(5)] == [0.08, 0.064, 0.0512, 0.05, 0.05]
    assert math.isclose(ctl.update(3.0, 128), 0.06, rel_tol=1e-12)  # too much KL: 0.05 · 1.2
    with pytest.raises(ValueError, match="floor must be from 0 to init_kl_coef"):
        AdaptiveKLController(0.1, target=1.0, horizon=16, floor=0.2)


def test_adaptive_controller_moves_toward_target_and_validates():
    ctl = AdaptiveKLController(0.1, target=1.0, horizon=100)
    assert ctl.update(2.0, 10) > 0.1  # too much KL: penalise more
    high = ctl.value
    assert ctl.update(0.0, 10) < high  # too little: penalise less
    with pytest.raises(ValueError, match="target and horizon"):
        AdaptiveKLController(0.1, target=0.0, horizon=100)
    with pytest.raises(ValueError, match="init_kl_coef"):
        AdaptiveKLController(-0.1, target=1.0, horizon=100)


def test_fixed_controller():
    ctl = FixedKLController(0.05)
    assert ctl.value == 0.05 and ctl.update(100.0, 512) == 0.05 and ctl.value == 0.05
    with pytest.raises(ValueError, match="kl_coef"):
        FixedKLController(-1.0)
