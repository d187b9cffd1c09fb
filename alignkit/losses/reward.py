"""Reward-model losses on pairs of scalar rewards r_c (chosen) and r_r (rejected).

Under the Bradley-Terry model (Bradley & Terry 1952) the probability that the chosen response is
preferred is σ(r_c - r_r), and the reward model is fitted by maximum likelihood:

    L_BT = - log σ(r_c - r_r - m)

with an optional per-pair margin m that asks for a larger gap on clearly better pairs (Llama 2,
Touvron et al. 2023, §3.2.2). Rankings of K responses become all their pairs, and, as in InstructGPT
(Ouyang et al. 2022, §3.5 and appendix C.1), the pairs of one ranking form one batch element: each
is weighted 1 / (number of pairs in its group), so a prompt with many responses does not dominate.

Every function returns per-pair values or sums, never means: the training engine divides by the
number of groups in the whole optimizer step, across micro-batches and processes.
"""

import torch
import torch.nn.functional as F


def bradley_terry_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-pair Bradley-Terry negative log-likelihood, shape (P,).

        L = - log σ(r_c - r_r - m)        (m = 0 without a margin)

    Bradley & Terry 1952; the margin form is Llama 2's (Touvron et al. 2023, eq. 2). ``logsigmoid``
    keeps it finite for any gap: a gap of -1000 gives 1000, not inf.
    """
    diff = chosen - rejected
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff)


def soft_label_loss(chosen: torch.Tensor, rejected: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Per-pair binary cross-entropy of σ(r_c - r_r) against a target probability p, shape (P,).

        d = r_c - r_r
        L = - ( p · log σ(d) + (1 - p) · log σ(-d) )

    p is the probability that the chosen response is better (e.g. the share of annotators who
    preferred it). With p = 1 this is the Bradley-Terry loss; with p = 0.5 it is minimised at d = 0.
    """
    diff = chosen - rejected
    return -(label * F.logsigmoid(diff) + (1.0 - label) * F.logsigmoid(-diff))


def group_weights(group_ids: torch.Tensor) -> torch.Tensor:
    """Per-pair weight 1 / (number of pairs sharing its group id), shape (P,), float.

    InstructGPT (Ouyang et al. 2022, §3.5): the C(K, 2) pairs from one prompt's ranking are one batch
    element, each weighted 1 / C(K, 2), so every group's weights sum to 1. A plain preference pair is
    a group of one (weight 1). With ties the count is the number of pairs kept, not C(K, 2).
    """
    _, inverse, counts = torch.unique(group_ids, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse].to(torch.get_default_dtype())


def reward_centering_penalty(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Per-pair centering penalty (r_c + r_r)², shape (P,); the caller multiplies by its coefficient.

    Eisenstein et al. 2023 ("Helping or herding? Reward model ensembles mitigate but do not eliminate
    reward hacking"): the Bradley-Terry loss only sees differences, so the rewards' offset drifts
    freely. This penalty pushes each pair's mean reward towards zero, keeping scores near zero and
    comparable between models and training runs.
    """
    return (chosen + rejected) ** 2


def pairwise_reward_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    *,
    group_ids: torch.Tensor,
    margin: torch.Tensor | None = None,
    label: torch.Tensor | None = None,
    centering: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The reward-model training loss: a weighted sum over pairs, and weighted sums for metrics.

    For pair i in group g(i), with weight w_i = 1 / |g(i)| and d_i = r_c,i - r_r,i:

        ℓ_i = soft_label_loss(d_i, p_i)          where pair i has a label p_i
            = bradley_terry_loss(d_i, m_i)       otherwise (m_i = 0 without a margin)
        L_sum = Σ_i w_i · ( ℓ_i + λ_c · (r_c,i + r_r,i)² )

    λ_c is ``centering``. ``label`` and ``margin`` are (P,) tensors in which NaN means "none for this
    pair"; a labelled pair ignores its margin. Since each group's weights sum to 1, L_sum is the sum
    over groups of each group's mean pair loss: divide by the number of groups in the global batch.

    The metric sums are weighted the same way, so dividing them by the number of groups gives
    per-group averages: ``accuracy`` = Σ_i w_i · ([d_i > 0] + ½[d_i = 0]) and ``margin`` = Σ_i w_i · d_i (both
    detached).
    """
    if not chosen.shape == rejected.shape == group_ids.shape or chosen.dim() != 1:
        raise ValueError(
            f"chosen, rejected and group_ids must be equal (P,) tensors, got shapes "
            f"{tuple(chosen.shape)}, {tuple(rejected.shape)}, {tuple(group_ids.shape)}"
        )
    if margin is not None:
        margin = torch.nan_to_num(margin, nan=0.0)
    per_pair = bradley_terry_loss(chosen, rejected, margin)
    if label is not None:
        labelled = ~torch.isnan(label)
        # Fill the missing labels before the loss so no NaN reaches the gradient of unused entries.
        soft = soft_label_loss(chosen, rejected, torch.where(labelled, label, torch.ones_like(label)))
        per_pair = torch.where(labelled, soft, per_pair)
    if centering:
        per_pair = per_pair + centering * reward_centering_penalty(chosen, rejected)
    # Weights and sums in at least float32: 1/3 in bfloat16 is off by a part in 300.
    dtype = torch.promote_types(per_pair.dtype, torch.float32)
    weights = group_weights(group_ids).to(device=chosen.device, dtype=dtype)
    diff = (chosen - rejected).detach()
    metrics = {
        "accuracy": (weights * ((diff > 0).to(weights.dtype) + 0.5 * (diff == 0).to(weights.dtype))).sum(),
        "margin": (weights * diff).sum(),
    }
    return (weights * per_pair).sum(), metrics
