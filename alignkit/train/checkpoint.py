"""Checkpoints for exact resume.

``checkpoints/step-NNNNNN/`` holds accelerate's saved state (model weights as safetensors,
optimizer, the registered learning-rate scheduler and the RNG states of every process) and
``trainer.json`` with the optimizer step reached. The data position needs nothing more: the batch
schedule is a pure function of the step (see ``batching.py``).

A checkpoint is written to ``step-NNNNNN.tmp`` and renamed when complete, so a crash while
saving never leaves a folder that ``--resume`` would pick up.
"""

import json
import logging
import shutil
from pathlib import Path

from accelerate import Accelerator

PREFIX = "step-"


class _TiedWeightNotice(logging.Filter):
    """Drops accelerate's warning, on every save of a model with tied weights (the output layer tied to
    the input embeddings), that the second name of a shared tensor was left out of the safetensors file:
    loading the state re-ties it, and exact resume is tested."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Removed shared tensor" not in record.getMessage()


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(accelerator: Accelerator, run_dir: Path, step: int, keep: int) -> Path:
    """Save the full training state after optimizer step ``step``; keep the ``keep`` newest."""
    final = checkpoint_dir(run_dir) / f"{PREFIX}{step:06d}"
    partial = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
    accelerator.wait_for_everyone()
    notice, accelerate_logger = _TiedWeightNotice(), logging.getLogger("accelerate.utils.other")
    accelerate_logger.addFilter(notice)
    try:
        accelerator.save_state(str(partial))
    finally:
        accelerate_logger.removeFilter(notice)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (partial / "trainer.json").write_text(json.dumps({"step": step}))
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{PREFIX}*") if p.is_dir() and not p.name.endswith(".tmp"))


def load_checkpoint(accelerator: Accelerator, path: Path) -> int:
    """Restore the training state saved in ``path``; returns the optimizer step it was taken after."""
    accelerator.load_state(str(path))
    return json.loads((Path(path) / "trainer.json").read_text())["step"]
