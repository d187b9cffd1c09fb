"""Sampling replies from a policy: the :class:`GenerationBackend` seam and its transformers implementation.

Whatever samples from a policy (win rates, RL rollouts, AI feedback) asks a backend for one reply per
prompt. :class:`HFGenerator` runs ``model.generate`` with a KV cache on the model's own device. Online
RL builds its backend once (``run_rl``), hands it to the rollout collector, and calls its
``sync_weights`` after each iteration's updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from transformers import GenerationConfig as SamplingConfig
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from alignkit.config import GenerationConfig, ModelConfig
from alignkit.console import console
from alignkit.data.tokenize import tokenize_prompt
from alignkit.errors import AlignkitError
from alignkit.models.loading import load_model_and_tokenizer, model_folder

END_OF_TURN = "<|im_end|>"  # ChatML's end of an assistant turn (SmolLM2's eos too)

# ``generate`` fills every setting a call leaves unset from the model's generation_config.json, so a
# model's repetition penalty, n-gram ban or top-k would reshape the distribution replies are drawn from
# without the caller's config saying so (and RL's log-probabilities of its own samples would be off-policy).
# Each call sets these to the value that switches them off (min_new_tokens 0 also overrides a min_length) ...
NEUTRAL_SETTINGS = {
    "repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0, "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0,
    "min_new_tokens": 0, "guidance_scale": 1.0, "remove_invalid_values": False, "renormalize_logits": False,
    "num_beams": 1, "num_return_sequences": 1,
}
# ... and refuses a model whose generation_config sets one of these, which are off only when unset.
UNSETTABLE = (
    "min_p", "top_h", "sequence_bias", "bad_words_ids", "suppress_tokens", "begin_suppress_tokens",
    "forced_bos_token_id", "forced_eos_token_id", "exponential_decay_length_penalty", "watermarking_config",
    "stop_strings", "max_time", "prompt_lookup_num_tokens", "token_healing",
)


@dataclass(frozen=True)
class Completion:
    """One sampled reply.

    ``token_ids``: the generated tokens, up to and including the stop token when there is one (no
    padding); ``num_tokens`` is their count. ``text``: those tokens decoded, special tokens skipped.
    ``finished``: the reply ended with a stop token (eos or ``<|im_end|>``) within ``max_new_tokens``;
    False when it was cut at ``max_new_tokens``. ``logprobs``: the sampler's log-probability of each
    token under the distribution it was drawn from (after temperature, top-k and top-p; greedy: the
    model's own), when the backend reports them (not compared by ``==``).
    """

    text: str
    token_ids: tuple[int, ...]
    num_tokens: int
    finished: bool
    logprobs: tuple[float, ...] | None = field(default=None, compare=False)


class GenerationBackend(Protocol):
    """Samples one reply per prompt. This is the seam where a faster engine (vLLM on a GPU) plugs in:
    anything with these methods can stand in for :class:`HFGenerator`. Each completion carries its
    token ids and, for RL, the sampler's log-probability of each token."""

    def generate(self, prompts: Sequence[tuple[dict, ...]], config: GenerationConfig) -> list[Completion]:
        """One completion per prompt, in the order of ``prompts``.

        A prompt is a tuple of chat messages (as :attr:`~alignkit.data.records.PreferencePair.prompt`),
        rendered with the model's chat template and its generation prompt (the assistant header).
        """
        ...

    def generate_ids(self, rows: Sequence[Sequence[int]], config: GenerationConfig) -> list[Completion]:
        """One completion per prompt given as token ids (already rendered and cut), in input order."""
        ...

    def sync_weights(self, model: PreTrainedModel) -> None:
        """Sample from ``model``'s current weights from now on: called with the policy after each RL
        iteration's updates. A backend that holds its own copy of the weights (a vLLM engine or server)
        loads them here; one that samples from ``model`` itself has nothing to do."""
        ...


class HFGenerator:
    """:class:`GenerationBackend` over a transformers causal LM and its tokenizer.

    Prompts are left-padded and batched by length (``config.batch_size`` prompts of similar length per
    ``model.generate`` call); a reply stops at the tokenizer's eos or ``<|im_end|>``. Temperature 0 is
    greedy decoding; otherwise sampling with ``temperature``, ``top_p`` and ``top_k``. Each call seeds
    a private copy of torch's RNG with ``config.seed`` (the caller's RNG state is left as it was), so
    the same seed, prompts and batch size give the same replies on CPU; vary the seed (e.g. seed + step)
    for fresh samples. Nothing else shapes the distribution: the sampling settings of the model's
    generation_config (repetition penalty, n-gram ban, top-k, ...) are switched off, and a model whose
    generation_config sets one that cannot be switched off (``UNSETTABLE``) is refused. Each completion
    carries the sampler's log-probabilities of its tokens.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase):
        self.model, self.tokenizer = model, tokenizer
        self.stop_ids = sorted({tokenizer.eos_token_id, tokenizer.get_vocab().get(END_OF_TURN)} - {None})
        if not self.stop_ids:
            raise AlignkitError(f"tokenizer of {tokenizer.name_or_path}: no eos or {END_OF_TURN} token to stop at")
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.stop_ids[0]

    def sync_weights(self, model: PreTrainedModel) -> None:
        """Nothing to do: this backend samples in process from the model it was built with, the one
        being trained, so every update is already in its weights (another model is an error)."""
        if model is not self.model:
            raise AlignkitError(f"HFGenerator samples from the model it was built with ({self.model.name_or_path}) "
                                "and cannot take another's weights; build it from the policy being trained")

    @torch.no_grad()
    def generate(self, prompts: Sequence[tuple[dict, ...]], config: GenerationConfig) -> list[Completion]:
        """One completion per prompt, in input order. A prompt longer than ``config.max_prompt_length``
        tokens loses its oldest tokens (how many prompts and tokens is printed). The model is run in
        eval mode and left in the mode it had."""
        return self.generate_ids(prompt_token_rows(prompts, self.tokenizer, config.max_prompt_length), config)

    @torch.no_grad()
    def generate_ids(self, rows: Sequence[Sequence[int]], config: GenerationConfig) -> list[Completion]:
        """One completion per prompt given as token ids, in input order (sampling as :meth:`generate`)."""
        rows = [list(row) for row in rows]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        results: dict[int, Completion] = {}
        was_training = self.model.training
        device = self.model.device
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(config.seed)
                for start in range(0, len(order), config.batch_size):
                    chosen = order[start : start + config.batch_size]
                    results.update(zip(chosen, self._generate_batch([rows[i] for i in chosen], config),
                                       strict=True))
        finally:
            self.model.train(was_training)
        return [results[i] for i in range(len(rows))]

    def _generate_batch(self, rows: list[list[int]], config: GenerationConfig) -> list[Completion]:
        """Completions of token rows, in the order of ``rows``."""
        ids, mask = left_pad(rows, self.pad_id, self.model.device)
        recorder = SampledLogprobs()
        out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=self._sampling_config(config),
                                  logits_processor=LogitsProcessorList([*sampling_warpers(config), recorder]))
        new = out[:, ids.shape[1] :]
        logprobs = recorder.of(new).tolist()
        return [self._completion(tokens.tolist(), values) for tokens, values in zip(new, logprobs, strict=True)]

    def _sampling_config(self, config: GenerationConfig) -> SamplingConfig:
        """Exactly what ``config`` asks (the length, sampling or greedy, the stop and pad tokens); every
        setting of the model's generation_config that would shape the distribution switched off.
        Temperature, top-k and top-p are applied by :func:`sampling_warpers`, ahead of the recorder."""
        model_config = self.model.generation_config
        refused = {key: value for key in UNSETTABLE if (value := getattr(model_config, key, None)) is not None}
        if refused:
            raise AlignkitError(
                f"{self.model.name_or_path}: its generation_config sets {refused}, which would change the "
                "distribution replies are sampled from and cannot be switched off per call; remove "
                f"{', '.join(refused)} from its generation_config.json")
        sampling = {"do_sample": False}  # greedy decoding reads none of the sampling settings
        if config.temperature > 0:
            sampling = {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0}
        return SamplingConfig(max_new_tokens=config.max_new_tokens, eos_token_id=self.stop_ids,
                              pad_token_id=self.pad_id, use_cache=True, **sampling, **NEUTRAL_SETTINGS)

    def _completion(self, new: list[int], logprobs: list[float]) -> Completion:
        """A completion from the generated tokens of one row (padding after the stop token dropped)."""
        stop = next((t for t, token in enumerate(new) if token in self.stop_ids), None)
        kept = new if stop is None else new[: stop + 1]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return Completion(text=text, token_ids=tuple(kept), num_tokens=len(kept), finished=stop is not None,
                          logprobs=tuple(logprobs[: len(kept)]))


def sampling_warpers(config: GenerationConfig) -> list[LogitsProcessor]:
    """Temperature, then top-k and top-p when set (transformers' order), for sampling; none for greedy."""
    if config.temperature == 0:
        return []
    warpers: list[LogitsProcessor] = [TemperatureLogitsWarper(config.temperature)]
    if config.top_k > 0:
        warpers.append(TopKLogitsWarper(config.top_k))
    if config.top_p < 1:
        warpers.append(TopPLogitsWarper(config.top_p))
    return warpers


class SampledLogprobs(LogitsProcessor):
    """The last logits processor of a ``generate`` call: it keeps each step's final log-probabilities
    until the next step shows which token was drawn from them, so only one (B, V) tensor is held."""

    def __init__(self):
        self.pending: torch.Tensor | None = None
        self.values: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.pending is not None:
            self.values.append(self.pending.gather(1, input_ids[:, -1:]).squeeze(1))
        self.pending = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def of(self, new_tokens: torch.Tensor) -> torch.Tensor:
        """(B, S) log-probabilities of the S tokens generated per row (``generate``'s new columns)."""
        if len(self.values) < new_tokens.shape[1]:  # the last step's token was never fed back
            self.values.append(self.pending.gather(1, new_tokens[:, -1:]).squeeze(1))
        return torch.stack(self.values[: new_tokens.shape[1]], dim=1).cpu()


def prompt_token_rows(prompts: Sequence[tuple[dict, ...]], tokenizer, max_prompt_length: int) -> list[list[int]]:
    """Each prompt rendered with the chat template and its assistant header, as token ids; a prompt
    longer than ``max_prompt_length`` loses its oldest tokens (how many prompts and tokens is printed)."""
    rows = [tokenize_prompt(prompt, tokenizer) for prompt in prompts]
    cut = [max(0, len(row) - max_prompt_length) for row in rows]
    if any(cut):
        console.print(f"[yellow]generation: {sum(n > 0 for n in cut)} of {len(rows)} prompts longer than "
                      f"{max_prompt_length} tokens ({sum(cut)} tokens cut from the left)")
    return [row[n:] for row, n in zip(rows, cut, strict=True)]


def left_pad(rows: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` of ``rows`` padded on the left to the longest, on ``device``."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return ids.to(device), mask.to(device)


def load_policy_generator(path: str | Path, device: str | torch.device | None = None) -> HFGenerator:
    """An :class:`HFGenerator` for a policy given as a run folder (its ``model/``), a model folder, or
    any model name :func:`~alignkit.models.loading.resolve_model_path` accepts; in float32, moved to
    ``device`` when given."""
    model, tokenizer = load_model_and_tokenizer(ModelConfig(name=str(model_folder(path))), device)
    return HFGenerator(model, tokenizer)
