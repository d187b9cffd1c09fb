"""One RL iteration's data: sample completions of the current policy with the generation backend,
score them, and turn them into :class:`~alignkit.rl.rollout.RolloutRow` rows with old
log-probabilities, reference log-probabilities, values, advantages and the iteration's KL
coefficient. Everything here runs without gradient; :func:`~alignkit.train.rl.ppo_iteration` shows
where collection stands in an iteration.

Prompts are drawn in a fixed order: the training prompts shuffled with ``train.seed + epoch``,
iteration i taking the next ``prompts_per_iteration`` of them (process r of n its r-th share), and
sampling is seeded with ``generation.seed + i`` (times the process count, plus r), so a resumed run
collects exactly what an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from alignkit.config import RLConfig
from alignkit.data.records import Prompt
from alignkit.errors import ConfigError
from alignkit.losses.ppo import entropy_from_logits, explained_variance
from alignkit.models.reference import DisabledAdapter, FrozenCopy, logprobs_from, unwrapped
from alignkit.processes import process_state
from alignkit.rl.estimators import StepRewards
from alignkit.rl.generation import Completion, GenerationBackend, prompt_token_rows
from alignkit.rl.kl import AdaptiveKLController, FixedKLController, kl_estimate
from alignkit.rl.process_rewards import ProcessReward
from alignkit.rl.rewards import RewardSource, build_monitors
from alignkit.rl.rollout import RolloutRow, collate_rollouts, compute_advantages, pad_responses, response_frame
from alignkit.tensors import pearson

SAMPLES_FILE = "samples.jsonl"
SAMPLES_PER_LOG = 4


@dataclasses.dataclass
class Scored:
    """Completions of one batch of prompts with their rewards and no-gradient forward passes
    (response frame: (N, R_max) tensors and their mask)."""

    prompts: list[Prompt]
    rows: list[list[int]]
    completions: list[Completion]
    scores: torch.Tensor
    raw_scores: torch.Tensor
    monitors: dict[str, torch.Tensor]
    old_logps: torch.Tensor
    ref_logps: torch.Tensor
    values: torch.Tensor | None
    entropy: torch.Tensor
    mask: torch.Tensor
    steps: StepRewards | None = None


class RolloutCollector:
    """The rollouts of PPO, GRPO and RLOO, sampled with ``generator``; the KL controller whose β each
    iteration's rows carry (checkpointed with the model as this object's state). With ``process``, step
    rewards of a process reward model join the outcome ``reward`` (weighted by process_reward.outcome_weight)."""

    def __init__(self, config: RLConfig, prompts: list[Prompt], eval_prompts: list[Prompt], tokenizer,
                 reward: RewardSource, reference: FrozenCopy | DisabledAdapter, generator: GenerationBackend,
                 run_dir: Path, process: ProcessReward | None = None):
        s = config.rl
        self.config, self.settings, self.tokenizer = config, s, tokenizer
        self.reward, self.reference, self.generator, self.run_dir = reward, reference, generator, Path(run_dir)
        self.process = process
        self.prompts, self.eval_prompts = prompts, eval_prompts
        self.monitors = build_monitors(s.monitors, s.monitor_max_length, process_state().device)
        max_prompt = config.generation.max_prompt_length
        self.prompt_rows = prompt_token_rows([p.prompt for p in prompts], tokenizer, max_prompt)
        self.eval_rows = prompt_token_rows([p.prompt for p in eval_prompts], tokenizer, max_prompt)
        if s.kl_target is not None:
            self.controller = AdaptiveKLController(s.kl_coef, s.kl_target, s.kl_horizon, s.kl_coef_min)
        else:
            self.controller = FixedKLController(s.kl_coef)
        self.state = process_state()

    # ------------------------------------------------------------ what an iteration asks of it

    def updates_per_iteration(self, num_processes: int) -> int:
        """Optimizer steps per iteration: rl.ppo_epochs passes over the completions in train.batch_size ones."""
        s, train = self.settings, self.config.train
        completions = s.prompts_per_iteration * s.samples_per_prompt
        if s.prompts_per_iteration % num_processes:
            raise ConfigError(f"rl.prompts_per_iteration ({s.prompts_per_iteration}) must be a multiple of the "
                              f"number of processes ({num_processes})")
        if completions % train.batch_size:
            raise ConfigError(f"train.batch_size ({train.batch_size}) must divide the completions per iteration "
                              f"(rl.prompts_per_iteration x rl.samples_per_prompt = {completions})")
        return s.ppo_epochs * completions // train.batch_size

    def collect(self, model, iteration: int) -> tuple[list[RolloutRow], dict[str, float]]:
        """This process's rows of ``iteration`` (0-based) and the metrics of collecting them (means over
        all processes), from ``model``, the actor-critic being trained."""
        s = self.settings
        began = time.perf_counter()
        prompts, rows = self._prompts_for(iteration)
        seed = self.config.generation.seed + iteration * self.state.num_processes + self.state.process_index
        # Sample rl.samples_per_prompt completions of each prompt with the generation backend, score them (the
        # reward source, then rl.unfinished), and take π_old's and π_ref's log-probs, the values and the
        # entropy of every response token from no-gradient forward passes.
        scored, timing = self._sample_and_score(unwrapped(model), prompts, rows, s.samples_per_prompt, seed)
        # Advantages by rl.advantage with this iteration's β, which each row carries into the loss.
        beta = self.controller.value
        in_loss = torch.tensor([c.finished or s.unfinished != "drop" for c in scored.completions])
        adv = compute_advantages(scored.scores, scored.old_logps, scored.ref_logps, scored.mask, s, beta,
                                 scored.values, in_loss, scored.steps)
        out = []
        for i, completion in enumerate(scored.completions):
            n = completion.num_tokens
            out.append(RolloutRow(
                input_ids=scored.rows[i] + list(completion.token_ids), prompt_length=len(scored.rows[i]),
                old_logps=scored.old_logps[i, :n], ref_logps=scored.ref_logps[i, :n],
                advantages=adv.advantages[i, :n],
                returns=None if adv.returns is None else adv.returns[i, :n],
                old_values=None if scored.values is None else scored.values[i, :n],
                in_loss=bool(in_loss[i]), kl_coef=beta,
            ))
        kl_per_completion = adv.kl.sum(dim=1)
        metrics = {**_score_metrics(scored, kl_per_completion), **timing, "reward_penalised": float(adv.rewards.mean()),
                   "sampler_logprob_gap": _sampler_gap(scored)}
        if scored.values is not None:
            metrics["value_mean"] = float(scored.values[scored.mask].mean())
            metrics["explained_variance"] = explained_variance(scored.values, adv.returns, scored.mask)
        metrics = self._mean_over_processes(metrics)
        metrics["kl_coef"] = beta
        if iteration % s.sample_every == 0:
            self._write_samples(iteration, scored)
        metrics["collect_total_seconds"] = time.perf_counter() - began
        return out, metrics

    @torch.no_grad()
    def evaluate(self, model) -> dict[str, float]:
        """Mean reward, KL to the reference and length of one sampled reply per held-out prompt
        (seeded with ``generation.seed``, so before and after see the same sampling noise)."""
        if not self.eval_prompts:
            return {}
        scored, _ = self._sample_and_score(unwrapped(model), self.eval_prompts, self.eval_rows, 1,
                                           self.config.generation.seed)
        kl = kl_estimate(scored.old_logps, scored.ref_logps, self.settings.kl_estimator, scored.mask).sum(dim=1)
        return {f"eval_{k}": v for k, v in self._mean_over_processes(_score_metrics(scored, kl)).items()}

    def state_dict(self) -> dict:
        return {"kl_coef": self.controller.value}

    def load_state_dict(self, state: dict) -> None:
        self.controller.value = float(state["kl_coef"])

    def _mean_over_processes(self, metrics: dict[str, float]) -> dict[str, float]:
        """Each metric averaged over the processes (every process holds as many completions, so a mean of
        means is the mean over all of them; std and correlations are averaged as they are). All processes
        then log, and adapt β to, the same figures."""
        if self.state.num_processes == 1:
            return metrics
        names = sorted(metrics)
        values = torch.tensor([metrics[name] for name in names], dtype=torch.float64, device=self.state.device)
        torch.distributed.all_reduce(values)
        return dict(zip(names, (values / self.state.num_processes).tolist(), strict=True))

    # ------------------------------------------------------------ sampling and scoring

    def _prompts_for(self, iteration: int) -> tuple[list[Prompt], list[list[int]]]:
        """This process's prompts of ``iteration`` (module docstring) and their token rows."""
        s, n = self.settings, len(self.prompts)
        per_process = s.prompts_per_iteration // self.state.num_processes
        start = iteration * s.prompts_per_iteration + self.state.process_index * per_process
        orders: dict[int, list[int]] = {}  # the shuffled prompt order of each epoch this iteration touches
        chosen = []
        for position in range(start, start + per_process):
            epoch, offset = divmod(position, n)
            if epoch not in orders:
                seed = self.config.train.seed + epoch
                orders[epoch] = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
            chosen.append(orders[epoch][offset])
        return [self.prompts[i] for i in chosen], [self.prompt_rows[i] for i in chosen]

    @torch.no_grad()
    def _sample_and_score(self, actor_critic, prompts, rows, group: int, seed: int) -> tuple[Scored, dict]:
        """``group`` completions per prompt (contiguous), their rewards and forward-pass quantities."""
        gen = self.config.generation
        prompts = [p for p in prompts for _ in range(group)]
        rows = [r for r in rows for _ in range(group)]
        began = time.perf_counter()
        completions = self.generator.generate_ids(rows, dataclasses.replace(gen, seed=seed))
        generated = time.perf_counter()
        raw = self.reward(prompts, completions).float()
        monitors = {name: monitor(prompts, completions) for name, monitor in self.monitors.items()}
        scores, steps = raw, None
        if self.process is not None:
            scores = self.config.process_reward.outcome_weight * raw
            steps = self.process(prompts, completions, max(c.num_tokens for c in completions))
        if self.settings.unfinished == "penalty":
            unfinished = torch.tensor([not c.finished for c in completions], dtype=torch.float32)
            scores = scores - self.settings.unfinished_penalty * unfinished
        scored_at = time.perf_counter()
        passes = self._forward_passes(actor_critic, rows, completions)
        done = time.perf_counter()
        timing = {"generation_seconds": generated - began, "reward_seconds": scored_at - generated,
                  "logprob_seconds": done - scored_at}
        return Scored(prompts, rows, completions, scores, raw, monitors, **passes, steps=steps), timing

    def _forward_passes(self, actor_critic, rows, completions) -> dict[str, torch.Tensor]:
        """Old and reference log-probs, values and entropy of every response token, in micro-batches."""
        temperature = self.config.generation.temperature
        size = self.config.train.micro_batch_size
        device = next(actor_critic.parameters()).device
        parts: dict[str, list[torch.Tensor]] = {"old_logps": [], "ref_logps": [], "values": [], "entropy": []}
        was_training = actor_critic.training
        actor_critic.eval()
        for start in range(0, len(rows), size):
            chunk = [RolloutRow(r + list(c.token_ids), len(r), *([torch.zeros(c.num_tokens)] * 3))
                     for r, c in zip(rows[start : start + size], completions[start : start + size], strict=True)]
            batch = {k: v.to(device) for k, v in collate_rollouts(chunk, self.tokenizer.pad_token_id).items()}
            start = int(batch["logits_from"])
            logits, values = actor_critic(batch["input_ids"], batch["attention_mask"], logits_from=start)
            logps = logprobs_from(logits, batch["labels"], start, temperature)
            ref = self.reference.token_logps(actor_critic.policy, batch, temperature)
            entropy = torch.nn.functional.pad(entropy_from_logits(logits[:, :-1].float() / temperature), (start, 0))
            parts["old_logps"] += response_frame(logps.cpu(), batch)
            parts["ref_logps"] += response_frame(ref.float().cpu(), batch)
            parts["entropy"] += response_frame(entropy.cpu(), batch)
            if values is not None:
                parts["values"] += response_frame(values[:, :-1].cpu(), batch)
        actor_critic.train(was_training)
        out = {name: pad_responses(values)[0] for name, values in parts.items() if values}
        out["mask"] = pad_responses(parts["old_logps"])[1]
        out.setdefault("values", None)
        return out

    def _write_samples(self, iteration: int, scored: Scored) -> None:
        if not self.state.is_main_process:
            return
        lines = [json.dumps({"iteration": iteration, "prompt": list(p.prompt), "completion": c.text,
                             "reward": float(scored.raw_scores[i]), "finished": c.finished,
                             **{f"monitor_{name}": float(v[i]) for name, v in scored.monitors.items()}})
                 for i, (p, c) in enumerate(zip(scored.prompts[:SAMPLES_PER_LOG], scored.completions, strict=False))]
        with (self.run_dir / SAMPLES_FILE).open("a") as out:
            out.write("".join(line + "\n" for line in lines))


def _sampler_gap(scored: Scored) -> float:
    """Mean |log π_sampler(y_t) - log π_old(y_t)| over the response tokens: the sampler's log-probability
    of each token against the no-gradient forward pass the updates start from; 0 up to rounding when
    the replies were drawn from the distribution the updates assume."""
    sampler, _ = pad_responses([torch.tensor(c.logprobs) for c in scored.completions])
    return float((sampler - scored.old_logps).abs()[scored.mask].mean())


def _score_metrics(scored: Scored, kl_per_completion: torch.Tensor) -> dict[str, float]:
    """Reward, monitored rewards, KL, length, entropy and reward–length correlation of a batch of completions."""
    lengths = torch.tensor([c.num_tokens for c in scored.completions], dtype=torch.float32)
    raw = scored.raw_scores
    return {
        **{f"monitor_{name}": float(values.mean()) for name, values in scored.monitors.items()},
        "reward": float(raw.mean()),
        "reward_std": float(raw.std()) if raw.numel() > 1 else 0.0,
        "kl": float(kl_per_completion.mean()),
        "entropy": float(scored.entropy[scored.mask].mean()),
        "length": float(lengths.mean()),
        "unfinished": float(sum(not c.finished for c in scored.completions) / len(scored.completions)),
        "reward_length_corr": pearson(raw, lengths),
        **({} if scored.steps is None else {
            "step_reward": float(scored.steps.rewards[scored.steps.ends].mean()) if scored.steps.ends.any() else 0.0,
            "steps_per_reply": float(scored.steps.ends.sum()) / len(scored.completions)}),
    }
