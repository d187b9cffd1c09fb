"""What every training stage does before its first step: the run folder, the config, the model."""

from pathlib import Path

import yaml
from accelerate.utils import set_seed

from alignkit.config import LoraConfig, ModelConfig, to_dict
from alignkit.console import console
from alignkit.errors import AlignkitError
from alignkit.io import atomic_write_text
from alignkit.models import apply_lora, load_causal_lm, load_tokenizer, resolve_model_path
from alignkit.train.checkpoint import list_checkpoints


def prepare_run_dir(config, *, resume: bool) -> Path:
    """Create ``output_dir`` and write the resolved ``config.yaml``.

    A fresh run refuses a folder that holds checkpoints of an earlier run, so nothing is
    overwritten by accident; ``--resume`` continues that run instead. An ``output_dir`` that is a file,
    or lies under one, is refused with the file named.
    """
    run_dir = Path(config.output_dir)
    existing = next((path for path in (run_dir, *run_dir.parents) if path.exists()), None)
    if existing is not None and not existing.is_dir():
        raise AlignkitError(f"output_dir {run_dir}: {existing} is a file, not a folder "
                            "(expected a folder for the run, or a path where one can be made)")
    if not resume and list_checkpoints(run_dir):
        raise AlignkitError(
            f"{run_dir} holds checkpoints of an earlier run: pass --resume to continue it, "
            "or choose another output_dir"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False))
    return run_dir


def load_stage_tokenizer(model_config: ModelConfig):
    """The tokenizer of the configured model (fast; data is tokenised before the model loads)."""
    return load_tokenizer(resolve_model_path(model_config.name, model_config.cache_dir))


def load_trainable_model(model_config: ModelConfig, lora: LoraConfig, seed: int):
    """The model to train, with LoRA adapters when enabled (their initialisation seeded by ``seed``)."""
    set_seed(seed)
    model = load_causal_lm(model_config)
    if lora.enabled:
        model = apply_lora(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    console.print(f"model: {model_config.name} ({trainable / 1e6:.1f}M trainable parameters)")
    return model
