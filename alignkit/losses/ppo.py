"""PPO's losses and diagnostics, per token, for policies over response tokens (also GRPO, RLOO, DAPO).

Inputs are padded (B, T) tensors with a (B, T) ``mask``, 1 on the response tokens that carry a loss
and 0 on prompt and padding; every per-token output is 0 where the mask is 0. With the probability
ratio of the sampled token under the current and the rollout policy

    ρ_t = π_θ(y_t) / π_old(y_t) = exp(logp_t - old_logp_t)

    policy   (Schulman et al. 2017, eq. 7)   L_t = -min(ρ_t A_t, clip(ρ_t, 1 - ε, 1 + ε) A_t)
             DAPO (Yu et al. 2025, clip-higher) clips asymmetrically: clip(ρ_t, 1 - ε_low, 1 + ε_high)
    value    (PPO2 / OpenAI baselines, CleanRL) L_t = ½ max((V_t - G_t)², (V_old + clip(V_t - V_old, ±ε_v) - G_t)²)
    approx KL between π_old and π_θ (CleanRL's logged ``approx_kl``): (ρ_t - 1) - log ρ_t
    entropy  H_t = logsumexp(z_t) - Σ_v softmax(z_t)_v z_{t,v}
    explained variance  1 - Var[G - V] / Var[G]

How the per-token losses become one number is the caller's choice, made with :func:`aggregate`. It
returns a sum and a count of units rather than a mean, because the training engine divides the sum
over the whole optimizer step (all micro-batches and processes) by the units of that step.
"""

import torch

from alignkit.tensors import masked_mean

AGGREGATIONS = ("token_mean", "sequence_mean", "constant")


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float,
    clip_eps_high: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped surrogate loss per token, (B, T), and where the clip was active, (B, T) bool.

    L_t = -min(ρ_t A_t, clip(ρ_t, 1 - ε, 1 + ε_high) A_t) (Schulman et al. 2017, eq. 7), with
    ε_high = ``clip_eps_high`` (DAPO's "clip-higher", Yu et al. 2025) defaulting to ε = ``clip_eps``.
    advantages: (B, T), or (B, 1) for one advantage per sequence (GRPO, RLOO), broadcast over tokens.

    The bool tensor marks the valid tokens whose clipped term is the minimum and differs from the
    unclipped one (ρ > 1 + ε_high with A > 0, or ρ < 1 - ε with A < 0): exactly the tokens whose
    gradient the clip set to zero (as TRL and verl count ``clipfrac``; CleanRL's |ρ - 1| > ε also
    counts tokens outside the range on the side that is not clipped).
    """
    high = clip_eps if clip_eps_high is None else clip_eps_high
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + high) * advantages
    m = mask.to(unclipped.dtype)
    loss = -torch.minimum(unclipped, clipped) * m
    return loss, (clipped < unclipped) & mask.bool()


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_eps_value: float | None,
) -> torch.Tensor:
    """Clipped value loss per token, (B, T): ½ max((V - G)², (V_old + clip(V - V_old, -ε, ε) - G)²).

    The pessimistic clipped value objective of PPO2 (OpenAI baselines) as CleanRL writes it, which
    keeps the value head within ε = ``clip_eps_value`` of its rollout-time prediction unless that
    lowers the error. ``clip_eps_value=None`` gives the plain ½ (V - G)².
    """
    unclipped = (values - returns) ** 2
    if clip_eps_value is not None:
        clipped_values = old_values + torch.clamp(values - old_values, -clip_eps_value, clip_eps_value)
        unclipped = torch.maximum(unclipped, (clipped_values - returns) ** 2)
    return 0.5 * unclipped * mask.to(unclipped.dtype)


def approx_kl(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token estimate of KL(π_old ‖ π_θ) on tokens sampled from π_old, (B, T): (ρ - 1) - log ρ.

    Schulman's k3 estimator with r = π_θ / π_old, as CleanRL logs it
    (``approx_kl = ((ratio - 1) - logratio).mean()``); ≥ 0, and 0 when the policy has not moved.
    """
    log_ratio = logp - old_logp
    return (torch.expm1(log_ratio) - log_ratio) * mask.to(log_ratio.dtype)


def entropy_from_logits(logits: torch.Tensor, chunk_size: int = 1024) -> torch.Tensor:
    """Entropy of the softmax of ``logits`` (..., V) along the last axis, shape (...), in at least float32.

    H = logsumexp(z) - Σ_v softmax(z)_v z_v, which needs no log-softmax tensor. Rows are processed
    ``chunk_size`` at a time, so without autograd the extra memory is (chunk_size, V) floats rather
    than a full copy of the logits; under autograd each chunk's softmax is kept for the backward pass.
    """
    flat = logits.reshape(-1, logits.shape[-1])
    dtype = torch.promote_types(logits.dtype, torch.float32)
    pieces = []
    for chunk in flat.split(chunk_size):
        chunk = chunk.to(dtype)
        probs = torch.softmax(chunk, dim=-1)
        pieces.append(torch.logsumexp(chunk, dim=-1) - (probs * chunk).sum(-1))
    entropy = torch.cat(pieces) if pieces else flat.new_zeros(0, dtype=dtype)
    return entropy.reshape(logits.shape[:-1])


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var[G - V] / Var[G] over the valid tokens, a float (CleanRL's diagnostic of the value head).

    1 is a perfect value function, 0 one no better than a constant, < 0 worse than a constant. Uses
    population variances (the ratio does not depend on that choice); NaN when Var[G] = 0.
    """
    values, returns = values.detach().double(), returns.detach().double()
    m = mask.double()

    def var(x: torch.Tensor) -> float:
        return float(masked_mean((x - masked_mean(x, m)) ** 2, m))

    var_returns = var(returns)
    if var_returns == 0.0:
        return float("nan")
    return 1.0 - var(returns - values) / var_returns


def loss_units(mask: torch.Tensor, mode: str, max_len: int | None = None) -> torch.Tensor:
    """The units :func:`aggregate` counts for ``mask`` (B, T) in ``mode``, a scalar float tensor.

    token_mean: valid tokens; sequence_mean: sequences (rows, B); constant: B · ``max_len`` (default
    T). It depends on the mask alone, so a training step can count units before any forward pass.
    """
    if mode not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {mode!r}: expected one of {', '.join(AGGREGATIONS)}")
    if mode == "token_mean":
        return mask.float().sum()
    rows = float(mask.shape[0])
    if mode == "sequence_mean":
        return torch.tensor(rows, device=mask.device)
    return torch.tensor(rows * (mask.shape[1] if max_len is None else max_len), device=mask.device)


def aggregate(
    per_token: torch.Tensor, mask: torch.Tensor, mode: str, max_len: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of a per-token loss (B, T) and its unit count, for ``mode``; the loss is Σ sums / Σ units.

    Divide the summed sums of a whole optimizer step by its summed units (what alignkit's engine
    does) and each mode is exactly its paper's normalisation over the global batch:

    - "token_mean": (Σ_{b,t} l·m, Σ_{b,t} m): every token of the batch weighs the same, so long
      responses count more (DAPO, Yu et al. 2025, "token-level policy gradient loss").
    - "sequence_mean": (Σ_b [Σ_t l·m / Σ_t m], B): each sequence's token mean, then the mean over
      sequences (the original GRPO, Shao et al. 2024, eq. 3); a row with no valid token adds 0 to
      the sum and still counts as a sequence, as in TRL.
    - "constant": (Σ_{b,t} l·m, B · max_len): a constant normaliser independent of response
      lengths (Dr. GRPO, Liu et al. 2025); pass the generation budget (max new tokens) as
      ``max_len``, by default the padded length T.
    """
    units = loss_units(mask, mode, max_len)
    m = mask.to(per_token.dtype)
    total = masked_mean(per_token, m, dim=1).sum() if mode == "sequence_mean" else (per_token * m).sum()
    return total, units
