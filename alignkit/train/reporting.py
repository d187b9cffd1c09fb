"""What a run shows and records: metrics.jsonl, optional TensorBoard, a progress bar.

Only the main process reports. ``metrics.jsonl`` holds one JSON object per logged step; on resume
it is cut back to the checkpoint's step, so the file matches an uninterrupted run line for line.
"""

import json
import math
from pathlib import Path

from rich.progress import Progress, TextColumn

from alignkit.console import progress_bar
from alignkit.errors import AlignkitError


class MetricsLog:
    """Appends one JSON object per logged step to ``metrics.jsonl`` (and TensorBoard when asked)."""

    def __init__(self, run_dir: Path, *, resume_step: int | None, tensorboard: bool):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.kept: list[dict] = []
        if resume_step is not None and self.path.exists():
            records = [json.loads(line) for line in self.path.read_text().splitlines() if line]
            self.kept = [r for r in records if r["step"] <= resume_step]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("".join(json.dumps(r) + "\n" for r in self.kept))
        self.writer = _tensorboard_writer(run_dir) if tensorboard else None

    def log(self, step: int, metrics: dict[str, float]) -> None:
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _plain(value: float) -> float | str:
    value = float(value)
    return value if math.isfinite(value) else str(value)


def _tensorboard_writer(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise AlignkitError(
            "'train.tensorboard' is true but tensorboard is not installed: pip install tensorboard"
        ) from None
    return SummaryWriter(str(Path(run_dir) / "tensorboard"))


def training_bar(enabled: bool) -> Progress:
    """A bar with step count, loss, tokens/s, elapsed time and ETA."""
    return progress_bar(TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"), enabled=enabled)
