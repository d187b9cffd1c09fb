"""KL(π_θ ‖ π_ref) per token from sampled tokens, and the controllers that set its coefficient β.

Tokens are sampled from the policy π_θ, so with the log-ratio log r = log π_ref(y_t) - log π_θ(y_t)
(Schulman 2020, "Approximating KL divergence", http://joschu.net/blog/kl-approx.html):

    k1 = -log r                 unbiased, high variance, negative on many tokens
    k2 = ½ (log r)²             biased, low variance, ≥ 0; its bias is third order in (r - 1)
    k3 = (r - 1) - log r        unbiased (E_π_θ[r] = 1), low variance, ≥ 0 since log r ≤ r - 1

The sum of k1 over a response is the log-ratio of the sequence, the penalty in Ziegler et al. 2019
and InstructGPT; GRPO (Shao et al. 2024, eq. 4) uses k3.

In the reward (a number, no gradient) each estimates KL(π_θ ‖ π_ref). In the loss, differentiated
through log π_θ(y) while the samples y ~ π_θ carry no gradient, what counts is the expected gradient
E_y[∇ k(y)], and it is not that of the quantity estimated:

    k1:  E[∇ log π_θ(y)] = Σ_y ∇π_θ(y) = 0          regularises nothing (refused by the RL config)
    k2:  E[log(π_θ/π_ref) ∇ log π_θ] = ∇ KL(π_θ ‖ π_ref)
    k3:  E[(1 - π_ref/π_θ) ∇ log π_θ] = ∇ KL(π_ref ‖ π_θ)   (GRPO's)

(exact at π_θ = the sampling policy, i.e. the first update on a batch of rollouts).

The coefficient β is fixed or adapted toward a target KL (Ziegler et al. 2019, §2.2):

    e_t = clip(KL_t / KL_target - 1, -0.2, 0.2)
    β_{t+1} = β_t (1 + clip(K_β e_t, -0.2, 0.2)),   K_β = n_steps / horizon

The paper's K_β is 0.1, so its step K_β e_t stays within ±0.02; with K_β = n_steps / horizon above 5
(e.g. 128 completions per update and a horizon of 16) the unclipped factor 1 + K_β e_t turns
negative, and a negative β rewards divergence from the reference. The step is clipped to ±0.2, so β
moves by at most 20 % per update and stays ≥ 0.
"""

import torch

KL_ESTIMATORS = ("k1", "k2", "k3")
MAX_STEP = 0.2  # the adaptive controller's largest relative change of β per update (module docstring)


def kl_estimate(
    logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k1", mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-token estimate of KL(π_θ ‖ π_ref) for tokens sampled from π_θ, same shape as ``logp``.

    logp, ref_logp: log π_θ(y_t) and log π_ref(y_t) of the sampled tokens, e.g. (B, T). ``kind`` is
    "k1", "k2" or "k3" (module docstring). The arithmetic is in at least float32; with ``mask`` the
    estimate is 0 where the mask is 0. No clamping: k3 overflows only when π_ref/π_θ > e^88.
    """
    if kind not in KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {kind!r}: expected one of {', '.join(KL_ESTIMATORS)}")
    dtype = torch.promote_types(torch.promote_types(logp.dtype, ref_logp.dtype), torch.float32)
    log_r = ref_logp.to(dtype) - logp.to(dtype)
    if kind == "k1":
        kl = -log_r
    elif kind == "k2":
        kl = 0.5 * log_r**2
    else:
        kl = torch.expm1(log_r) - log_r  # expm1 keeps r - 1 accurate when r ≈ 1
    return kl if mask is None else kl * mask.to(dtype)


class FixedKLController:
    """A constant KL coefficient β; ``update`` does nothing (the same interface as the adaptive one)."""

    def __init__(self, kl_coef: float):
        if kl_coef < 0:
            raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Returns β unchanged."""
        return self.value


class AdaptiveKLController:
    """Proportional control of β toward a target KL (Ziegler et al. 2019, "Fine-Tuning Language Models
    from Human Preferences", §2.2).

    ``update(current_kl, n_steps)``: e = clip(current_kl / target - 1, -0.2, 0.2) and
    β ← β (1 + clip(e · n_steps / horizon, -0.2, 0.2)). ``current_kl`` is the measured KL per sequence
    (summed over its tokens) and ``n_steps`` how many samples (sequences) it was measured over, as in the
    paper and TRL; ``horizon`` sets how many samples it takes to move β by a factor of about e^0.2.
    The step is clipped as e is, so one update changes β by at most 20 % and β never changes sign:
    unclipped, an update of more than 5 horizons (n_steps / horizon > 5) would make the factor negative.
    With ``floor``, β ← max(β, floor) after each update: while the policy is still near the reference the
    KL stays under target and β would shrink every iteration, leaving almost no penalty for the moment the
    policy starts to move (at 20 % a step, β takes 13 iterations to fall 18-fold and as many to climb back).
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: float, floor: float = 0.0):
        if init_kl_coef < 0:
            raise ValueError(f"init_kl_coef must be >= 0, got {init_kl_coef}")
        if target <= 0 or horizon <= 0:
            raise ValueError(f"target and horizon must be > 0, got target={target}, horizon={horizon}")
        if not 0 <= floor <= init_kl_coef:
            raise ValueError(f"floor must be from 0 to init_kl_coef ({init_kl_coef}), got {floor}")
        self.value = float(init_kl_coef)
        self.target = float(target)
        self.horizon = float(horizon)
        self.floor = float(floor)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Moves β one step toward the target (not below the floor) and returns it."""
        error = min(max(float(current_kl) / self.target - 1.0, -0.2), 0.2)
        step = min(max(error * n_steps / self.horizon, -MAX_STEP), MAX_STEP)
        self.value = max(self.value * (1.0 + step), self.floor)
        return self.value
