"""alignkit's side of each workload: the library's own stage function (run_sft, run_rm, run_dpo, run_rl) on
the benchmark's records, timed from outside.

Only in this (child) process, three methods are wrapped: ``Engine._optimizer_step`` (a step's clock and
its tokens, counted from the batches the step collates), ``RolloutCollector.collect`` (RL: the clock
starts when sampling starts, and the sampled tokens are counted) and ``HFGenerator._generate_batch``
(RL: the model's ``generation_config.min_new_tokens`` is set to ``max_new_tokens``, so every completion
has exactly 64 tokens, as TRL's are made to). The library's code is not changed.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from alignkit.config import (
    DPOConfig,
    GenerationConfig,
    LoraConfig,
    ModelConfig,
    PreferenceConfig,
    RewardConfig,
    RewardSourceConfig,
    RLConfig,
    RLSettings,
    RMConfig,
    SFTConfig,
    TrainConfig,
)
from alignkit.models import load_tokenizer, resolve_model_path
from alignkit.rl.collector import RolloutCollector
from alignkit.rl.generation import HFGenerator
from alignkit.train.engine import Engine
from alignkit.train.preference import run_dpo
from alignkit.train.reward import run_rm
from alignkit.train.rl import run_rl
from alignkit.train.sft import run_sft
from benchmarks.data import inputs
from benchmarks.measure import StepRecorder
from benchmarks.spec import BATCH, MAX_LENGTH, RL_GROUP, RL_NEW_TOKENS, RL_PROMPTS, SEED, WORKLOADS, RunSpec

REWARD_FUNCTION = "benchmarks.data:bench_reward"


def run(spec: RunSpec, recorder: StepRecorder) -> dict:
    """Train ``spec.workload`` for ``spec.total_steps`` optimizer steps, each recorded in ``recorder``."""
    workload = WORKLOADS[spec.workload]
    tokenizer = load_tokenizer(resolve_model_path(spec.model))
    data = inputs(workload.stage, tokenizer)
    _instrument(recorder)
    out = str(Path(spec.work_dir) / "run")
    model = ModelConfig(name=spec.model)
    lora = LoraConfig(enabled=workload.lora, r=16, alpha=32)
    lr = 2e-4 if workload.lora else 1e-5
    if workload.stage in ("grpo", "ppo"):
        run_rl(_rl_config(spec, workload.stage, out, model, data.data))
        return {"optimizer": "torch.optim.AdamW", "records": data.data.max_examples}
    train = TrainConfig(seed=SEED, max_steps=spec.total_steps, batch_size=BATCH, micro_batch_size=BATCH,
                        learning_rate=lr, schedule="constant", warmup_steps=0)
    if workload.stage == "sft":
        run_sft(SFTConfig(output_dir=out, model=model, lora=lora, data=replace(data.data, padding_free=True),
                          train=train))
    elif workload.stage == "rm":
        run_rm(RMConfig(output_dir=out, model=model, lora=lora, data=data.data, train=train,
                        reward=RewardConfig(pooling="last")))
    else:
        preference = PreferenceConfig(loss="dpo", beta=0.1, reference=workload.reference)
        run_dpo(DPOConfig(output_dir=out, model=model, lora=lora, data=data.data, train=train, preference=preference))
    return {"optimizer": "torch.optim.AdamW", "records": data.data.max_examples,
            "expected_real_tokens_per_step": data.tokens}


def _rl_config(spec: RunSpec, algo: str, out: str, model: ModelConfig, data) -> RLConfig:
    completions = RL_PROMPTS * RL_GROUP
    return RLConfig(
        output_dir=out, model=model, data=data,
        train=TrainConfig(seed=SEED, batch_size=completions, micro_batch_size=BATCH, learning_rate=1e-5,
                          schedule="constant"),
        generation=GenerationConfig(max_new_tokens=RL_NEW_TOKENS, temperature=1.0, top_p=1.0, top_k=0,
                                    batch_size=completions, max_prompt_length=MAX_LENGTH - RL_NEW_TOKENS, seed=SEED),
        rl=RLSettings(algo=algo, iterations=spec.total_steps, prompts_per_iteration=RL_PROMPTS,
                      samples_per_prompt=RL_GROUP, ppo_epochs=1, kl_coef=0.0, critic="separate",
                      critic_init="policy", eval_prompts=0, sample_every=spec.total_steps + 1),
        reward=RewardSourceConfig(kind="function", function=REWARD_FUNCTION),
    )


def _instrument(recorder: StepRecorder) -> None:
    """Wrap the engine's optimizer step, the RL collector and generation (this process only)."""
    optimizer_step, collect = Engine._optimizer_step, RolloutCollector.collect
    generate_batch = HFGenerator._generate_batch

    def timed_step(self, row_batches, step):
        for rows in row_batches:  # counted before the clock starts (RL: already running since sampling began)
            batch = self.step.collate(rows)  # real: every sequence's tokens (a shared prompt counted per reply)
            recorder.add(self.step.tokens(batch), batch["input_ids"].numel())
        recorder.begin()
        result = optimizer_step(self, row_batches, step)
        recorder.end()
        return result

    def timed_collect(self, model, iteration):
        recorder.begin()
        rows, metrics = collect(self, model, iteration)
        recorder.add(0, 0, sum(row.response_length for row in rows))
        return rows, metrics

    def exact_length(self, rows, config):
        hf_model = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        hf_model.generation_config.min_new_tokens = config.max_new_tokens
        return generate_batch(self, rows, config)

    Engine._optimizer_step = timed_step
    RolloutCollector.collect = timed_collect
    HFGenerator._generate_batch = exact_length
