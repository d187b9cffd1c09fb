"""Online RL against a reward (stage 3 of RLHF): PPO, GRPO and RLOO on the one engine.

:func:`ppo_iteration` is one iteration, top to bottom: the
:class:`~alignkit.rl.collector.RolloutCollector` samples completions of the current policy with the
generation backend, scores them and computes advantages; :class:`RLStep` turns minibatches of those
rows into the clipped surrogate loss (plus the value loss for PPO, the KL term when it is in the loss,
and the PPO-ptx language-modelling term), with the per-token losses averaged as
``rl.loss_aggregation`` says; then the KL controller sets the next β and the backend gets the
updated weights.

Batch sizes: an iteration has ``rl.prompts_per_iteration × rl.samples_per_prompt`` completions;
``train.batch_size`` completions make one optimizer step, ``train.micro_batch_size`` one forward
pass; ``rl.ppo_epochs`` passes over the iteration's completions.
"""

from __future__ import annotations

import itertools
import time

import torch
from torch import nn

from alignkit.config import DataConfig, RLConfig, RLSettings
from alignkit.console import console
from alignkit.data.collate import collate
from alignkit.data.prepare import load_split, tokenize_records
from alignkit.data.tokenize import tokenize_demonstration
from alignkit.errors import ConfigError
from alignkit.losses.ppo import aggregate, approx_kl, loss_units, policy_loss, value_loss
from alignkit.losses.sft import masked_token_nll
from alignkit.models import load_causal_lm
from alignkit.models.reference import DisabledAdapter, FrozenCopy, logprobs_from, unwrapped
from alignkit.models.reward import ensemble_members
from alignkit.models.value import ActorCritic, load_critic, value_head
from alignkit.processes import process_state
from alignkit.rl.collector import RolloutCollector
from alignkit.rl.estimators import ADVANTAGE_ESTIMATORS, advantage_estimator, advantage_name
from alignkit.rl.generation import HFGenerator
from alignkit.rl.kl import kl_estimate
from alignkit.rl.process_rewards import ProcessReward
from alignkit.rl.rewards import build_reward
from alignkit.rl.rollout import collate_rollouts
from alignkit.tensors import masked_mean
from alignkit.train.engine import Engine, RunResult, StepOutput
from alignkit.train.run import load_stage_tokenizer, load_trainable_model, prepare_run_dir


class RLStep:
    """A minibatch of rollout rows → the summed PPO-style loss over its units (tokens, sequences, or
    sequences × max_new_tokens, by ``rl.loss_aggregation``)."""

    evaluate_at_start = True

    def __init__(self, config: RLConfig, pad_token_id: int, ptx_rows: list | None = None):
        self.settings, self.name = config.rl, config.rl.algo
        self.temperature = config.generation.temperature
        self.max_len = config.generation.max_new_tokens
        self.pad_token_id = pad_token_id
        self.ptx_batches = None
        if ptx_rows:
            self.ptx_batches = _cycle_batches(ptx_rows, config.train.micro_batch_size, pad_token_id)

    def collate(self, rows):
        return collate_rollouts(rows, self.pad_token_id)

    def count(self, batch) -> float:
        return float(loss_units(batch["response_mask"], self.settings.loss_aggregation, self.max_len))

    def tokens(self, batch) -> int:
        return int(batch["num_tokens"])

    def loss(self, model, batch) -> StepOutput:
        s, mask = self.settings, batch["response_mask"]
        start = int(batch["logits_from"])
        logits, values = model(batch["input_ids"], batch["attention_mask"], logits_from=start)
        logps = logprobs_from(logits, batch["labels"], start, self.temperature)
        per_token, clipped = policy_loss(logps, batch["old_logps"], batch["advantages"], mask, s.clip_eps,
                                         s.clip_eps_high)
        units = self.count(batch)

        def mean_times_units(x: torch.Tensor) -> torch.Tensor:  # logged as a token mean of the step
            return masked_mean(x.detach().float(), mask) * units

        sums = {"clip_fraction": mean_times_units(clipped), "approx_kl": mean_times_units(
            approx_kl(logps.detach(), batch["old_logps"], mask))}
        if s.kl_penalty == "loss" and bool(batch["kl_coef"].any()):  # β of the iteration that collected each row
            kl = kl_estimate(logps, batch["ref_logps"], s.kl_estimator, mask)
            per_token = per_token + batch["kl_coef"].unsqueeze(1) * kl
            sums["kl_loss"] = mean_times_units(kl)
        total, _ = aggregate(per_token, mask, s.loss_aggregation, self.max_len)
        sums["policy_loss"] = total.detach()
        if values is not None:
            per_token_value = value_loss(values[:, :-1], batch["old_values"], batch["returns"], mask, s.value_clip)
            value_sum, _ = aggregate(per_token_value, mask, s.loss_aggregation, self.max_len)
            total = total + s.vf_coef * value_sum
            sums["value_loss"] = value_sum.detach()
        if self.ptx_batches is not None:
            ptx = self._ptx_loss(model, batch["input_ids"].device)
            total = total + s.ptx_coef * ptx * units
            sums["ptx_loss"] = ptx.detach() * units
        return StepOutput(total, sums)

    def _ptx_loss(self, model, device) -> torch.Tensor:
        """Mean next-token NLL of the next micro-batch of demonstrations (PPO-ptx, Ouyang et al. 2022, eq. 2)."""
        batch = {k: v.to(device) for k, v in next(self.ptx_batches).items()}
        logits, _ = model(batch["input_ids"], batch["attention_mask"], with_values=False)
        nll, count = masked_token_nll(logits, batch["labels"])
        return nll / count.clamp(min=1)

    def exportable(self, model):
        return unwrapped(model).policy


def _cycle_batches(rows: list, size: int, pad_token_id: int):
    """Collated micro-batches of ``rows``, cycling forever (the order is fixed)."""
    return itertools.cycle([collate(rows[i : i + size], pad_token_id) for i in range(0, len(rows), size)])


def check_rl_config(config: RLConfig) -> None:
    """ConfigError for settings that cannot work together (nothing is changed silently)."""
    s, gen, train = config.rl, config.generation, config.train
    _check_advantage(s)
    if gen.temperature == 0 or gen.top_p < 1 or gen.top_k > 0:
        raise ConfigError("generation: RL needs the log-probabilities of the sampling distribution, so sample "
                          "with temperature > 0, top_p 1 and top_k 0 (got temperature "
                          f"{gen.temperature}, top_p {gen.top_p}, top_k {gen.top_k})")
    if s.kl_penalty == "loss" and s.kl_estimator == "k1":
        raise ConfigError("rl.kl_estimator: k1 with rl.kl_penalty: loss regularises nothing (the gradient of "
                          "k1 = log pi/pi_ref over samples of pi is zero in expectation); use rl.kl_estimator: k3 "
                          "(its gradient is that of KL(ref||pi), as in GRPO) or k2 (that of KL(pi||ref)), or "
                          "rl.kl_penalty: reward")
    if train.max_steps is not None or train.epochs != 1:
        raise ConfigError("train.max_steps / train.epochs: RL runs rl.iterations iterations; leave these unset")
    if s.kl_coef_min > s.kl_coef:
        raise ConfigError(f"rl.kl_coef_min ({s.kl_coef_min}) is above rl.kl_coef ({s.kl_coef}), where the adaptive "
                          "controller starts; lower it or raise rl.kl_coef")
    if s.reference == "adapter" and not config.lora.enabled:
        raise ConfigError("rl.reference: 'adapter' disables the LoRA adapters, so it needs lora.enabled: true")
    if config.process_reward.path is not None and not advantage_estimator(s).takes_steps:
        raise ConfigError(f"process_reward.path: the {advantage_name(s)} advantage does not take step rewards; use "
                          "rl.algo: ppo (dense step rewards) or grpo (process supervision)")
    if s.algo == "ppo" and s.critic == "separate" and s.critic_init == "reward" and config.reward.kind != "model":
        raise ConfigError("rl.critic_init: 'reward' starts the critic from the reward model, which needs "
                          "reward.kind: model; use critic_init: policy")


def _check_advantage(s: RLSettings) -> None:
    """ConfigError for an advantage estimator the algo cannot feed, or a setting of another estimator."""
    name, estimator = advantage_name(s), advantage_estimator(s)
    if estimator.grouped and s.samples_per_prompt < 2:
        raise ConfigError(f"rl.samples_per_prompt: {s.algo} compares each completion with the others of its "
                          f"prompt (the {name} advantage), so it needs at least 2, got {s.samples_per_prompt}")
    if estimator.needs_values and s.algo != "ppo":
        raise ConfigError(f"rl.advantage: {name} needs a value model, which only rl.algo: ppo trains "
                          f"(rl.algo is {s.algo!r})")
    if not estimator.needs_values and s.algo == "ppo":
        raise ConfigError(f"rl.advantage: {name} reads no value model, and rl.algo: ppo trains one; use "
                          "rl.algo: grpo or rloo")
    defaults = RLSettings()
    for other, entry in ADVANTAGE_ESTIMATORS.items():
        moved = [key for key in entry.reads if key not in estimator.reads and getattr(s, key) != getattr(defaults, key)]
        if moved:
            raise ConfigError(f"rl.{moved[0]} is {getattr(s, moved[0])!r}, but it acts only with the {other} "
                              f"advantage (rl.advantage is {name!r}); remove it or change rl.advantage")


def run_rl(config: RLConfig, *, resume: bool = False) -> RunResult:
    """Optimise ``config.model`` against ``config.reward`` with ``config.rl.algo``; write the run folder."""
    check_rl_config(config)
    if config.rl.advantage is None:
        console.print(f"rl.advantage: not set, {config.rl.algo}'s estimator {advantage_name(config.rl)}")
    run_dir = prepare_run_dir(config, resume=resume)
    tokenizer = load_stage_tokenizer(config.model)
    train_records, eval_records = load_split(config.data, "prompt", seed=config.train.seed)
    prompts = [record for record, _ in train_records]
    eval_prompts = [record for record, _ in eval_records][: config.rl.eval_prompts]
    device = process_state().device
    policy = load_trainable_model(config.model, config.lora, config.train.seed)
    model = _actor_critic(config, policy)
    switched_off = switch_off_dropout(model)
    if switched_off:
        setting = f"lora.dropout {config.lora.dropout} is not applied; " if config.lora.dropout > 0 else ""
        console.print(f"[yellow]rl: dropout switched off in {len(switched_off)} modules ({setting}e.g. "
                      f"{switched_off[0]}), so that the PPO ratio compares the policy with itself")
    strategy = config.rl.reference
    if strategy == "auto":
        strategy = "adapter" if config.lora.enabled else "copy"
    reference = DisabledAdapter() if strategy == "adapter" else FrozenCopy(load_causal_lm(config.model), device)
    ptx_rows = _ptx_rows(config, tokenizer) if config.rl.ptx_coef > 0 else None
    step = RLStep(config, tokenizer.pad_token_id, ptx_rows)
    reward = build_reward(config.reward, device)
    engine = Engine(model, tokenizer, step, config.train, run_dir)
    generator = HFGenerator(unwrapped(engine.model).policy, tokenizer)
    process = ProcessReward(config.process_reward, tokenizer, device) if config.process_reward.path else None
    collector = RolloutCollector(config, prompts, eval_prompts, tokenizer, reward, reference, generator, run_dir,
                                 process)
    updates = collector.updates_per_iteration(engine.accelerator.num_processes)
    return engine.fit_online(lambda i: ppo_iteration(engine, collector, i, updates), config.rl.iterations, updates,
                             lambda: collector.evaluate(engine.model), collector, resume=resume,
                             merge_lora=config.lora.merge_on_save)


def ppo_iteration(engine: Engine, collector: RolloutCollector, iteration: int,
                  updates: int) -> tuple[dict[str, float], int]:
    """One RL iteration in the order it runs (as the loop of CleanRL's ppo.py); GRPO and RLOO run the
    same iteration with their advantage estimator and no value model. Returns the iteration's metrics
    and the tokens its ``updates`` optimizer steps trained on."""
    began = time.perf_counter()
    # 1. Rollouts, without gradient: sample rl.samples_per_prompt completions of each of this iteration's
    #    prompts with the generation backend; score them (reward source, rl.unfinished); old and reference
    #    log-probs (and values) of every response token; advantages by rl.advantage with this iteration's β.
    rows, metrics = collector.collect(engine.model, iteration)
    collected = time.perf_counter()
    # 2. Updates: rl.ppo_epochs passes over the rows in shuffled minibatches of train.batch_size completions,
    #    one optimizer step of RLStep.loss each (clipped surrogate, value loss, KL term, PPO-ptx).
    update_metrics, tokens = engine.update_epochs(rows, updates, iteration)
    metrics.update(update_metrics, collect_seconds=collected - began, update_seconds=time.perf_counter() - collected)
    # 3. KL control: the next iteration's β from this one's KL per completion (fixed β: unchanged).
    collector.controller.update(metrics["kl"], len(rows) * engine.accelerator.num_processes)
    # 4. Weight sync: the generation backend samples the next iteration from the updated policy.
    collector.generator.sync_weights(unwrapped(engine.model).policy)
    return metrics, tokens


DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def switch_off_dropout(model: nn.Module) -> list[str]:
    """Sets every dropout probability in ``model`` to 0 (dropout modules, e.g. LoRA's, and the
    ``attention_dropout`` of transformers' attention layers); returns the names of those that were on.

    Why: rollouts (old log-probabilities, values) come from a no-gradient pass in eval mode and the
    updates from a training pass; with dropout on in the latter, the ratio π_θ/π_old of the first
    minibatch, before any update, is not 1 but a random factor, and clipping acts on dropout noise.
    Computing the old log-probabilities in train mode instead would not help: they would draw other
    dropout masks than the update's. So RL trains without dropout (as TRL's PPO trainer does), and the
    old log-probabilities are exactly those of the first update's forward pass.
    """
    switched = []
    for name, module in model.named_modules():
        if isinstance(module, DROPOUT) and module.p > 0:
            module.p = 0.0
            switched.append(name)
        if isinstance(getattr(module, "attention_dropout", None), float) and module.attention_dropout > 0:
            module.attention_dropout = 0.0
            switched.append(name)
    return switched


def _actor_critic(config: RLConfig, policy) -> ActorCritic:
    """The policy with the value model PPO asks for (none for GRPO/RLOO)."""
    s = config.rl
    if s.algo != "ppo":
        return ActorCritic(policy)
    if s.critic == "head":
        return ActorCritic(policy, head=value_head(unwrapped(policy).config.hidden_size))
    source = str(ensemble_members(config.reward.path)[0]) if s.critic_init == "reward" else config.model.name
    return ActorCritic(policy, critic=load_critic(source, config.model, config.lora))


def _ptx_rows(config: RLConfig, tokenizer) -> list:
    """Tokenised demonstrations of ``rl.ptx_data`` for PPO-ptx."""
    data = DataConfig(train=config.rl.ptx_data, eval_fraction=0, on_error="skip")
    records, _ = load_split(data, "demonstration", seed=config.train.seed)
    return tokenize_records(records, "ptx", lambda r, where: tokenize_demonstration(
        r, tokenizer, max_length=config.rl.ptx_max_length, location=where), on_error="skip")
