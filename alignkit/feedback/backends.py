"""Feedback models behind one small interface: sample replies to chats, and score options.

:class:`HFFeedbackBackend` runs a local transformers causal LM (sampling through
:class:`~alignkit.rl.generation.HFGenerator`, option scores from one forward pass);
:class:`~alignkit.feedback.http_backend.OpenAIBackend` asks an OpenAI-compatible endpoint.
:func:`build_backend` makes the one a config names.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch

from alignkit.config import GenerationConfig, ModelConfig
from alignkit.errors import AlignkitError
from alignkit.feedback.config import FeedbackModelConfig
from alignkit.rl.generation import HFGenerator, left_pad, prompt_token_rows


class FeedbackBackend(Protocol):
    """What critique, revision and labelling ask of a feedback model. A query is a chat (a tuple of
    ``{"role", "content"}`` messages) ending with the user turn to answer."""

    def generate(self, queries: Sequence[tuple[dict, ...]], config: GenerationConfig) -> list[str]:
        """One sampled reply per query, in order, stripped of surrounding whitespace."""
        ...

    def option_logprobs(
        self, queries: Sequence[tuple[dict, ...]], options: Sequence[str], config: GenerationConfig
    ) -> list[list[float]]:
        """Per query, the log-probability of each option (e.g. ``"(A)"``) as the start of the reply."""
        ...


class HFFeedbackBackend:
    """:class:`FeedbackBackend` over a transformers causal LM and its tokenizer (chat template included).

    ``option_logprobs`` is exact, ``log p(option | query) = sum_t log p(option_t | query, option_<t)``, from
    one forward pass per query: each query is rendered with its assistant header (cut from the left to
    ``config.max_prompt_length`` tokens) and followed by the tokens all options share (``(`` of ``(A)`` and
    ``(B)``); the options' first own tokens are read from the last position, and any further tokens
    (``A)`` -> ``)``) from a short pass per option over a copy of the KV cache. ``config.batch_size`` queries
    of similar length go together, left-padded.
    """

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.generator = HFGenerator(model, tokenizer)

    def generate(self, queries: Sequence[tuple[dict, ...]], config: GenerationConfig) -> list[str]:
        return [c.text.strip() for c in self.generator.generate(queries, config)]

    @torch.no_grad()
    def option_logprobs(
        self, queries: Sequence[tuple[dict, ...]], options: Sequence[str], config: GenerationConfig
    ) -> list[list[float]]:
        option_ids = [self.tokenizer.encode(option, add_special_tokens=False) for option in options]
        if not option_ids or not all(option_ids):
            raise ValueError(f"options must be non-empty texts, got {list(options)!r}")
        shared = min(_common_prefix(option_ids), min(len(ids) for ids in option_ids) - 1)
        prefix, suffixes = option_ids[0][:shared], [ids[shared:] for ids in option_ids]
        prompts = prompt_token_rows(queries, self.tokenizer, config.max_prompt_length)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        scores: list[list[float]] = [[] for _ in prompts]
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(order), config.batch_size):
                chosen = order[start : start + config.batch_size]
                batch = self._score([prompts[i] + prefix for i in chosen], prefix, suffixes)
                for i, row in zip(chosen, batch, strict=True):
                    scores[i] = row
        finally:
            self.model.train(was_training)
        return scores

    def _score(self, rows: list[list[int]], prefix: list[int], suffixes: list[list[int]]) -> list[list[float]]:
        """Per row (a query followed by ``prefix``), the log-probability of ``prefix + suffix`` per suffix."""
        device = self.model.device
        ids, mask = left_pad(rows, self.generator.pad_id, device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                         logits_to_keep=len(prefix) + 1)
        logps = torch.log_softmax(out.logits.double(), dim=-1)  # (B, len(prefix) + 1, V)
        shared = sum(logps[:, j, token] for j, token in enumerate(prefix)) if prefix else 0.0
        columns = []
        for k, suffix in enumerate(suffixes):
            total = shared + logps[:, -1, suffix[0]]
            if len(suffix) > 1:  # the option's later tokens, after its first, from the cached query
                cache = out.cache if k == len(suffixes) - 1 else copy.deepcopy(out.cache)
                step = torch.tensor([suffix[:-1]] * len(rows), device=device)
                more = self.model(
                    input_ids=step, attention_mask=torch.cat([mask, torch.ones_like(step)], dim=1),
                    position_ids=positions[:, -1:] + 1 + torch.arange(step.shape[1], device=device),
                    cache=cache, use_cache=True,
                )
                later = torch.log_softmax(more.logits.double(), dim=-1)
                total = total + sum(later[:, j, token] for j, token in enumerate(suffix[1:]))
            columns.append(total)
        return torch.stack(columns, dim=1).tolist()


def _common_prefix(rows: list[list[int]]) -> int:
    """How many leading tokens all ``rows`` share."""
    n = 0
    while all(len(row) > n and row[n] == rows[0][n] for row in rows):
        n += 1
    return n


def build_backend(config: FeedbackModelConfig, output_dir: str | Path, device: str | None = None) -> FeedbackBackend:
    """The backend ``config`` names. hf: the model loaded on ``device`` (None: the GPU when there is one).
    openai: the endpoint, its cache under ``config.cache_dir`` or ``output_dir/cache``."""
    if config.backend == "hf":
        from alignkit.models.loading import load_model_and_tokenizer, model_folder

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        name = str(model_folder(config.model)) if Path(config.model).is_dir() else config.model
        model, tokenizer = load_model_and_tokenizer(ModelConfig(name=name, dtype=config.dtype), device)
        return HFFeedbackBackend(model, tokenizer)
    from alignkit.feedback.cache import RequestCache
    from alignkit.feedback.http_backend import OpenAIBackend

    base_url = config.base_url or os.environ.get("OPENAI_BASE_URL")
    if not base_url:
        raise AlignkitError("feedback.backend is 'openai' but no endpoint is given: set feedback.base_url "
                            "(e.g. http://127.0.0.1:8000/v1) or the OPENAI_BASE_URL variable")
    cache = RequestCache(Path(config.cache_dir or Path(output_dir) / "cache")) if config.cache else None
    return OpenAIBackend(
        base_url, config.model, api=config.api, api_key=os.environ.get(config.api_key_env) or None,
        timeout=config.timeout, max_retries=config.max_retries, backoff=config.backoff,
        concurrency=config.concurrency, top_logprobs=config.top_logprobs, cache=cache,
    )
