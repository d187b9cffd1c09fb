"""Which examples each process sees at each optimizer step.

The order is a pure function of (seed, epoch): epoch e is ``randperm(n)`` drawn from a generator
seeded with ``seed + e``; optimizer step s takes the s-th slice of ``batch_size`` indices from the
concatenation of epochs (a last partial slice of an epoch is dropped). The slice is cut into
``processes × accumulation`` micro-batches of ``micro_batch_size``; process r takes micro-batches
r, r + processes, ... so the union over processes is the same global batch for any process count.

Because the schedule depends on nothing but the step number, resuming needs no sampler state:
a run restarted at step s continues with exactly the examples an uninterrupted run would see.
"""

from dataclasses import dataclass

import torch

from alignkit.errors import ConfigError


@dataclass(frozen=True)
class BatchPlan:
    num_examples: int
    batch_size: int
    micro_batch_size: int
    num_processes: int
    seed: int

    def __post_init__(self) -> None:
        per_pass = self.micro_batch_size * self.num_processes
        if self.batch_size % per_pass:
            raise ConfigError(
                f"'train.batch_size' ({self.batch_size}) must be a multiple of 'train.micro_batch_size' "
                f"({self.micro_batch_size}) x processes ({self.num_processes}) = {per_pass}"
            )
        if self.num_examples < self.batch_size:
            raise ConfigError(
                f"'train.batch_size' ({self.batch_size}) is larger than the training set "
                f"({self.num_examples} sequences); lower it"
            )

    @property
    def accumulation(self) -> int:
        """Micro-batches each process runs per optimizer step."""
        return self.batch_size // (self.micro_batch_size * self.num_processes)

    @property
    def steps_per_epoch(self) -> int:
        return self.num_examples // self.batch_size

    def global_batch(self, step: int) -> list[int]:
        """Indices of all examples in optimizer step ``step`` (0-based), across every process."""
        epoch, offset = divmod(step, self.steps_per_epoch)
        order = torch.randperm(self.num_examples, generator=torch.Generator().manual_seed(self.seed + epoch))
        start = offset * self.batch_size
        return order[start : start + self.batch_size].tolist()

    def micro_batches(self, step: int, rank: int) -> list[list[int]]:
        """The micro-batches process ``rank`` runs in optimizer step ``step``."""
        indices = self.global_batch(step)
        chunks = [indices[i : i + self.micro_batch_size] for i in range(0, len(indices), self.micro_batch_size)]
        return chunks[rank :: self.num_processes]
