"""The simulator: what one person's ranking does to a reward model and to a policy.

:meth:`Simulator.sample` draws K responses to a prompt from the policy (the default small model).
Given a prompt, K responses and ranks (1 = best), :meth:`Simulator.update`

1. scores every response with the reward model, a new scalar head on the policy's own final hidden
   state at the last token (the trunk is shared and frozen, so one forward pass gives every feature),
   takes ``rm_steps`` Adam steps on the ranking's pairs with alignkit's Bradley-Terry loss
   (``losses.reward.bradley_terry_loss``), and scores again; the head keeps what it learned;
2. from the same forward pass, computes the policy's log-probability of each response, the DPO loss
   on the same pairs (``losses.preference.dpo_loss``, the reference being the policy as it is), its
   gradient, and the log-probabilities under the weights one SGD step of ``dpo_lr`` would give. The
   policy itself is not changed (the stepped weights are used through ``torch.func.functional_call``).

A submission costs one forward and one backward pass of the policy and one forward pass of the
stepped weights (``benchmarks/simulator_latency.py`` times it). Calls are serialised with a lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
from torch.func import functional_call

from alignkit.config import GenerationConfig, ModelConfig
from alignkit.data.collate import collate
from alignkit.data.comparisons import tokenize_responses
from alignkit.data.records import as_messages, ranking_to_pairs
from alignkit.losses.preference import dpo_loss
from alignkit.losses.reward import bradley_terry_loss
from alignkit.models.loading import load_causal_lm, load_tokenizer, resolve_model_path
from alignkit.models.reference import logprobs_from
from alignkit.rl.generation import HFGenerator
from alignkit.tensors import IGNORE_INDEX


@dataclass(frozen=True)
class SimulationResult:
    rewards_before: list[float]
    rewards_after: list[float]
    logp_before: list[float]
    logp_after: list[float]
    pairs: list[tuple[int, int]]
    rm_loss_before: float
    rm_loss_after: float
    dpo_loss: float


class Simulator:
    """The policy ``model`` and a reward head on its final hidden state, on CPU in float32."""

    def __init__(self, model: str, *, rm_steps: int = 5, rm_lr: float = 1e-2, dpo_beta: float = 0.1,
                 dpo_lr: float = 1e-2, max_length: int = 256):
        path = resolve_model_path(model)
        self.tokenizer = load_tokenizer(path)
        self.policy = load_causal_lm(ModelConfig(name=path))
        config = self.policy.config
        self.head = torch.nn.Linear(config.hidden_size, 1, bias=False)
        torch.nn.init.normal_(self.head.weight, std=getattr(config, "initializer_range", 0.02))
        self.optimizer = torch.optim.Adam(self.head.parameters(), lr=rm_lr)
        self.rm_steps, self.dpo_beta, self.dpo_lr, self.max_length = rm_steps, dpo_beta, dpo_lr, max_length
        self.lock = threading.Lock()

    def sample(self, prompt: str, k: int = 3, *, seed: int = 0, max_new_tokens: int = 48) -> list[str]:
        """``k`` replies to ``prompt`` sampled from the policy (temperature 0.9, seeded)."""
        config = GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.9, seed=seed, batch_size=k)
        with self.lock:
            completions = HFGenerator(self.policy, self.tokenizer).generate([as_messages(prompt, "simulator")] * k,
                                                                           config)
        return [c.text.strip() or "(empty reply)" for c in completions]

    def _batch(self, prompt: str, responses: list[str]) -> dict[str, torch.Tensor]:
        messages = as_messages(prompt, "simulator")
        rows = tokenize_responses(messages, responses, self.tokenizer, self.max_length, "simulator")
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        return collate(rows, pad)

    def update(self, prompt: str, responses: list[str], ranks: list[int]) -> SimulationResult:
        """Train the reward head on the ranking and simulate one DPO step (see the module doc).
        Raises DataError when the ranks tie every response (no pair to learn from)."""
        pairs, _ties = ranking_to_pairs(ranks, "simulator")
        batch = self._batch(prompt, responses)
        better = torch.tensor([p[0] for p in pairs])
        worse = torch.tensor([p[1] for p in pairs])
        with self.lock:
            out = self.policy(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                              output_hidden_states=True, logits_to_keep=self._logits_to_keep(batch))
            last = batch["attention_mask"].sum(-1) - 1
            features = out.hidden_states[-1][torch.arange(len(responses)), last].detach()
            before, rm_before, after, rm_after = self._train_reward(features, better, worse)
            logp_before, logp_after, loss = self._dpo_step(batch, out.logits, better, worse)
        return SimulationResult(before, after, logp_before, logp_after, pairs, rm_before, rm_after, loss)

    def _train_reward(self, features, better, worse):
        """``rm_steps`` Adam steps of the head on the pairs; rewards and losses before and after."""
        with torch.no_grad():
            before = self.head(features).squeeze(-1)
        loss_before = bradley_terry_loss(before[better], before[worse]).mean().item()
        for _ in range(self.rm_steps):
            self.optimizer.zero_grad()
            rewards = self.head(features).squeeze(-1)
            bradley_terry_loss(rewards[better], rewards[worse]).mean().backward()
            self.optimizer.step()
        with torch.no_grad():
            after = self.head(features).squeeze(-1)
        loss_after = bradley_terry_loss(after[better], after[worse]).mean().item()
        return before.tolist(), loss_before, after.tolist(), loss_after

    @staticmethod
    def _logits_to_keep(batch) -> int:
        """Logits are needed from the last prompt token on (the replies share one prompt)."""
        first_reply_token = int((batch["labels"] != IGNORE_INDEX).float().argmax(dim=1).min())
        return batch["input_ids"].shape[1] - (first_reply_token - 1)

    def _logps(self, logits, batch) -> torch.Tensor:
        start = batch["input_ids"].shape[1] - logits.shape[1]
        return logprobs_from(logits, batch["labels"], start).sum(-1)

    def _dpo_step(self, batch, logits, better, worse):
        params = dict(self.policy.named_parameters())
        logps = self._logps(logits, batch)
        reference = logps.detach()
        loss = dpo_loss(logps[better], logps[worse], reference[better], reference[worse], self.dpo_beta).mean()
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        stepped = {name: p.detach() - self.dpo_lr * g if g is not None else p.detach()
                   for (name, p), g in zip(params.items(), grads, strict=True)}
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                  "logits_to_keep": logits.shape[1]}
        with torch.no_grad():
            after = self._logps(functional_call(self.policy, stepped, (), inputs).logits, batch)
        return reference.tolist(), after.tolist(), loss.item()
