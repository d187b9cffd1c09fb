"""The reference model π_ref: the frozen starting policy that the DPO family (and RL's KL penalty)
measure the policy against. Three ways to get its log-probabilities:

- :class:`FrozenCopy`: a second copy of the starting model, frozen and in eval mode (2× weights).
- :class:`DisabledAdapter`: with LoRA, the policy itself with its adapters switched off (peft's
  ``disable_adapter``); LoRA's B starts at zero, so this *is* the starting model, at no memory cost.
- :class:`Precomputed`: one pass over the data before training (:func:`precompute_reference_logps`),
  the values carried in each batch as ``reference_logps``; cached on disk and reused on resume.

Each strategy's ``logps(policy, batch, prefix)`` returns the summed log-probability of every
sequence of ``batch`` (keys ``{prefix}input_ids``, ``{prefix}attention_mask``, ``{prefix}labels``, or
the shared-prefix layout of :mod:`alignkit.data.shared_prefix`), shape (B,), without gradient. The two
model strategies also give per-token values, ``token_logps(policy, batch, temperature)``, shape
(B, T - 1), for RL's KL penalty.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from alignkit.data.collate import collate
from alignkit.io import atomic_write_bytes
from alignkit.models.attention import model_attention_mask
from alignkit.models.output_layer import logits_at
from alignkit.tensors import gathered_sequence_logprobs, sequence_logprobs, token_logprobs

CACHE_FILE = "reference_logps.safetensors"


def model_sequence_logprobs(
    model, batch: dict[str, torch.Tensor], prefix: str = ""
) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ over labelled tokens of log π(token | context) for each sequence of ``batch``, and the number
    of labelled tokens, each (B,), with gradient when enabled.

    Two layouts: padded sequences (keys ``{prefix}input_ids``, ``attention_mask``, ``labels``), or
    groups sharing a prefix (:mod:`alignkit.data.shared_prefix`, keys ``target_*``), where only the
    positions that predict a labelled token go through the output layer (:func:`logits_at`).
    """
    if "target_sequence" not in batch:
        logits = model(
            input_ids=batch[f"{prefix}input_ids"], attention_mask=batch[f"{prefix}attention_mask"], use_cache=False
        ).logits
        return sequence_logprobs(logits, batch[f"{prefix}labels"])
    input_ids = batch["input_ids"]
    mask = model_attention_mask(model, batch["attention_mask"])
    logits = logits_at(model, batch["target_row"], batch["target_column"], input_ids=input_ids, attention_mask=mask,
                       position_ids=batch["position_ids"], use_cache=False,
                       logits_to_keep=input_ids.shape[1] - int(batch["logits_from"]))
    return gathered_sequence_logprobs(logits, batch["target_token"], batch["target_sequence"],
                                      int(batch["num_sequences"]))


def sequence_logps(model, batch: dict[str, torch.Tensor], prefix: str = "") -> torch.Tensor:
    """Σ over labelled tokens of log π(token | context) for each sequence of ``batch``, shape (B,)."""
    return model_sequence_logprobs(model, batch, prefix)[0]


def token_logps(model, batch: dict[str, torch.Tensor], temperature: float = 1.0) -> torch.Tensor:
    """log π(token | context) of every labelled token of ``batch``, (B, T - 1), 0 elsewhere.

    When the batch carries ``logits_from`` (s: no labelled token before position s + 1), only the
    logits of positions ≥ s are computed (``logits_to_keep``), which skips the output layer on prompts.
    """
    start = int(batch.get("logits_from", 0))
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False,
                   logits_to_keep=batch["input_ids"].shape[1] - start).logits
    return logprobs_from(logits, batch["labels"], start, temperature)


def logprobs_from(logits: torch.Tensor, labels: torch.Tensor, start: int, temperature: float = 1.0) -> torch.Tensor:
    """:func:`token_logprobs` of logits kept from position ``start`` on, zero-filled back to (B, T - 1)."""
    logps = token_logprobs(logits, labels[:, start:], temperature=temperature)[0]
    return torch.nn.functional.pad(logps, (start, 0))


def unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself), for passes without gradient."""
    return getattr(model, "module", model)


class Reference(Protocol):
    def logps(self, policy, batch: dict[str, torch.Tensor], prefix: str = "") -> torch.Tensor: ...


class FrozenCopy:
    """π_ref as a separate, frozen model (any architecture the tokenizer fits)."""

    def __init__(self, model: torch.nn.Module, device: torch.device):
        self.model = model.to(device).eval().requires_grad_(False)

    @torch.no_grad()
    def logps(self, policy, batch, prefix=""):
        return sequence_logps(self.model, batch, prefix)

    @torch.no_grad()
    def token_logps(self, policy, batch, temperature=1.0):
        return token_logps(self.model, batch, temperature)


class DisabledAdapter:
    """π_ref = the LoRA policy with its adapters disabled for the duration of one forward pass."""

    @torch.no_grad()
    def logps(self, policy, batch, prefix=""):
        peft_model = unwrapped(policy)
        with peft_model.disable_adapter():
            return sequence_logps(peft_model, batch, prefix)

    @torch.no_grad()
    def token_logps(self, policy, batch, temperature=1.0):
        peft_model = unwrapped(policy)
        with peft_model.disable_adapter():
            return token_logps(peft_model, batch, temperature)


class Precomputed:
    """π_ref's log-probs read from the batch, where the collator put the precomputed values."""

    def logps(self, policy, batch, prefix=""):
        return batch[f"{prefix}reference_logps"]


@torch.no_grad()
def precompute_reference_logps(
    model, splits: dict[str, list], pad_token_id: int, *, batch_size: int, device: torch.device,
    cache_dir: Path, model_name: str,
) -> None:
    """Fill ``row.reference_logps`` for every row of every split with ``model``'s summed log-probs.

    Rows need ``sequences`` and a settable ``reference_logps``. The values are saved to
    ``cache_dir/reference_logps.safetensors`` with a fingerprint of the model name and every token id
    and label, and read back instead of recomputed when the fingerprint matches (a resumed run).
    """
    path = Path(cache_dir) / CACHE_FILE
    fingerprint = _fingerprint(model_name, splits)
    cached = _read_cache(path, fingerprint)
    was_training = model.training
    model.eval()
    tensors = {}
    for name, rows in splits.items():
        sequences = [s for row in rows for s in row.sequences]
        values = cached[name] if name in cached else _logps_of(model, sequences, pad_token_id, batch_size, device)
        tensors[name] = values
        flat = iter(values.tolist())
        for row in rows:
            row.reference_logps = tuple(next(flat) for _ in row.sequences)
    model.train(was_training)
    if set(cached) != set(tensors):
        atomic_write_bytes(path, safetensors_bytes(tensors, metadata={"fingerprint": fingerprint}))


def _logps_of(model, sequences: list, pad_token_id: int, batch_size: int, device: torch.device) -> torch.Tensor:
    values = [torch.zeros(0)]
    for i in range(0, len(sequences), batch_size):
        batch = {k: v.to(device) for k, v in collate(sequences[i : i + batch_size], pad_token_id).items()}
        values.append(sequence_logps(model, batch).float().cpu())
    return torch.cat(values)


def _fingerprint(model_name: str, splits: dict[str, list]) -> str:
    digest = hashlib.sha256(model_name.encode())
    for name, rows in sorted(splits.items()):
        digest.update(name.encode())
        for row in rows:
            for sequence in row.sequences:
                digest.update(torch.tensor(sequence.input_ids, dtype=torch.int64).numpy().tobytes())
                digest.update(torch.tensor(sequence.labels, dtype=torch.int64).numpy().tobytes())
    return digest.hexdigest()


def _read_cache(path: Path, fingerprint: str) -> dict[str, torch.Tensor]:
    """The cached splits when the file exists and was computed from exactly these inputs, else {}."""
    if not path.exists():
        return {}
    with safe_open(str(path), framework="pt") as handle:
        if (handle.metadata() or {}).get("fingerprint") != fingerprint:
            return {}
    return load_file(str(path))
