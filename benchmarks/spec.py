"""What the throughput benchmark runs: its suites and workloads, as plain values (no torch import).

Every workload trains SmolLM2-135M-Instruct (or, in the ``smoke`` suite, a tiny random model of the
same architecture and tokenizer) in float32 on the CPU, sequences of at most ``MAX_LENGTH`` tokens,
``BATCH`` sequences, pairs or prompts per optimizer step in one micro-batch (GRPO/PPO: ``RL_PROMPTS``
prompts × ``RL_GROUP`` completions in micro-batches of ``BATCH``).

Roofline convention: a step is credited with ``flops_per_token · N`` FLOPs per real (non-pad) token it
trains on, N the model's non-embedding parameter count (the input embedding and the output layer tied
to it left out). 6 per trained token (forward and backward, Kaplan et al. 2020), +2 when a reference
model runs a forward pass over the same tokens, +2 for sampling the completions (RL); PPO's critic is
a second network of the same size (+2 for its value pass, +6 for training it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

MAX_LENGTH = 256
BATCH = 4
RL_PROMPTS = 4
RL_GROUP = 4
RL_NEW_TOKENS = 64
SEED = 0


@dataclass(frozen=True)
class Workload:
    name: str
    stage: str  # sft | rm | dpo | grpo | ppo
    what: str
    flops_per_token: int
    lora: bool = False
    reference: str | None = None  # DPO: copy | adapter | precomputed


WORKLOADS = {w.name: w for w in (
    Workload("sft", "sft", "SFT, full fine-tuning, Alpaca seed tasks, 4 sequences/step end to end (padding-free)",
             6),
    Workload("rm", "rm", "reward model, full fine-tuning, HH-RLHF harmless, 4 pairs/step", 6),
    Workload("dpo_full", "dpo", "DPO, full fine-tuning, separate frozen reference copy, 4 pairs/step", 8,
             reference="copy"),
    Workload("dpo_lora", "dpo", "DPO, LoRA r=16 on q/k/v/o of every layer, reference = adapters off", 8,
             lora=True, reference="adapter"),
    Workload("dpo_precomputed", "dpo", "DPO, full fine-tuning, reference log-probs precomputed", 6,
             reference="precomputed"),
    Workload("dpo_lora_precomputed", "dpo", "DPO, LoRA r=16, reference log-probs precomputed", 6,
             lora=True, reference="precomputed"),
    Workload("grpo", "grpo", "GRPO, full fine-tuning, 4 GSM8K prompts x 4 completions of 64 tokens, beta=0", 8),
    Workload("ppo", "ppo", "PPO, full fine-tuning, separate critic, 4 GSM8K prompts x 4 completions, beta=0", 16),
)}


@dataclass(frozen=True)
class Suite:
    name: str
    model: str  # a model name alignkit resolves, or "tiny" (built for the run)
    threads: int
    warmup: int
    steps: int
    repeats: int
    matmul_size: int  # side of the square float32 matmul timed for the roofline
    markdown: bool  # write the section into benchmarks/RESULTS.md by default


SUITES = {
    "cpu": Suite("cpu", "smollm2-135m", threads=2, warmup=1, steps=3, repeats=2, matmul_size=2048, markdown=True),
    "smoke": Suite("smoke", "tiny", threads=1, warmup=1, steps=1, repeats=1, matmul_size=256, markdown=False),
}


class NotAvailable(Exception):
    """The toolkit has no trainer for this workload (recorded as such, not as a failure)."""


@dataclass(frozen=True)
class RunSpec:
    """Everything one benchmark child needs (written as JSON for it)."""

    toolkit: str
    workload: str
    model: str
    threads: int
    warmup: int
    steps: int
    matmul_size: int
    work_dir: str

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def total_steps(self) -> int:
        return self.warmup + self.steps
