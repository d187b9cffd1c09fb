"""What a stage's folder holds: whether a training stage has finished."""

from pathlib import Path

from alignkit.models.reward import ENSEMBLE_FILE


def training_finished(folder: Path) -> bool:
    """The training stage's folder holds its final model and eval.json (or, an ensemble, its ensemble.json)."""
    return ((folder / "eval.json").is_file() and (folder / "model").is_dir()) or (folder / ENSEMBLE_FILE).is_file()
