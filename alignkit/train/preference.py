"""Preference optimisation without a reward model: the DPO family, KTO, ORPO and SimPO.

Two steps share the engine. :class:`PairwiseStep` trains on (chosen, rejected) pairs with any
pairwise objective of :mod:`alignkit.losses.preference`; :class:`KTOStep` trains on replies marked
desirable or undesirable. The reference model π_ref comes from :mod:`alignkit.models.reference`.

Logged per step (means over pairs): the implicit rewards of the chosen and rejected replies, their
margin and the fraction of pairs where the chosen reward is higher (ties count ½), the summed
log-probabilities of both replies and their lengths in tokens. The implicit reward is
β·(log π_θ(y|x) - log π_ref(y|x)) (Rafailov et al. 2023, eq. 5), on summed log-probabilities (IPO's
too); for the reference-free ORPO and SimPO it is SimPO's β·mean log π_θ(y|x). A config without β
gets its loss's default (:data:`~alignkit.losses.preference.PAPER_BETA`), said on the console and
written to the run's config.yaml.

With a reference, nothing is evaluated before training: the policy starts as π_ref, so every
implicit reward and margin is 0, the accuracy ½ (ties) and the loss its value at h = 0 (log 2 for DPO).
"""

from __future__ import annotations

import dataclasses

import torch

from alignkit.config import DPOConfig, LoraConfig, PreferenceConfig
from alignkit.console import console
from alignkit.data.comparisons import drop_identical_pairs
from alignkit.data.preference import collate_kto, collate_pairs, kto_rows, pair_rows
from alignkit.data.prepare import load_split
from alignkit.errors import ConfigError
from alignkit.losses.preference import (
    PAIRWISE_LOSSES,
    PAPER_BETA,
    cdpo_loss,
    kto_loss,
    kto_reference_point,
    orpo_loss,
    simpo_loss,
)
from alignkit.models import load_causal_lm
from alignkit.models.reference import (
    DisabledAdapter,
    FrozenCopy,
    Precomputed,
    Reference,
    model_sequence_logprobs,
    precompute_reference_logps,
    sequence_logps,
    unwrapped,
)
from alignkit.processes import process_state
from alignkit.train.engine import Engine, RowCountedStep, RunResult, StepOutput
from alignkit.train.run import load_stage_tokenizer, load_trainable_model, prepare_run_dir

REFERENCE_FREE = ("orpo", "simpo")  # both on length-averaged log-probabilities


def reference_strategy(preference: PreferenceConfig, lora: LoraConfig) -> str:
    """The reference strategy a config asks for, with ``auto`` resolved; ConfigError for a combination
    that cannot work (a reference for ORPO/SimPO, none for the others, an adapter without LoRA)."""
    loss, asked = preference.loss, preference.reference
    if loss in REFERENCE_FREE:
        if asked not in ("auto", "none"):
            raise ConfigError(f"preference.reference: {loss} uses no reference model; set it to 'none' or "
                              f"'auto', got {asked!r}")
        return "none"
    if asked == "none":
        raise ConfigError(f"preference.reference: {loss} needs a reference model; choose copy, adapter or "
                          "precomputed (or auto), or use loss orpo or simpo")
    if asked == "adapter" and not lora.enabled:
        raise ConfigError("preference.reference: 'adapter' disables the LoRA adapters, so it needs "
                          "lora.enabled: true; use copy or precomputed for full fine-tuning")
    if asked == "auto":
        return "adapter" if lora.enabled else "copy"
    return asked


class PairwiseStep(RowCountedStep):
    """A batch of preference pairs → Σ over pairs of the configured pairwise loss (unit: a pair)."""

    def __init__(self, preference: PreferenceConfig, reference: Reference | None, pad_token_id: int):
        self.name = preference.loss
        self.config, self.reference, self.pad_token_id = preference, reference, pad_token_id
        self.evaluate_at_start = reference is None  # with π_θ = π_ref every margin is 0 and the loss is known

    def collate(self, rows):
        return collate_pairs(rows, self.pad_token_id, share_prompt=self.config.shares_prompt())

    def loss(self, model, batch) -> StepOutput:
        sums, lengths = model_sequence_logprobs(model, batch)
        if self.reference is None:
            policy, reference = sums / lengths.clamp(min=1), None
        else:
            policy, reference = sums, self.reference.logps(model, batch).to(sums.dtype)
        losses, extra = self._objective(policy, reference)
        beta = self.config.beta
        rewards = beta * (policy - reference if reference is not None else policy).detach()
        margin = rewards[0::2] - rewards[1::2]
        sums = sums.detach()
        return StepOutput(losses.sum(), {
            "reward_chosen": rewards[0::2].sum(),
            "reward_rejected": rewards[1::2].sum(),
            "reward_margin": margin.sum(),
            "reward_accuracy": ((margin > 0).float() + 0.5 * (margin == 0).float()).sum(),
            "logp_chosen": sums[0::2].sum(),
            "logp_rejected": sums[1::2].sum(),
            "length_chosen": lengths[0::2].sum(),
            "length_rejected": lengths[1::2].sum(),
            **extra,
        })

    def _objective(self, policy, reference):
        """Per-pair losses, shape (P,), and extra summed metrics of the configured variant."""
        p = self.config
        chosen, rejected = policy[0::2], policy[1::2]
        if p.loss == "simpo":
            return simpo_loss(chosen, rejected, p.beta, p.simpo_gamma), {}
        if p.loss == "orpo":  # the SFT term is the chosen reply's mean token NLL, as in the paper
            losses, odds_ratio = orpo_loss(chosen, rejected, -chosen, p.orpo_lambda)
            return losses, {"odds_ratio_loss": odds_ratio.sum(), "nll_chosen": -chosen.detach().sum()}
        ref_chosen, ref_rejected = reference[0::2], reference[1::2]
        if p.loss == "cdpo":
            return cdpo_loss(chosen, rejected, ref_chosen, ref_rejected, p.beta, p.label_smoothing), {}
        return PAIRWISE_LOSSES[p.loss](chosen, rejected, ref_chosen, ref_rejected, p.beta), {}

    def exportable(self, model):
        return model


class KTOStep(RowCountedStep):
    """A batch of KTO rows → Σ over rows of the mean KTO loss of the row's replies (unit: a row, i.e.
    a pair when trained on pairs, a reply when trained on unpaired data).

    The reference point z0 = max(0, mean log π_θ/π_ref of the mismatched sequences) is estimated once
    over the whole optimizer batch, every micro-batch of every process (over the whole evaluation set
    when evaluating), before the first loss (Ethayarajh et al. 2024, §4.1): so it does not depend on how
    the batch is split. The mismatched passes run without gradient, as z0 is a constant in the loss.
    On pairs, the implicit-reward margin and accuracy of chosen over rejected are logged as for DPO.
    """

    name = "kto"
    evaluate_at_start = False  # π_θ = π_ref: every reward and z0 are 0, each loss is λ/2

    def __init__(self, preference: PreferenceConfig, reference: Reference, pad_token_id: int, paired: bool):
        self.config, self.reference, self.pad_token_id, self.paired = preference, reference, pad_token_id, paired
        self.z0: torch.Tensor | None = None

    def collate(self, rows):
        return collate_kto(rows, self.pad_token_id)

    @torch.no_grad()
    def begin(self, model, batches) -> None:
        """z0 of the global batch: the mismatched log-ratios summed and counted over this process's
        micro-batches, then over all processes (when torch.distributed is initialised)."""
        totals = torch.zeros(2, device=unwrapped(model).device)
        for batch in batches:
            policy = sequence_logps(unwrapped(model), batch, "mismatched_")
            reference = self.reference.logps(model, batch, "mismatched_").to(policy.dtype)
            totals[0] += (policy - reference).sum()
            totals[1] += len(policy)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(totals)
        self.z0 = kto_reference_point(totals[0], totals[1])

    def loss(self, model, batch) -> StepOutput:
        p = self.config
        if self.z0 is None:
            raise RuntimeError("KTOStep.begin must estimate z0 over the batch before the first loss")
        policy, _ = model_sequence_logprobs(model, batch)
        reference = self.reference.logps(model, batch).to(policy.dtype)
        z0 = self.z0
        losses = kto_loss(policy, reference, batch["desirable"], z0, p.beta,
                          p.kto_desirable_weight, p.kto_undesirable_weight)
        rows, num_rows = batch["row_ids"], int(batch["num_rows"])
        replies_per_row = torch.zeros(num_rows, device=losses.device).index_add(0, rows, torch.ones_like(losses))
        row_losses = torch.zeros(num_rows, device=losses.device).index_add(0, rows, losses) / replies_per_row
        rewards = p.beta * (policy - reference).detach()
        sums = {"kl": z0 * num_rows, "logp": policy.detach().sum()}
        if self.paired:
            margin = rewards[batch["desirable"]] - rewards[~batch["desirable"]]
            sums["reward_margin"] = margin.sum()
            sums["reward_accuracy"] = ((margin > 0).float() + 0.5 * (margin == 0).float()).sum()
        return StepOutput(row_losses.sum(), sums)

    def exportable(self, model):
        return model


def with_paper_beta(preference: PreferenceConfig) -> PreferenceConfig:
    """``preference`` with β set to its loss's default when the user gave none; a given β is kept."""
    if preference.beta is not None:
        return preference
    return dataclasses.replace(preference, beta=PAPER_BETA[preference.loss])


def resolved_dpo_config(config: DPOConfig) -> DPOConfig:
    """``config`` as a run uses it and writes it to config.yaml: β set (:func:`with_paper_beta`)."""
    return dataclasses.replace(config, preference=with_paper_beta(config.preference))


def run_dpo(config: DPOConfig, *, resume: bool = False) -> RunResult:
    """Optimise ``config.model`` on preference data with ``config.preference.loss``; write the run folder."""
    if config.preference.beta is None:
        config = resolved_dpo_config(config)
        console.print(f"preference.beta: not set, {config.preference.loss}'s default {config.preference.beta}")
    pref = config.preference
    strategy = reference_strategy(pref, config.lora)
    if pref.data_format == "unpaired" and pref.loss != "kto":
        raise ConfigError(f"preference.data_format: 'unpaired' data trains only with loss kto, not {pref.loss!r}")
    run_dir = prepare_run_dir(config, resume=resume)
    tokenizer = load_stage_tokenizer(config.model)
    kind = "unpaired" if pref.data_format == "unpaired" else "preference"
    train_records, eval_records = load_split(config.data, kind, seed=config.train.seed)
    to_rows = kto_rows if pref.loss == "kto" else pair_rows

    def prepare(records, label):
        if kind == "preference":
            records = drop_identical_pairs(records, label)
        return to_rows(records, tokenizer, config.data.max_length, label=label, on_error=config.data.on_error)

    train_rows = prepare(train_records, "train")
    eval_rows = prepare(eval_records, "eval") if eval_records else []
    model = load_trainable_model(config.model, config.lora, config.train.seed)
    reference = _build_reference(strategy, config, model, tokenizer.pad_token_id, {"train": train_rows,
                                                                                  "eval": eval_rows})
    if pref.loss == "kto":
        step = KTOStep(pref, reference, tokenizer.pad_token_id, paired=kind == "preference")
    else:
        step = PairwiseStep(pref, reference, tokenizer.pad_token_id)
    engine = Engine(model, tokenizer, step, config.train, run_dir)
    return engine.fit(train_rows, eval_rows, resume=resume, merge_lora=config.lora.merge_on_save)


def _build_reference(strategy: str, config: DPOConfig, policy, pad_token_id: int, splits: dict) -> Reference | None:
    device = process_state().device
    if strategy == "none":
        return None
    if strategy == "adapter":
        return DisabledAdapter()
    if strategy == "copy":
        return FrozenCopy(load_causal_lm(config.model), device)
    console.print("reference: computing log-probabilities of the starting policy once (cached)")
    precompute_reference_logps(policy.to(device), splits, pad_token_id, batch_size=2 * config.train.micro_batch_size,
                               device=device, cache_dir=config.output_dir, model_name=config.model.name)
    return Precomputed()
