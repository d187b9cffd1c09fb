"""The simulator: what one person's ranking does to a reward model and to a policy.

:meth:`Simulator.sample` draws K responses to a prompt from the policy (the default small model).
Given a prompt, K responses and ranks (1 = best), :meth:`Simulator.update`

1. scores every response with the reward model, takes ``rm_steps`` Adam steps on the ranking's pairs
   with alignkit's Bradley-Terry loss (``losses.reward.bradley_terry_loss``; only the scalar head
   trains, so a step costs one forward pass of the frozen backbone), and scores again; the reward
   model keeps what it learned for the next ranking;
2. computes the policy's log-probability of each response, the DPO loss on the same pairs
   (``losses.preference.dpo_loss``, the reference being the policy as it is), its gradient, and the
   log-probabilities under the weights one SGD step of ``dpo_lr`` would give. The policy itself is
   not changed (the stepped weights are used through ``torch.func.functional_call``).

Calls are serialised with a lock; on CPU a tiny model answers in well under a second, SmolLM2-135M
in a few seconds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
from torch.func import functional_call

from alignkit.config import GenerationConfig, LoraConfig, ModelConfig
from alignkit.data.collate import collate
from alignkit.data.comparisons import tokenize_responses
from alignkit.data.records import as_messages
from alignkit.losses.preference import dpo_loss, sequence_logprobs
from alignkit.losses.reward import bradley_terry_loss, ranking_to_pairs
from alignkit.models.loading import load_causal_lm, load_tokenizer, resolve_model_path
from alignkit.models.reward import load_reward_model
from alignkit.rl.generation import HFGenerator


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
    """A reward model (new scalar head on ``model``) and the policy ``model``, on CPU in float32."""

    def __init__(self, model: str, *, rm_steps: int = 5, rm_lr: float = 1e-2, dpo_beta: float = 0.1,
                 dpo_lr: float = 1e-2, max_length: int = 256):
        path = resolve_model_path(model)
        self.tokenizer = load_tokenizer(path)
        self.reward_model = load_reward_model(ModelConfig(name=path), LoraConfig(), "last")
        self.policy = load_causal_lm(ModelConfig(name=path))
        self.head = self.reward_model.hf_model.score
        for param in self.reward_model.parameters():
            param.requires_grad_(False)
        for param in self.head.parameters():
            param.requires_grad_(True)
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
        """Train the reward model on the ranking and simulate one DPO step (see the module doc).
        Raises DataError when the ranks tie every response (no pair to learn from)."""
        pairs, _ties = ranking_to_pairs(ranks, "simulator")
        batch = self._batch(prompt, responses)
        better = torch.tensor([p[0] for p in pairs])
        worse = torch.tensor([p[1] for p in pairs])
        with self.lock:
            before, rm_before, after, rm_after = self._train_reward(batch, better, worse)
            logp_before, logp_after, loss = self._dpo_step(batch, better, worse)
        return SimulationResult(before, after, logp_before, logp_after, pairs, rm_before, rm_after, loss)

    def _rewards(self, batch) -> torch.Tensor:
        return self.reward_model(batch["input_ids"], batch["attention_mask"])

    def _train_reward(self, batch, better, worse):
        with torch.no_grad():
            before = self._rewards(batch)
        loss_before = bradley_terry_loss(before[better], before[worse]).mean().item()
        for _ in range(self.rm_steps):
            self.optimizer.zero_grad()
            rewards = self._rewards(batch)
            bradley_terry_loss(rewards[better], rewards[worse]).mean().backward()
            self.optimizer.step()
        with torch.no_grad():
            after = self._rewards(batch)
        loss_after = bradley_terry_loss(after[better], after[worse]).mean().item()
        return before.tolist(), loss_before, after.tolist(), loss_after

    def _logps(self, batch, params=None) -> torch.Tensor:
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        logits = (self.policy(**inputs) if params is None else functional_call(self.policy, params, (), inputs)).logits
        return sequence_logprobs(logits, batch["labels"])[0]

    def _dpo_step(self, batch, better, worse):
        params = dict(self.policy.named_parameters())
        logps = self._logps(batch)
        reference = logps.detach()
        loss = dpo_loss(logps[better], logps[worse], reference[better], reference[worse], self.dpo_beta).mean()
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        stepped = {name: p.detach() - self.dpo_lr * g if g is not None else p.detach()
                   for (name, p), g in zip(params.items(), grads, strict=True)}
        with torch.no_grad():
            after = self._logps(batch, stepped)
        return reference.tolist(), after.tolist(), loss.item()
