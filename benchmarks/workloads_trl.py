"""TRL's side of each workload: its trainer on the token ids alignkit's tokeniser made (nothing re-tokenised),
the same model loader (float32, SDPA attention), LoRA settings, batch, loss and seed; TRL's own defaults
elsewhere (optimizer included), except bf16 and gradient checkpointing, which TRL switches on and alignkit's
configs leave off.

Steps are timed by a ``TrainerCallback`` (``on_step_begin`` → ``on_step_end``: the micro-batches' forward
and backward, GRPO's sampling, clipping and the optimizer step) and tokens counted from the tensors each
``compute_loss`` call receives. Needs the ``bench`` extra (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import trl
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForSequenceClassification, TrainerCallback
from trl import DPOConfig, GRPOConfig, GRPOTrainer, RewardConfig, RewardTrainer, SFTConfig, SFTTrainer

from alignkit.config import LoraConfig as AlignkitLora
from alignkit.config import ModelConfig
from alignkit.models import load_causal_lm, load_pretrained, load_tokenizer, resolve_model_path
from benchmarks.data import bench_reward, inputs
from benchmarks.dpo_trl import PretokenizedDPOTrainer
from benchmarks.measure import StepRecorder
from benchmarks.spec import BATCH, RL_GROUP, RL_NEW_TOKENS, RL_PROMPTS, SEED, WORKLOADS, NotAvailable, RunSpec


class StepTimer(TrainerCallback):
    def __init__(self, recorder: StepRecorder):
        self.recorder = recorder

    def on_step_begin(self, args, state, control, **kwargs):
        self.recorder.begin()

    def on_step_end(self, args, state, control, **kwargs):
        self.recorder.end()


class PretokenizedGRPOTrainer(GRPOTrainer):
    """GRPOTrainer tokenises each prompt with its own chat-template call; here a prompt's text is a key to the
    ids alignkit's tokeniser made."""

    def __init__(self, *args, prompt_ids: dict[str, list[int]], **kwargs):
        self.bench_prompt_ids = prompt_ids
        super().__init__(*args, **kwargs)

    def _tokenize_prompts(self, prompts: list):
        return [list(self.bench_prompt_ids[p]) for p in prompts], None, {}


def run(spec: RunSpec, recorder: StepRecorder) -> dict:
    """Train ``spec.workload`` for ``spec.total_steps`` optimizer steps, each recorded in ``recorder``."""
    workload = WORKLOADS[spec.workload]
    if workload.stage == "ppo":
        if importlib.util.find_spec("trl.experimental.ppo") is None:
            raise NotAvailable(f"not available in TRL {trl.__version__} (no PPOTrainer, trl.experimental has no ppo)")
        raise NotAvailable(f"TRL {trl.__version__} has trl.experimental.ppo; this benchmark has no PPO workload for it")
    tokenizer = load_tokenizer(resolve_model_path(spec.model))
    data = inputs(workload.stage, tokenizer)
    model_config = ModelConfig(name=spec.model)
    common = _common_args(spec, 2e-4 if workload.lora else 1e-5)
    if workload.stage == "sft":
        args = SFTConfig(**common, max_length=None, padding_free=True)
        trainer = SFTTrainer(model=load_causal_lm(model_config), args=args, train_dataset=Dataset.from_list(data.rows),
                             processing_class=tokenizer)
    elif workload.stage == "rm":
        model = load_pretrained(model_config, AutoModelForSequenceClassification, num_labels=1)
        trainer = RewardTrainer(model=model, args=RewardConfig(**common, max_length=None, disable_dropout=False),
                                train_dataset=Dataset.from_list(data.rows), processing_class=tokenizer)
    elif workload.stage == "dpo":
        trainer = _dpo_trainer(workload, model_config, common, data.rows, tokenizer)
    else:
        trainer = _grpo_trainer(model_config, common, data.rows, tokenizer)
    trainer.add_callback(StepTimer(recorder))
    _count_tokens(trainer, recorder)
    trainer.train()
    info = {"optimizer": str(getattr(trainer.args.optim, "value", trainer.args.optim)), "trl": trl.__version__,
            "records": data.data.max_examples}
    if data.tokens is not None:
        info["expected_real_tokens_per_step"] = data.tokens  # alignkit's count (TRL's DPO: 1 fewer per sequence)
    return info


def _common_args(spec: RunSpec, lr: float) -> dict:
    return dict(
        output_dir=str(Path(spec.work_dir) / "trainer"), per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=1, learning_rate=lr, lr_scheduler_type="constant", warmup_steps=0,
        max_steps=spec.total_steps, max_grad_norm=1.0, weight_decay=0.0, seed=SEED, bf16=False,
        gradient_checkpointing=False, logging_steps=1, report_to=[], save_strategy="no", use_cpu=True,
        disable_tqdm=True, dataloader_num_workers=0,
    )


def _dpo_trainer(workload, model_config: ModelConfig, common: dict, rows: list[dict], tokenizer):
    model = load_causal_lm(model_config)
    ref_model = load_causal_lm(model_config) if workload.reference == "copy" else None
    peft_config = None
    if workload.lora:
        lora = AlignkitLora(enabled=True, r=16, alpha=32)
        peft_config = LoraConfig(task_type="CAUSAL_LM", r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                 target_modules=list(lora.target_modules), bias="none")
    args = DPOConfig(**common, beta=0.1, loss_type=["sigmoid"], max_length=None, disable_dropout=False,
                     precompute_ref_log_probs=workload.reference == "precomputed")
    return PretokenizedDPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=Dataset.from_list(rows),
                                  processing_class=tokenizer, peft_config=peft_config)


def _grpo_trainer(model_config: ModelConfig, common: dict, rows: list[dict], tokenizer):
    completions = RL_PROMPTS * RL_GROUP
    common = {**common, "gradient_accumulation_steps": completions // BATCH}
    args = GRPOConfig(
        **common, num_generations=RL_GROUP, max_completion_length=RL_NEW_TOKENS, temperature=1.0, top_p=1.0,
        top_k=0, beta=0.0, loss_type="dapo", scale_rewards="group", num_iterations=1, disable_dropout=False,
        generation_kwargs={"min_new_tokens": RL_NEW_TOKENS},  # exactly 64 tokens per completion, as alignkit's
    )
    dataset = Dataset.from_list([{"prompt": row["prompt"]} for row in rows])
    return PretokenizedGRPOTrainer(model=load_causal_lm(model_config), reward_funcs=[bench_reward], args=args,
                                   train_dataset=dataset, processing_class=tokenizer,
                                   prompt_ids={row["prompt"]: row["prompt_ids"] for row in rows})


def _count_tokens(trainer, recorder: StepRecorder) -> None:
    """Count each training micro-batch's tokens as ``compute_loss`` receives it (this trainer object only)."""
    compute_loss = trainer.compute_loss

    def counted(model, inputs, *args, **kwargs):
        if model.training:
            if "attention_mask" in inputs:
                mask = inputs["attention_mask"]
                recorder.add(int(mask.sum()), mask.numel())
            elif "completion_mask" in inputs:  # GRPO: left-padded prompts, then the completions
                prompt, completion = inputs["prompt_mask"], inputs["completion_mask"]
                recorder.add(int(prompt.sum() + completion.sum()), prompt.numel() + completion.numel(),
                             int(completion.sum()))
            elif "position_ids" in inputs:  # padding-free SFT: one row, every position a token
                tokens = inputs["input_ids"].numel()
                recorder.add(tokens, tokens)
            else:
                raise RuntimeError(f"cannot count the tokens of a batch with keys {sorted(inputs)}")
        return compute_loss(model, inputs, *args, **kwargs)

    trainer.compute_loss = counted
