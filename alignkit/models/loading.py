"""Turning a model name into a loaded model and tokenizer, and saving one back as a plain folder.

A model name takes one of three forms (``ModelConfig.name``):

- ``smollm2-135m``: the default small model, converted once from its packaged GGUF and cached
  (see :mod:`alignkit.models.smollm2`);
- a local folder holding a Hugging Face model (``config.json`` and ``*.safetensors``);
- a Hugging Face hub id such as ``HuggingFaceTB/SmolLM2-135M-Instruct`` (downloading needs network
  access, or the model already in the Hugging Face cache).
"""

from __future__ import annotations

import copy
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub.utils import HFValidationError, validate_repo_id
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from alignkit.config import ModelConfig
from alignkit.errors import AlignkitError
from alignkit.io import atomic_directory
from alignkit.models import lora
from alignkit.models.smollm2 import DEFAULT_CACHE_DIR, SMOLLM2, SMOLLM2_HUB_ID, smollm2_model_dir

logger = logging.getLogger(__name__)

NAME_FORMS = (
    f"a model name may be '{SMOLLM2}' (the default small model, converted once from its packaged GGUF), "
    "a local folder holding a Hugging Face model (config.json and *.safetensors), "
    f"or a Hugging Face hub id such as '{SMOLLM2_HUB_ID}' (downloading it needs network access)"
)


def resolve_model_path(name: str, cache_dir: str = DEFAULT_CACHE_DIR) -> str:
    """Where to load ``name`` from: a local folder path, or a hub id (returned unchanged).

    ``smollm2-135m`` gives the converted folder under ``cache_dir`` (converting on first use; see
    :func:`~alignkit.models.smollm2.cache_root` for ``ALIGNKIT_CACHE_DIR``); an existing local
    folder gives itself. Anything else must be a valid hub id; a path-like name that is not an
    existing folder, or a malformed id, raises AlignkitError listing the accepted forms.
    """
    if name == SMOLLM2:
        return str(smollm2_model_dir(cache_dir))
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if path.is_absolute() or name.startswith((".", "~")):
        raise AlignkitError(f"model '{name}': no such folder; {NAME_FORMS}")
    try:
        validate_repo_id(name)
    except HFValidationError:
        problem = "neither an existing folder nor a valid hub id"
        raise AlignkitError(f"model '{name}': {problem}; {NAME_FORMS}") from None
    return name


def model_folder(path: str | Path) -> Path:
    """The model folder of a run folder (its ``model/``), or ``path`` itself when it has no ``model/``."""
    path = Path(path)
    return path / "model" if (path / "model").is_dir() else path


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """``AutoTokenizer`` for a folder or hub id, padding on the right with a pad token always set.

    A tokenizer without a pad token gets its eos token as pad (a warning is logged).
    """
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except OSError as exc:
        raise _load_error(name_or_path, exc) from exc
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise AlignkitError(f"tokenizer of '{name_or_path}': no pad token, and no eos token to pad with")
        logger.warning("Tokenizer of %s has no pad token; padding with its eos token %r", name_or_path,
                       tokenizer.eos_token)
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def load_causal_lm(config: ModelConfig, device: str | torch.device | None = None) -> PreTrainedModel:
    """The causal LM named by ``config.name`` (see :func:`load_pretrained`)."""
    return load_pretrained(config, AutoModelForCausalLM, device)


def load_pretrained(
    config: ModelConfig, auto_class: type, device: str | torch.device | None = None, **kwargs
) -> PreTrainedModel:
    """``auto_class.from_pretrained`` for ``config.name`` in ``config.dtype`` with SDPA attention.

    Gradient checkpointing is switched on (non-reentrant) when ``config.gradient_checkpointing``;
    ``model.config.use_cache`` is left as the checkpoint has it. The model is returned in eval mode
    (as ``from_pretrained`` leaves it); trainers call ``.train()``. ``kwargs`` go to
    ``from_pretrained`` (e.g. ``num_labels=1`` for a reward model).
    """
    start = time.perf_counter()
    return _prepared(_from_pretrained(config, auto_class, **kwargs), config, device, start)


@dataclass(frozen=True)
class LoadInfo:
    """Weight names the model has but the folder lacked (newly initialised), and that the folder holds but
    the model does not use."""

    missing: frozenset[str]
    unexpected: frozenset[str]


def load_pretrained_with_info(
    config: ModelConfig, auto_class: type, device: str | torch.device | None = None, **kwargs
) -> tuple[PreTrainedModel, LoadInfo]:
    """:func:`load_pretrained`, and which weights were missing or unused. transformers' load report (a
    table of them, logged as a warning on every load) is held back for the caller to say what matters,
    unless loading fails (its error points at the report)."""
    start = time.perf_counter()
    with _load_report_held():
        model, info = _from_pretrained(config, auto_class, output_loading_info=True, **kwargs)
    model = _prepared(model, config, device, start)
    return model, LoadInfo(frozenset(info["missing_keys"]), frozenset(info["unexpected_keys"]))


def _from_pretrained(config: ModelConfig, auto_class: type, **kwargs):
    path = resolve_model_path(config.name, config.cache_dir)
    try:
        return auto_class.from_pretrained(path, dtype=getattr(torch, config.dtype), attn_implementation="sdpa",
                                          **kwargs)
    except OSError as exc:
        raise _load_error(path, exc) from exc


def _prepared(model: PreTrainedModel, config: ModelConfig, device: str | torch.device | None,
              start: float) -> PreTrainedModel:
    if config.gradient_checkpointing:
        _enable_checkpointing(model)
    if device is not None:
        model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    seconds = time.perf_counter() - start
    logger.info("Loaded %s (%.1fM parameters, %s) in %.1f s", config.name, n_params / 1e6, config.dtype, seconds)
    return model


class _HeldLoadReport(logging.Filter):
    """Keeps transformers' load report records out of its log while a model loads."""

    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if "LOAD REPORT" in record.getMessage():
            self.records.append(record)
            return False
        return True


@contextmanager
def _load_report_held():
    """Hold back transformers' load report inside the block; let it through when the block fails."""
    held, transformers_logger = _HeldLoadReport(), logging.getLogger("transformers.modeling_utils")
    transformers_logger.addFilter(held)
    try:
        yield
    except BaseException:
        transformers_logger.removeFilter(held)
        for record in held.records:
            transformers_logger.handle(record)
        raise
    transformers_logger.removeFilter(held)


def load_model_and_tokenizer(
    config: ModelConfig, device: str | torch.device | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """``(load_causal_lm(config, device), load_tokenizer(...))`` for the same resolved model."""
    model = load_causal_lm(config, device)
    return model, load_tokenizer(resolve_model_path(config.name, config.cache_dir))


def save_model(
    model: PreTrainedModel | PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: str | Path,
    *,
    merge_lora: bool = True,
) -> Path:
    """Write ``model`` and ``tokenizer`` to ``out_dir`` as a Hugging Face folder (safetensors), atomically.

    A peft model is merged on a copy when ``merge_lora`` (the model passed in is not changed), so the
    folder is a plain model; with ``merge_lora=False`` it holds the adapter alone
    (``adapter_config.json``, ``adapter_model.safetensors``) pointing at its base model's path.
    Either way ``AutoModelForCausalLM.from_pretrained(out_dir)`` loads it (an adapter folder needs
    its base model reachable). An existing ``out_dir`` is replaced only once the new one is complete.
    """
    if isinstance(model, PeftModel) and merge_lora:
        model = lora.merge_lora(copy.deepcopy(model))
    out = Path(out_dir)
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    logger.info("Saved the model to %s", out)
    return out


def _enable_checkpointing(model: PreTrainedModel) -> None:
    """Non-reentrant activation checkpointing (the method's name changed within transformers 5.x)."""
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def _load_error(name_or_path: str, exc: OSError) -> AlignkitError:
    """The user-facing error for a model or tokenizer that could not be loaded."""
    if Path(name_or_path).is_dir():
        return AlignkitError(f"model folder '{name_or_path}': not a loadable Hugging Face model ({exc})")
    return AlignkitError(
        f"model '{name_or_path}': could not load it from the Hugging Face hub ({exc}). "
        "Loading a hub id needs network access (or the model already in the Hugging Face cache); "
        + NAME_FORMS
    )
