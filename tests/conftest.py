"""Shared fixtures: the real data folder, the SmolLM2 tokenizer and a tiny random model built from a config."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data beside the checkout (../shared/data)."""
    if not DATA_DIR.is_dir():
        pytest.fail(f"expected the shared data folder at {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    """The SmolLM2 tokenizer (chat template included), extracted once from the packaged GGUF and cached."""
    from alignkit.models import smollm2_tokenizer_dir

    return smollm2_tokenizer_dir()


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from alignkit.models import load_tokenizer

    return load_tokenizer(str(tokenizer_dir))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer_dir) -> Path:
    """A tiny random Llama (SmolLM2's architecture and tokenizer) saved as a Hugging Face folder."""
    from alignkit.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", tokenizer_dir)
