"""The processes a run works on (one, or several under torchrun / accelerate launch)."""

import torch
from accelerate import PartialState


def cpu_only() -> bool:
    """Whether the run is on CPUs alone: then several processes (torchrun / accelerate launch) use gloo."""
    return not torch.cuda.is_available()


def process_state() -> PartialState:
    """The processes a run trains on, as the training engine sets them up. Use this rather than
    ``PartialState()`` before the engine exists: the first construction of the shared state decides whether
    several processes on a CPU-only machine form a gloo group, and a plain ``PartialState()`` leaves each alone."""
    return PartialState(cpu=cpu_only())
