"""Preference-optimisation losses that need no reward model: the DPO family, KTO, ORPO and SimPO.

The inputs are per-sequence log-probabilities of the response under the policy π_θ and a frozen
reference π_ref, summed over response tokens (``sequence_logprobs``): pc, pr for the chosen and
rejected responses under the policy, rc, rr under the reference. The pairwise losses (IPO included,
as Azar et al. define it) are functions of the difference of sequence log-ratios

    h = (pc - rc) - (pr - rr) = log π_θ(y_c)/π_ref(y_c) - log π_θ(y_r)/π_ref(y_r)

    DPO   (Rafailov et al. 2023, eq. 7)        L = - log σ(β h)
    cDPO  (Mitchell 2023, "A note on DPO with noisy preferences")
                                               L = - (1 - ε) log σ(β h) - ε log σ(-β h)
    IPO   (Azar et al. 2023, eq. 17)           L = (h - 1/(2β))²
    hinge (SLiC-HF, Zhao et al. 2023, eq. 1)   L = max(0, 1 - β h)

and β(pc - rc), β(pr - rr) are DPO's implicit rewards. KTO (Ethayarajh et al. 2024) scores single
responses marked desirable or not; ORPO (Hong et al. 2024) and SimPO (Meng et al. 2024) use
length-averaged log-probabilities and no reference model.

Every function returns per-example values, shape (P,), never means: the training engine divides by
the number of examples in the whole optimizer step, across micro-batches and processes.
"""

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F


def log_ratio_difference(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
) -> torch.Tensor:
    """h = (pc - rc) - (pr - rr): how much more the policy than the reference prefers chosen over rejected."""
    return (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Sigmoid DPO, L = - log σ(β h), shape (P,) (Rafailov et al. 2023, eq. 7). log 2 when π_θ = π_ref."""
    h = log_ratio_difference(policy_chosen, policy_rejected, reference_chosen, reference_rejected)
    return -F.logsigmoid(beta * h)


def cdpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float,
    label_smoothing: float,
) -> torch.Tensor:
    """Conservative DPO, L = - (1 - ε) log σ(β h) - ε log σ(-β h), shape (P,).

    Mitchell 2023, "A note on DPO with noisy preferences & relationship to IPO": each label is taken
    to be flipped with probability ε (``label_smoothing``, TRL's name). ε = 0 is DPO; for ε < 0.5 the
    loss is minimised at the finite h = log((1 - ε)/ε) / β instead of pushing h to infinity.
    """
    h = log_ratio_difference(policy_chosen, policy_rejected, reference_chosen, reference_rejected)
    return -(1.0 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)


def ipo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Identity preference optimisation, L = (h - 1/(2β))², shape (P,) (Azar et al. 2023, eq. 17).

    "A General Theoretical Paradigm to Understand Learning from Human Preferences": regresses h onto
    the fixed target 1/(2β) (their τ is our β), so it cannot overfit deterministic preferences.
    h is on summed (sequence) log-probabilities, as in the paper, so it is DPO's h and β means the
    same for both: at β = 0.1 the target is 5 nats over the whole reply. TRL instead averages the
    log-probabilities over tokens, which makes the same β a target of 5 nats *per token*.
    """
    h = log_ratio_difference(policy_chosen, policy_rejected, reference_chosen, reference_rejected)
    return (h - 1.0 / (2.0 * beta)) ** 2


def hinge_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """SLiC-HF hinge calibration loss on the log-ratios, L = max(0, 1 - β h), shape (P,).

    Zhao et al. 2023 ("SLiC-HF: Sequence Likelihood Calibration with Human Feedback", eq. 1, margin
    δ = 1/β) with the reference-normalised log-likelihoods used by DPO implementations.
    """
    h = log_ratio_difference(policy_chosen, policy_rejected, reference_chosen, reference_rejected)
    return torch.relu(1.0 - beta * h)


def implicit_rewards(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DPO's implicit rewards β(pc - rc) and β(pr - rr), detached, for logging (Rafailov et al. 2023, eq. 5)."""
    chosen = beta * (policy_chosen - reference_chosen)
    rejected = beta * (policy_rejected - reference_rejected)
    return chosen.detach(), rejected.detach()


PAPER_BETA: dict[str, float] = {
    "dpo": 0.1,  # Rafailov et al. 2023, appendix B (TRL's default too)
    "cdpo": 0.1,  # DPO's β with label smoothing
    "ipo": 0.1,  # Azar et al. 2023 give no τ for language models: DPO's, on the same h; target 5 nats a reply
    "hinge": 0.1,  # SLiC-HF's margin δ = 1/β of 10 nats, on DPO's scale
    "kto": 0.1,  # Ethayarajh et al. 2024
    "orpo": 0.1,  # ORPO has no β; it scales only the logged reward β·mean log π
    "simpo": 2.0,  # Meng et al. 2024 tune β in 2.0-2.5 with γ/β about 0.5
}
"""Each loss's β when the user sets none (``preference.beta: null``)."""

PAIRWISE_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "dpo": dpo_loss,
    "cdpo": cdpo_loss,
    "ipo": ipo_loss,
    "hinge": hinge_loss,
}


def kto_reference_point(log_ratio_sum: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """KTO's reference point z0 = max(0, (1/m) Σ_j [log π_θ(y'_j|x_j) - log π_ref(y'_j|x_j)]), a detached scalar.

    Ethayarajh et al. 2024, §4.1: a biased estimate of KL(π_θ ‖ π_ref) over the batch, from m completions
    y'_j paired with prompts x_j they were not written for (the batch's completions shifted by one).
    ``log_ratio_sum`` is the Σ and ``count`` is m, each summed by the caller over the whole optimizer batch
    (every micro-batch, every process), so z0 does not depend on how the batch is split; 0 when m = 0.
    """
    return (log_ratio_sum / count.clamp(min=1)).clamp(min=0.0).detach()


def kto_loss(
    policy_logps: torch.Tensor,
    reference_logps: torch.Tensor,
    desirable: torch.Tensor,
    kl_estimate: torch.Tensor,
    beta: float,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> torch.Tensor:
    """Kahneman-Tversky optimisation loss per example, shape (P,) (Ethayarajh et al. 2024, eq. 8).

        r  = log π_θ(y|x) - log π_ref(y|x),   z0 = max(0, kl_estimate), no gradient
        L  = λ_D (1 - σ(β (r - z0)))    if y is desirable
           = λ_U (1 - σ(β (z0 - r)))    otherwise

    This is the paper's λ_y - v(x, y) written out. ``desirable`` is a bool (P,) tensor; z0 comes from
    :func:`kto_reference_point`.
    """
    z0 = kl_estimate.detach().clamp(min=0.0)
    r = policy_logps - reference_logps
    good = desirable_weight * (1.0 - torch.sigmoid(beta * (r - z0)))
    bad = undesirable_weight * (1.0 - torch.sigmoid(beta * (z0 - r)))
    return torch.where(desirable, good, bad)


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, accurate everywhere (Mächler 2012, "Accurately computing log(1 - exp(-|a|))").

    log(-expm1(x)) near 0, where exp(x) ≈ 1 would cancel; log1p(-exp(x)) below -log 2. x above -tiny (the
    dtype's smallest normal number, 1.2e-38 in float32), where exp(x) rounds to 1, is taken as -tiny:
    log(tiny) (-87.3 in float32) instead of -inf, without gradient there.
    """
    x = x.clamp(max=-torch.finfo(x.dtype).tiny)
    split = -math.log(2.0)
    # Clamp each branch to its own side so the unused one stays finite and its gradient is not NaN.
    near_zero = torch.log(-torch.expm1(x.clamp(min=split)))
    far = torch.log1p(-torch.exp(x.clamp(max=split)))
    return torch.where(x > split, near_zero, far)


def orpo_loss(
    chosen_avg_logp: torch.Tensor, rejected_avg_logp: torch.Tensor, chosen_nll: torch.Tensor, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Odds-ratio preference optimisation, per example: (L, the odds-ratio term detached), each (P,).

    Hong et al. 2024 ("ORPO: Monolithic Preference Optimization without Reference Model", eqs. 4-7),
    with p(y|x) = exp(mean over response tokens of log π_θ):

        log odds(y) = log p - log(1 - p)
        L_OR = - log σ(log odds(y_c) - log odds(y_r))
        L    = NLL(y_c) + λ L_OR

    ``chosen_nll`` is the chosen response's SFT term as the caller normalises it (the paper averages
    over tokens). log(1 - p) is computed by ``log1mexp``, stable as p → 1; a reply whose mean
    log-probability rounds to 0 (p = 1 in floating point) gets a finite log-odds (87.3 in float32), so
    the term stays finite (≈ 0 when only the chosen reply is certain, log 2 when both are), and so do
    its gradients.
    """
    log_odds_chosen = chosen_avg_logp - log1mexp(chosen_avg_logp)
    log_odds_rejected = rejected_avg_logp - log1mexp(rejected_avg_logp)
    odds_ratio_term = -F.logsigmoid(log_odds_chosen - log_odds_rejected)
    return chosen_nll + lam * odds_ratio_term, odds_ratio_term.detach()


def simpo_loss(
    chosen_avg_logp: torch.Tensor, rejected_avg_logp: torch.Tensor, beta: float, gamma: float
) -> torch.Tensor:
    """Simple preference optimisation, L = - log σ(β avg_c - β avg_r - γ), shape (P,).

    Meng et al. 2024 ("SimPO: Simple Preference Optimization with a Reference-Free Reward", eq. 6):
    the reward is the length-averaged policy log-probability β/|y| log π_θ(y|x), with no reference
    model, and γ is a target reward margin.
    """
    return -F.logsigmoid(beta * (chosen_avg_logp - rejected_avg_logp) - gamma)
