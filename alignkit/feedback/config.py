"""Configs of the AI-feedback commands (``alignkit cai revise`` and ``alignkit cai label``)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from alignkit.config import GenerationConfig, option


@dataclasses.dataclass
class FeedbackModelConfig:
    """The feedback model that samples replies, critiques and revisions and answers comparison questions:
    a local Hugging Face causal LM, or a model behind an OpenAI-compatible HTTP endpoint."""

    backend: Literal["hf", "openai"] = option(
        "hf", "hf: a local causal LM run with transformers. openai: any OpenAI-compatible HTTP endpoint (OpenAI, "
        "vLLM, llama.cpp server, ...)."
    )
    model: str = option(
        "smollm2-135m",
        "hf: the model, in any form model.name accepts (or a run folder holding model/). openai: the model name "
        "sent with each request.",
    )
    dtype: Literal["float32", "bfloat16", "float16"] = option(
        "float32", "hf: weights and compute dtype.", only="backend == hf"
    )
    base_url: str | None = option(
        None, "openai: the endpoint's base URL, e.g. http://127.0.0.1:8000/v1 (null: the OPENAI_BASE_URL variable).",
        only="backend == openai",
    )
    api_key_env: str = option(
        "OPENAI_API_KEY", "openai: environment variable holding the API key, sent as a bearer token (unset: none).",
        only="backend == openai",
    )
    api: Literal["completions", "chat"] = option(
        "completions",
        "openai: /v1/completions (chats rendered as 'Human: ... Assistant:' text; options scored exactly with "
        "echo and logprobs) or /v1/chat/completions (options scored from the top_logprobs of the reply's first "
        "token).",
        only="backend == openai",
    )
    timeout: float = option(
        60.0, "openai: seconds before a request times out (it is then retried).", min=0.001, only="backend == openai"
    )
    max_retries: int = option(
        4, "openai: retries of a request that timed out, could not connect or got HTTP 408, 429 or 5xx.", min=0,
        only="backend == openai",
    )
    backoff: float = option(
        1.0, "openai: seconds before the first retry, doubled before each further one (exponential back-off).", min=0,
        only="backend == openai",
    )
    concurrency: int = option(4, "openai: requests in flight at once.", min=1, only="backend == openai")
    top_logprobs: int = option(
        20, "openai chat: alternatives per token asked for when scoring options.", min=1, max=20,
        only=("backend == openai", "api == chat"),
    )
    cache: bool = option(
        True, "openai: keep every response on disk, keyed by the request, so a rerun sends no request twice.",
        only="backend == openai",
    )
    cache_dir: str | None = option(
        None, "openai: folder of the response cache (null: <output_dir>/cache).",
        only=("backend == openai", "cache == true"),
    )


@dataclasses.dataclass
class FeedbackDataConfig:
    """Where the prompts or pairs to give feedback on come from. Records are taken from the training
    split that alignkit rm/dpo make with the same seed and eval_fraction, so their held-out split stays unseen."""

    train: str = option(
        "hh-rlhf-harmless",
        "Prompts (cai revise; 'prompt' records) or preference pairs (cai label): a known short name, a "
        ".jsonl/.jsonl.gz/.parquet file, a local dataset folder, or a Hugging Face dataset id.",
    )
    eval_fraction: float = option(
        0.1, "Fraction of 'train' held out and never used here (the split of alignkit rm/dpo).", min=0, max=0.9
    )
    skip_examples: int = option(0, "Leave out this many records (after the split) before max_examples.", min=0)
    max_examples: int | None = option(None, "Use at most this many records (after the split).", min=1)
    on_error: Literal["raise", "skip"] = option(
        "skip", "A malformed record stops the run ('raise') or is skipped, counted and reported ('skip')."
    )


@dataclasses.dataclass
class ReviseSettings:
    rounds: int = option(
        1, "Critique -> revision rounds per reply; each round draws its own principle (seeded, recorded).", min=1
    )
    few_shot: int = option(
        0, "Critique/revision examples of the constitution shown first, as earlier turns of the chat.", min=0
    )


@dataclasses.dataclass
class LabelSettings:
    pairs_from: Literal["data", "policy"] = option(
        "data",
        "data: the preference pairs of data.train. policy: the prompts of data.train, each with two replies "
        "sampled from label.policy (seeds generation.seed and generation.seed + 1).",
    )
    policy: str = option(
        "smollm2-135m", "pairs_from policy: the model sampling the two replies.", only="pairs_from == policy"
    )
    swap: bool = option(
        True, "Ask again with the two replies in swapped order and average the two probabilities (position bias)."
    )
    chain_of_thought: bool = option(
        False, "Let the feedback model reason before it answers; its probabilities are then clamped (below)."
    )
    cot_clamp_low: float = option(
        0.4, "chain_of_thought: each ordering's probability is clamped to at least this.", min=0, max=1,
        only="chain_of_thought == true",
    )
    cot_clamp_high: float = option(
        0.6, "chain_of_thought: each ordering's probability is clamped to at most this.", min=0, max=1,
        only="chain_of_thought == true",
    )
    few_shot: int = option(0, "Comparison examples of the constitution shown first, as earlier turns.", min=0)
    human_labels: bool | None = option(
        None,
        "The input pairs' chosen reply is a human's choice, so agreement with humans is reported (null: true for "
        "pairs_from data, false for policy).",
    )


def _cai_generation() -> GenerationConfig:
    return GenerationConfig(max_new_tokens=96, temperature=0.7, batch_size=8)


@dataclasses.dataclass
class _FeedbackRunConfig:
    """What both AI-feedback commands share: the seed, the constitution, the data and the feedback model."""

    seed: int = option(0, "Seed of the held-out split (as train.seed of alignkit rm/dpo) and of the principle draws.")
    constitution: str = option(
        "default",
        "Principles and examples: 'default' (alignkit's own), 'cai-paper' (the Constitutional AI paper's prompts "
        "in the data folder's cai/), a folder holding those JSON files, or a YAML constitution file.",
    )
    data: FeedbackDataConfig = dataclasses.field(default_factory=FeedbackDataConfig)
    feedback: FeedbackModelConfig = dataclasses.field(default_factory=FeedbackModelConfig)
    generation: GenerationConfig = dataclasses.field(default_factory=_cai_generation)


@dataclasses.dataclass
class CAIReviseConfig(_FeedbackRunConfig):
    """Constitutional AI, supervised phase (Bai et al. 2022): sample a reply to each prompt, then let the
    feedback model critique it under a principle and revise it, for revise.rounds rounds. Writes the final
    revisions as demonstrations (sft.jsonl) and (initial reply, final revision) as preference pairs (pairs.jsonl)."""

    output_dir: str = option("runs/cai-revise", "Folder for sft.jsonl, pairs.jsonl, revisions.jsonl, report.json.")
    revise: ReviseSettings = dataclasses.field(default_factory=ReviseSettings)


@dataclasses.dataclass
class CAILabelConfig(_FeedbackRunConfig):
    """RLAIF preference labels (Bai et al. 2022; Lee et al. 2023): the feedback model answers a multiple-choice
    question under a sampled principle; the soft label is the normalised probability of the options. Writes
    pairs with soft labels (pairs.jsonl), per-pair details (labels.jsonl) and agreement figures (report.json)."""

    output_dir: str = option("runs/cai-label", "Folder for pairs.jsonl, labels.jsonl, report.json.")
    label: LabelSettings = dataclasses.field(default_factory=LabelSettings)
