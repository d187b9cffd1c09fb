"""The one training loop every algorithm runs in.

An algorithm contributes a :class:`Step`: how rows become a batch, what the loss of a batch is, and
what unit the loss is averaged over (response tokens for SFT, pairs for a reward model or DPO).
The engine owns everything else: processes (accelerate: one CPU process, DDP over gloo or NCCL,
FSDP/DeepSpeed through ``accelerate launch``), accumulation, clipping, AdamW, the schedule,
evaluation, checkpoints and exact resume, NaN checks, logging and the final model folder.

Offline algorithms (SFT, reward models, DPO) train on a fixed list of rows (:meth:`Engine.fit`); one
round of the loop is one optimizer step. Online RL (:meth:`Engine.fit_online`) runs one of its
iterations each round: the iteration collects fresh rows with the current policy and trains on them
with :meth:`Engine.update_epochs` (``alignkit.train.rl.ppo_iteration``).

Loss normalisation. Each micro-batch returns the *sum* of its per-unit losses. Before the first
forward of an optimizer step the engine counts the units of the whole global batch (all
micro-batches on all processes) and back-propagates ``loss_sum · processes / units``; DDP averages
gradients over processes, so the update is the gradient of (Σ losses) / (units in the global
batch) whatever the split into processes and micro-batches. One process with accumulation and
two processes give the same curve up to float summation order.
"""

from __future__ import annotations

import math
import resource
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import get_scheduler

from alignkit.config import TrainConfig
from alignkit.console import console, summary_table
from alignkit.errors import TrainingDiverged
from alignkit.io import atomic_write_json
from alignkit.models import save_model
from alignkit.processes import cpu_only
from alignkit.train.batching import BatchPlan
from alignkit.train.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from alignkit.train.reporting import MetricsLog, training_bar

SCHEDULES = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}


@dataclass
class StepOutput:
    """A micro-batch's summed loss and other summed per-unit quantities (reported as sum / units)."""

    loss_sum: torch.Tensor
    sums: dict[str, torch.Tensor] = field(default_factory=dict)


class Step(Protocol):
    """What one algorithm adds to the engine."""

    name: str
    evaluate_at_start: bool  # False when the evaluation before training is known without running it

    def collate(self, rows: list[Any]) -> dict[str, torch.Tensor]: ...

    def count(self, batch: dict[str, torch.Tensor]) -> int:
        """Units the loss is averaged over in this batch (known before the forward pass)."""

    def tokens(self, batch: dict[str, torch.Tensor]) -> int:
        """Input tokens in this batch, for throughput."""

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> StepOutput: ...

    # Optional: ``begin(model, batches)``, called on every process with an iterable of all its micro-batches
    # (each moved to the device as it is reached) before the first ``loss`` of an optimizer step or an
    # evaluation, for a quantity estimated over the whole global batch (KTO's reference point). Every
    # process makes the call, so it may use collectives.

    def exportable(self, model: torch.nn.Module) -> torch.nn.Module:
        """The Hugging Face (or peft) model inside ``model`` that is saved as ``model/``."""


class RowCountedStep:
    """``count`` and ``tokens`` for a step whose loss unit is one row of its batch (a preference pair,
    a comparison group, a KTO row): its collator stores ``num_rows`` and ``num_tokens``."""

    def count(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["num_rows"])

    def tokens(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["num_tokens"])


class Stateful(Protocol):
    """What online RL checkpoints besides the model, optimizer and schedule (e.g. its KL coefficient)."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class RunResult:
    steps: int
    planned_steps: int
    train_seconds: float
    tokens_per_second: float
    peak_memory_mb: float
    first_loss: float | None
    last_loss: float | None
    eval_before: dict[str, float]
    eval_after: dict[str, float]

    def report(self) -> dict:
        """What a run writes to eval.json: the last step, held-out metrics after and before, loss, speed."""
        return {
            "step": self.steps,
            **({"planned_steps": self.planned_steps, "stopped_at_budget": True}
               if self.steps < self.planned_steps else {}),
            **self.eval_after,
            **{f"initial_{k}": v for k, v in self.eval_before.items()},
            "train_loss_first": self.first_loss,
            "train_loss_last": self.last_loss,
            "train_seconds": self.train_seconds,
            "tokens_per_second": self.tokens_per_second,
            "peak_memory_mb": self.peak_memory_mb,
        }


class Engine:
    """Trains ``model`` on ``train_rows`` with ``step``; writes the run folder contract into ``run_dir``."""

    def __init__(self, model, tokenizer, step: Step, config: TrainConfig, run_dir: str | Path):
        self.accelerator = Accelerator(cpu=cpu_only())
        set_seed(config.seed)
        self.config, self.step, self.tokenizer = config, step, tokenizer
        self.run_dir = Path(run_dir)
        self.optimizer = torch.optim.AdamW(
            _param_groups(model, config.weight_decay),
            lr=config.learning_rate,
            betas=(config.adam_beta1, config.adam_beta2),
        )
        self.model, self.optimizer = self.accelerator.prepare(model, self.optimizer)

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def fit(self, train_rows: list, eval_rows: list, *, resume: bool = False, merge_lora: bool = True) -> RunResult:
        """Train on ``train_rows`` (one round = one optimizer step); evaluate the step's loss on ``eval_rows``."""
        cfg, acc = self.config, self.accelerator
        plan = BatchPlan(len(train_rows), cfg.batch_size, cfg.micro_batch_size, acc.num_processes, cfg.seed)
        total = cfg.max_steps or cfg.epochs * plan.steps_per_epoch
        if cfg.max_steps is not None and cfg.epochs != 1 and self.is_main:
            console.print(f"[yellow]train.max_steps ({cfg.max_steps}) sets the length of the run; "
                          f"train.epochs ({cfg.epochs}) does not apply")

        def train_round(step: int) -> tuple[dict[str, float], int]:
            rows = [[train_rows[i] for i in mb] for mb in plan.micro_batches(step, acc.process_index)]
            return self._optimizer_step(rows, step)

        evaluate = (lambda: self.evaluate(eval_rows)) if eval_rows else None
        return self._loop(total, total, train_round, evaluate, self.step.evaluate_at_start, resume, merge_lora)

    def fit_online(self, iteration: Callable[[int], tuple[dict[str, float], int]], iterations: int,
                   updates_per_iteration: int, evaluate: Callable[[], dict[str, float]], state: Stateful, *,
                   resume: bool = False, merge_lora: bool = True) -> RunResult:
        """``iterations`` rounds of ``iteration(i)``, one RL iteration: it collects rows with the current
        model, trains on them with :meth:`update_epochs` (``updates_per_iteration`` optimizer steps, which
        the schedule counts) and returns its metrics and the tokens trained on. ``evaluate`` gives
        ``eval_*`` metrics before and after training; ``state`` is checkpointed with the model."""
        self.accelerator.register_for_checkpointing(state)
        return self._loop(iterations, iterations * updates_per_iteration, iteration, evaluate, True, resume,
                          merge_lora)

    def update_epochs(self, rows: list, updates: int, iteration: int) -> tuple[dict[str, float], int]:
        """``updates`` optimizer steps over this process's ``rows`` (an RL iteration's epochs over
        minibatches): each pass shuffles the rows anew (``train.seed + iteration``, then the pass) and
        cuts them into minibatches of ``train.batch_size / processes`` rows, so ``train.batch_size``
        counts rows across processes. Returns the mean over the steps of each of the step's metrics and
        the tokens trained on; the steps are numbered from ``iteration · updates``."""
        cfg = self.config
        local_batch = cfg.batch_size // self.accelerator.num_processes
        plan = BatchPlan(len(rows), local_batch, cfg.micro_batch_size, 1, cfg.seed + iteration)
        steps, tokens = [], 0
        for update in range(updates):
            batches = [[rows[i] for i in mb] for mb in plan.micro_batches(update, 0)]
            step_metrics, step_tokens = self._optimizer_step(batches, iteration * updates + update)
            steps.append(step_metrics)
            tokens += step_tokens
        return {k: sum(m[k] for m in steps) / len(steps) for k in steps[0]}, tokens

    def _loop(self, rounds: int, optimizer_steps: int, train_round, evaluate, evaluate_at_start: bool,
              resume: bool, merge_lora: bool) -> RunResult:
        """Run ``train_round(r)`` for r in [start, rounds) with the schedule, logging, evaluation and
        checkpoints every stage shares; ``evaluate`` is a callable returning ``eval_*`` metrics, or None."""
        cfg, acc = self.config, self.accelerator
        self.scheduler = get_scheduler(SCHEDULES[cfg.schedule], self.optimizer, cfg.warmup_steps, optimizer_steps)
        acc.register_for_checkpointing(self.scheduler)
        start = self._resume_step() if resume else 0
        log = None
        if self.is_main:
            log = MetricsLog(self.run_dir, resume_step=start if resume else None, tensorboard=cfg.tensorboard)
        eval_before = self._initial_eval(evaluate if evaluate_at_start else None, log, resume)
        first_loss = last_loss = None
        tokens, began, done, stopped = 0, time.perf_counter(), start, False
        budget = cfg.max_minutes * 60 if cfg.max_minutes is not None else math.inf
        with training_bar(self.is_main) as bar:
            task = bar.add_task(self.step.name, total=rounds, completed=start, loss="-", tps="-")
            for step in range(start, rounds):
                metrics, step_tokens = train_round(step)
                tokens += step_tokens
                done = step + 1
                last_loss = metrics["loss"]
                first_loss = last_loss if first_loss is None else first_loss
                tps = tokens / (time.perf_counter() - began)
                stopped = done < rounds and self._past(began, budget)
                last = done == rounds or stopped
                bar.update(task, completed=done, loss=f"{last_loss:.4f}", tps=f"{tps:.0f}")
                if cfg.eval_every and done % cfg.eval_every == 0 and not last and evaluate:
                    metrics.update(evaluate())
                if log and (done % cfg.log_every == 0 or last):
                    log.log(done, {**metrics, "lr": self.scheduler.get_last_lr()[0], "tokens_per_second": tps})
                if cfg.save_every and done % cfg.save_every == 0:
                    save_checkpoint(acc, self.run_dir, done, cfg.keep_checkpoints)
                if stopped:
                    break
        seconds = time.perf_counter() - began
        if stopped and self.is_main:
            console.print(f"[yellow]train.max_minutes ({cfg.max_minutes}): stopped after step {done} of {rounds}")
        eval_after = evaluate() if evaluate else {}
        result = RunResult(
            steps=done,
            planned_steps=rounds,
            train_seconds=seconds,
            tokens_per_second=tokens / seconds if seconds else 0.0,
            peak_memory_mb=peak_memory_mb(acc.device),
            first_loss=first_loss,
            last_loss=last_loss,
            eval_before=eval_before,
            eval_after=eval_after,
        )
        self._finish(result, log, merge_lora)
        return result

    def _optimizer_step(self, row_batches: list[list], step: int) -> tuple[dict[str, float], int]:
        """Forward and backward every micro-batch of rows of this process, then one clipped AdamW update
        and a scheduler step."""
        acc = self.accelerator
        batches = [self.step.collate(rows) for rows in row_batches]
        units = self._global_sum(float(sum(self.step.count(b) for b in batches)))
        scale = acc.num_processes / max(units, 1.0)
        totals: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), device=acc.device))
        tokens = 0
        self.model.train()
        self._begin(lambda: batches)
        for k, batch in enumerate(batches):
            batch = self._on_device(batch)
            tokens += self.step.tokens(batch)
            last = k == len(batches) - 1
            with nullcontext() if last else acc.no_sync(self.model):
                out = self.step.loss(self.model, batch)
                acc.backward(out.loss_sum * scale)
            totals["loss"] += out.loss_sum.detach().float()
            for key, value in out.sums.items():
                totals[key] += value.detach().float()
        metrics = self._reduce(totals, units)
        grad_norm = self._clip()
        metrics["grad_norm"] = grad_norm
        bad = [k for k in ("loss", "grad_norm") if not math.isfinite(metrics[k])]
        if bad:
            self.optimizer.zero_grad(set_to_none=True)
            raise TrainingDiverged(self._diverged_message(step + 1, bad[0], metrics[bad[0]]))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return metrics, int(self._global_sum(float(tokens)))

    @torch.no_grad()
    def evaluate(self, rows: list) -> dict[str, float]:
        """Loss and the step's other metrics over ``rows``, each averaged over the step's units, and
        ``eval_examples``: how many rows (pairs, groups, demonstrations) they come from."""
        acc, size = self.accelerator, self.config.micro_batch_size
        mine = rows[acc.process_index :: acc.num_processes]
        totals: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), device=acc.device))
        units = 0.0
        self.model.eval()
        chunks = [mine[i : i + size] for i in range(0, len(mine), size)]
        self._begin(lambda: (self.step.collate(chunk) for chunk in chunks))
        for chunk in chunks:
            batch = self._on_device(self.step.collate(chunk))
            units += self.step.count(batch)
            out = self.step.loss(self.model, batch)
            totals["loss"] += out.loss_sum.float()
            for key, value in out.sums.items():
                totals[key] += value.float()
        metrics = {f"eval_{k}": v for k, v in self._reduce(totals, self._global_sum(units)).items()}
        return {**metrics, "eval_examples": len(rows)}

    def _on_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {key: value.to(self.accelerator.device) for key, value in batch.items()}

    def _begin(self, batches: Callable[[], Iterable[dict[str, torch.Tensor]]]) -> None:
        """The step's optional ``begin`` with the micro-batches ``batches()`` gives (collated only if it has one)."""
        begin = getattr(self.step, "begin", None)
        if begin is not None:
            begin(self.model, (self._on_device(batch) for batch in batches()))

    def _reduce(self, totals: dict[str, torch.Tensor], units: float) -> dict[str, float]:
        keys = sorted(totals)
        stacked = torch.stack([totals[k] for k in keys]) if keys else torch.zeros(0, device=self.accelerator.device)
        summed = self.accelerator.reduce(stacked, reduction="sum")
        return {k: float(v) / max(units, 1.0) for k, v in zip(keys, summed.tolist(), strict=True)}

    def _global_sum(self, value: float) -> float:
        return float(self.accelerator.reduce(torch.tensor(value, device=self.accelerator.device), reduction="sum"))

    def _past(self, began: float, budget: float) -> bool:
        """Whether ``budget`` seconds have passed since ``began`` on any process (all processes agree)."""
        if math.isinf(budget):
            return False
        return self._global_sum(float(time.perf_counter() - began > budget)) > 0

    def _clip(self) -> float:
        limit = self.config.max_grad_norm if self.config.max_grad_norm is not None else math.inf
        return float(self.accelerator.clip_grad_norm_(self.model.parameters(), limit))

    def _diverged_message(self, step: int, key: str, value: float) -> str:
        saved = list_checkpoints(self.run_dir)
        where = "no checkpoint was saved"
        if saved:
            where = f"the last good checkpoint is {saved[-1]} (continue with --resume)"
        return f"step {step}: {key} is {value}; stopped before updating the weights; {where}"

    def _resume_step(self) -> int:
        saved = list_checkpoints(self.run_dir)
        if not saved:
            if self.is_main:
                console.print(f"[yellow]--resume: no checkpoint in {self.run_dir}/checkpoints; starting from step 0")
            return 0
        step = load_checkpoint(self.accelerator, saved[-1])
        if self.is_main:
            console.print(f"resumed from {saved[-1]} (step {step})")
        return step

    def _initial_eval(self, evaluate, log: MetricsLog | None, resume: bool) -> dict[str, float]:
        """Evaluate before training (logged as step 0); a resumed run reads it back from metrics.jsonl."""
        if evaluate is None:
            return {}
        if resume and log is not None and log.kept:
            first = log.kept[0]
            return {k: v for k, v in first.items() if k.startswith("eval_")}
        metrics = evaluate()
        if log is not None and not log.kept and metrics:
            log.log(0, metrics)
        return metrics

    def _finish(self, result: RunResult, log: MetricsLog | None, merge_lora: bool) -> None:
        self.accelerator.wait_for_everyone()
        if not self.is_main:
            return
        model = self.accelerator.unwrap_model(self.model)
        save_model(self.step.exportable(model), self.tokenizer, self.run_dir / "model", merge_lora=merge_lora)
        report = result.report()
        atomic_write_json(self.run_dir / "eval.json", report)
        log.close()
        console.print(summary_table(f"{self.step.name}: {self.run_dir}", report))


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters; weight decay on matrices only (not on norms or biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated on CUDA, else the process's peak resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
