"""What a benchmark child measures: per-step times and tokens, peak memory, the machine's matmul speed."""

from __future__ import annotations

import resource
import statistics
import time
from dataclasses import asdict, dataclass, field

import torch


@dataclass
class StepRecord:
    seconds: float
    real_tokens: int  # non-pad tokens of every sequence the step trains on
    padded_tokens: int  # positions computed: rows x padded length, summed over micro-batches
    generated_tokens: int  # sampled completion tokens (RL)
    peak_rss_mb: float  # the process's peak resident memory when the step ended


@dataclass
class StepRecorder:
    """Collects one :class:`StepRecord` per optimizer step: ``begin()`` when the step starts (a second call
    before ``end()`` keeps the first time, so RL can start the clock at sampling), ``add(...)`` for the
    tokens of each micro-batch, ``end()`` when the optimizer has stepped."""

    steps: list[StepRecord] = field(default_factory=list)
    _start: float | None = None
    _tokens: list[int] = field(default_factory=lambda: [0, 0, 0])

    def begin(self) -> None:
        if self._start is None:
            self._start = time.perf_counter()

    def add(self, real: int, padded: int, generated: int = 0) -> None:
        for i, value in enumerate((real, padded, generated)):
            self._tokens[i] += int(value)

    def end(self) -> None:
        if self._start is None:
            raise RuntimeError("a step ended that never began")
        seconds = time.perf_counter() - self._start
        self.steps.append(StepRecord(seconds, *self._tokens, peak_rss_mb=peak_rss_mb()))
        self._start, self._tokens = None, [0, 0, 0]

    def to_json(self) -> list[dict]:
        return [asdict(step) for step in self.steps]


def summarise(steps: list[dict], warmup: int) -> dict:
    """Median step time and throughputs of the steps after ``warmup``, the peak memory at the last step."""
    measured = steps[warmup:]
    if not measured:
        return {}
    return {
        "measured_steps": len(measured),
        "median_step_seconds": statistics.median(s["seconds"] for s in measured),
        "real_tokens_per_step": statistics.median(s["real_tokens"] for s in measured),
        "padded_tokens_per_step": statistics.median(s["padded_tokens"] for s in measured),
        "generated_tokens_per_step": statistics.median(s["generated_tokens"] for s in measured),
        "real_tokens_per_second": statistics.median(s["real_tokens"] / s["seconds"] for s in measured),
        "padded_tokens_per_second": statistics.median(s["padded_tokens"] / s["seconds"] for s in measured),
        "peak_rss_mb": steps[-1]["peak_rss_mb"],
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_gflops(size: int, repeats: int = 5) -> float:
    """float32 GFLOP/s of a ``size``³ matrix product with torch's current threads (median of ``repeats``
    after one warm-up)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    a @ b
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        seconds.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(seconds) / 1e9


def parameter_counts(model_path: str) -> dict:
    """Total and non-embedding parameters of the causal LM at ``model_path`` (built on the meta device:
    nothing is loaded). Non-embedding leaves out the input embedding and an output layer tied to it."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    unique = {id(p): (name, p.numel()) for name, p in model.named_parameters(remove_duplicate=False)}
    total = sum(n for _, n in unique.values())
    embedding = {id(model.get_input_embeddings().weight)}
    output = model.get_output_embeddings()
    if output is not None:
        embedding.add(id(output.weight))
    non_embedding = sum(n for key, (_, n) in unique.items() if key not in embedding)
    return {"total": total, "non_embedding": non_embedding}
