"""Reward models: a transformer with a scalar head, scored from pooled final hidden states.

The network is a Hugging Face ``AutoModelForSequenceClassification`` with one output (for the
Llama family: ``LlamaForSequenceClassification``, the backbone of the causal LM plus a linear
``score`` head), so a saved reward model is a plain Hugging Face folder. The reward of a sequence is

    r = w · h_pool,   h_pool = h_last (the last non-padding token)   or   mean_{t ∈ response} h_t

With ``last`` pooling and right padding this is exactly what ``LlamaForSequenceClassification``
itself returns for the sequence; ``mean`` is alignkit's option. The pooling is stored in the saved
config (``reward_pooling``) so a scorer uses what training used.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from accelerate.utils import set_seed
from peft import PeftModel
from torch import nn
from transformers import AutoModelForSequenceClassification, PreTrainedModel

from alignkit.config import LoraConfig, ModelConfig
from alignkit.console import console
from alignkit.errors import ConfigError
from alignkit.models.attention import model_attention_mask
from alignkit.models.loading import LoadInfo, load_pretrained_with_info, model_folder
from alignkit.models.lora import apply_lora

POOLINGS = ("last", "mean")
ENSEMBLE_FILE = "ensemble.json"


class RewardModel(nn.Module):
    """Wraps a one-output sequence-classification model (optionally with LoRA) as ``rewards(batch)``."""

    def __init__(self, net: PreTrainedModel | PeftModel, pooling: str = "last"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.net = net
        self.pooling = pooling
        self.hf_model.config.reward_pooling = pooling

    @property
    def hf_model(self) -> PreTrainedModel:
        """The transformers model (inside the peft wrapper when LoRA is on)."""
        return self.net.get_base_model() if isinstance(self.net, PeftModel) else self.net

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_mask: torch.Tensor | None = None,
        *, position_ids: torch.Tensor | None = None, ends: tuple[torch.Tensor, torch.Tensor] | None = None,
        replies: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Rewards of right-padded sequences, shape (B,). ``response_mask`` is needed for mean pooling.

        Or rewards of sequences laid out several to a row with ``position_ids`` and a 4-D mask
        (:mod:`alignkit.data.shared_prefix`), shape (S,): ``ends`` = (rows, columns) of each sequence's last
        token, and for mean pooling ``replies`` = (rows, columns, sequences) of every reply token.
        """
        pooled = self.pooled(input_ids, attention_mask, response_mask, position_ids=position_ids, ends=ends,
                             replies=replies)
        return self.hf_model.score(pooled).squeeze(-1).float()

    def pooled(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_mask: torch.Tensor | None = None,
        *, position_ids: torch.Tensor | None = None, ends: tuple[torch.Tensor, torch.Tensor] | None = None,
        replies: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """h_pool of each sequence, shape (B, hidden) or (S, hidden): what the score head reads. Mean pooling
        is (1/|R_s|) Σ_{t ∈ R_s} h_t over sequence s's reply tokens R_s in either layout."""
        model = self.hf_model
        backbone = getattr(model, model.base_model_prefix)
        hidden = backbone(input_ids=input_ids, attention_mask=model_attention_mask(model, attention_mask),
                          position_ids=position_ids, use_cache=False).last_hidden_state
        if ends is not None:
            if self.pooling == "last":
                return hidden[ends]
            if replies is None:
                raise ValueError("mean pooling of sequences sharing a row needs the reply tokens (replies=...)")
            rows, columns, sequences = replies
            sums = hidden.new_zeros(ends[0].numel(), hidden.size(-1)).index_add(0, sequences, hidden[rows, columns])
            counts = torch.bincount(sequences, minlength=ends[0].numel()).clamp(min=1)
            return sums / counts.unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "last":
            last = attention_mask.sum(-1) - 1
            return hidden[torch.arange(hidden.size(0), device=hidden.device), last]
        weights = response_mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def shared_layout(batch: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, ...]]:
    """The keyword arguments ``ends`` and ``replies`` of :meth:`RewardModel.forward` for a batch in the
    shared-prompt layout (:func:`~alignkit.data.shared_prefix.collate_shared_prefix`), on its device."""
    return {"ends": (batch["sequence_row"], batch["sequence_end"]),
            "replies": (batch["reply_row"], batch["reply_column"], batch["reply_sequence"])}


def keep_first_blocks(net: PreTrainedModel, blocks: int) -> None:
    """Cut ``net``'s backbone to its first ``blocks`` transformer blocks, in place; the final norm and the
    head then read block ``blocks``' output. The config says so (``num_hidden_layers``), so the saved
    folder is a plain, smaller model of the same class."""
    backbone = getattr(net, net.base_model_prefix)
    have = len(backbone.layers)
    if not 1 <= blocks <= have:
        raise ConfigError(f"reward.backbone_layers: {blocks} asks for more blocks than the model's {have}")
    backbone.layers = nn.ModuleList(backbone.layers[:blocks])
    net.config.num_hidden_layers = blocks
    if getattr(net.config, "layer_types", None) is not None:
        net.config.layer_types = net.config.layer_types[:blocks]


def load_reward_model(model_config: ModelConfig, lora: LoraConfig, pooling: str, seed: int,
                      backbone_layers: int | None = None) -> RewardModel:
    """A reward model to train, from a causal LM (a new head, randomly initialised from ``seed``, as are
    LoRA's adapters) or a saved reward model (its trained head), cut to its first ``backbone_layers``
    blocks when given. A new head is said in one line."""
    set_seed(seed)
    net, info = load_pretrained_with_info(model_config, AutoModelForSequenceClassification, num_labels=1)
    say_new_weights(net, info, model_config.name, seed)
    if backbone_layers is not None:
        keep_first_blocks(net, backbone_layers)
    if lora.enabled:
        net = apply_lora(net, lora, task_type="SEQ_CLS")
    return RewardModel(net, pooling)


def load_trained_reward_model(path: str, device: torch.device | str = "cpu") -> RewardModel:
    """A saved reward model folder, in eval mode, with the pooling it was trained with; a folder without
    a trained head (a causal LM) loads with a warning that names the head."""
    net, info = load_pretrained_with_info(ModelConfig(name=str(path)), AutoModelForSequenceClassification, device,
                                          num_labels=1)
    say_new_weights(net, info, path, None)
    return RewardModel(net, getattr(net.config, "reward_pooling", "last")).eval()


def say_new_weights(net: PreTrainedModel, info: LoadInfo, name: str, seed: int | None,
                    what: str = "reward") -> None:
    """transformers' load report in alignkit's words, for a ``what`` model (a new head on a backbone): with
    ``seed`` (a head made for training), one line naming the new head and its seed; without (a trained
    model), nothing, or a warning when the folder has no head. Backbone weights missing from the folder or
    left unused warn either way; the output layer of a causal LM (e.g. lm_head.weight), unused here, is
    not mentioned."""
    backbone = net.base_model_prefix + "."
    head = ", ".join(sorted(key for key in info.missing if not key.startswith(backbone)))
    unmatched = ", ".join(sorted(key for key in info.missing | info.unexpected if key.startswith(backbone)))
    if unmatched:
        console.print(f"[yellow]{what} model {name}: backbone weights missing from the folder or unused: {unmatched}")
    if head and seed is not None:
        console.print(f"{what} head {head}: new, randomly initialised (seed {seed})")
    elif head:
        console.print(f"[yellow]{what} model {name}: {head} not in the folder, so randomly initialised "
                      f"(not a trained {what} model?)")


def ensemble_members(path: str | Path) -> list[Path]:
    """The model folders of a reward model given as a folder, a run folder or an ensemble run folder
    (whose ``ensemble.json`` lists its members)."""
    path = Path(path)
    listing = path / ENSEMBLE_FILE
    if listing.is_file():
        return [path / member for member in json.loads(listing.read_text())["members"]]
    return [model_folder(path)]
