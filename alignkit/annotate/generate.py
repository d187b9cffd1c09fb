"""Responses from a model, turned into items: K samples per prompt through alignkit's generator."""

from __future__ import annotations

from dataclasses import replace

from alignkit.config import GenerationConfig
from alignkit.data.readers import read_rows
from alignkit.data.records import as_messages
from alignkit.errors import DataError


def read_prompts(source: str) -> list[tuple[dict, ...]]:
    """Prompts (chat messages) from the ``prompt`` field of every row of a data source."""
    prompts = []
    for location, row in read_rows(source):
        if "prompt" not in row:
            raise DataError(location, "missing field 'prompt' (expected a string or chat messages)")
        prompts.append(as_messages(row["prompt"], location))
    return prompts


def sample_items(model: str, prompts: list[tuple[dict, ...]], k: int, config: GenerationConfig) -> list[dict]:
    """``{"prompt", "responses"}`` rows with ``k`` replies per prompt: the i-th reply of every prompt
    comes from one ``HFGenerator.generate`` call seeded ``config.seed + i``."""
    from alignkit.rl.generation import load_policy_generator

    generator = load_policy_generator(model)
    samples = [generator.generate(prompts, replace(config, seed=config.seed + i)) for i in range(k)]
    return [{"prompt": list(prompt), "responses": [samples[i][n].text for i in range(k)]}
            for n, prompt in enumerate(prompts)]
