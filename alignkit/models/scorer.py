"""Scoring (prompt, response) pairs with a trained reward model or ensemble: the API later stages use."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from alignkit.data.collate import collate
from alignkit.data.comparisons import tokenize_response, tokenize_responses
from alignkit.data.records import as_messages
from alignkit.data.tokenize import TokenizedExample
from alignkit.errors import AlignkitError, DataError
from alignkit.models.combine import combine_ensemble, length_residual
from alignkit.models.loading import load_tokenizer
from alignkit.models.reward import ensemble_members, load_trained_reward_model
from alignkit.tensors import IGNORE_INDEX


class RewardScorer:
    """``score(prompts, responses) -> Tensor``: batched, without gradients, with the chat-template
    rendering used in training. An ensemble combines its members by ``combine``: ``mean``, ``min``
    (worst case) or ``mean_minus_std`` (mean - lam · std, an uncertainty penalty).

    ``length_normalise=True`` returns r - (slope · length + intercept), the residual of the
    least-squares fit of reward on response length (in tokens) that ``alignkit eval rm`` stores in
    the run's eval.json, so a policy gains nothing from length alone (Singhal et al. 2023).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        combine: str = "mean",
        lam: float = 1.0,
        batch_size: int = 8,
        max_length: int = 1024,
        device: str | torch.device = "cpu",
        length_normalise: bool = False,
    ):
        folders = ensemble_members(path)
        self.length_fit = _length_fit(Path(path)) if length_normalise else None
        self.members = [load_trained_reward_model(str(folder), device) for folder in folders]
        self.tokenizer = load_tokenizer(str(folders[0]))
        self.combine, self.lam = combine, lam
        self.batch_size, self.max_length, self.device = batch_size, max_length, torch.device(device)

    def member_scores(
        self, prompts: Sequence, responses: Sequence[str], finished: Sequence[bool] | None = None
    ) -> torch.Tensor:
        """Every member's reward for every (prompt, response), shape (members, N). ``finished``: per
        response, False for a reply cut before it ended, which is scored without the end-of-turn token
        the chat template would close it with (default: every reply finished). Each sequence is cut
        from the left on its own to fit ``max_length``."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        finished = [True] * len(responses) if finished is None else list(finished)
        if len(finished) != len(responses):
            raise ValueError(f"{len(responses)} responses but {len(finished)} finished flags")
        return self._scores([
            tokenize_response(as_messages(p, f"prompt {i}"), r, self.tokenizer, self.max_length, f"response {i}",
                              finished=done)
            for i, (p, r, done) in enumerate(zip(prompts, responses, finished, strict=True))
        ])

    def pair_member_scores(self, prompts: Sequence, chosen: Sequence[str], rejected: Sequence[str]) -> torch.Tensor:
        """Every member's reward for the chosen and the rejected reply of each pair, shape (members, 2, N).
        Both replies of a pair keep the same prompt, cut from the left by what the longer one needs (as
        reward-model training cuts them, :func:`~alignkit.data.comparisons.tokenize_responses`), so a
        pair is never compared under two different prompts."""
        if not len(prompts) == len(chosen) == len(rejected):
            raise ValueError(f"{len(prompts)} prompts, {len(chosen)} chosen and {len(rejected)} rejected replies")
        pairs = [tokenize_responses(as_messages(p, f"pair {i}"), (c, r), self.tokenizer, self.max_length, f"pair {i}")
                 for i, (p, c, r) in enumerate(zip(prompts, chosen, rejected, strict=True))]
        scores = self._scores([pair[0] for pair in pairs] + [pair[1] for pair in pairs])
        return scores.view(len(self.members), 2, len(pairs))

    @torch.no_grad()
    def _scores(self, rows: list[TokenizedExample]) -> torch.Tensor:
        """Every member's reward for every tokenised sequence, shape (members, N)."""
        # Batches of similar length waste little on padding; scores go back to the input order.
        order = sorted(range(len(rows)), key=lambda i: len(rows[i].input_ids))
        scores = torch.empty(len(self.members), len(rows))
        for start in range(0, len(rows), self.batch_size):
            chosen = order[start : start + self.batch_size]
            batch = collate([rows[i] for i in chosen], self.tokenizer.pad_token_id)
            response_mask = (batch["labels"] != IGNORE_INDEX).to(self.device)
            ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
            for m, model in enumerate(self.members):
                scores[m, chosen] = model(ids, mask, response_mask).cpu()
        return scores

    def fits(self, prompt, response: str) -> bool:
        """Whether ``response`` with its reply header fits in ``max_length`` tokens (the prompt is cut
        from the left as needed); :meth:`score` raises DataError on a response that does not."""
        try:
            tokenize_response(as_messages(prompt, "prompt"), response, self.tokenizer, self.max_length, "response")
        except DataError:
            return False
        return True

    def response_lengths(self, responses: Sequence[str]) -> torch.Tensor:
        """Response lengths in tokens (the length the diagnostics and the length fit use)."""
        return torch.tensor([len(self.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in responses])

    def score(self, prompts: Sequence, responses: Sequence[str], *, finished: Sequence[bool] | None = None,
              return_spread: bool = False):
        """Combined rewards, shape (N,); with ``return_spread`` also the members' std, shape (N,).
        ``finished`` as :meth:`member_scores`."""
        return self._combined(self.member_scores(prompts, responses, finished), responses, return_spread)

    def score_pairs(self, prompts: Sequence, chosen: Sequence[str], rejected: Sequence[str]):
        """Combined rewards of the chosen and the rejected replies, each (N,), and the members' std of all
        2N, chosen first: as :meth:`score`, each pair under one prompt cut (:meth:`pair_member_scores`)."""
        scores = self.pair_member_scores(prompts, chosen, rejected).flatten(1)
        combined, spread = self._combined(scores, [*chosen, *rejected], return_spread=True)
        return combined[: len(chosen)], combined[len(chosen) :], spread

    def _combined(self, scores: torch.Tensor, responses: Sequence[str], return_spread: bool):
        combined, spread = combine_ensemble(scores, self.combine, self.lam)
        if self.length_fit is not None:
            combined = length_residual(combined, self.response_lengths(responses), *self.length_fit)
        return (combined, spread) if return_spread else combined


def _length_fit(run_dir: Path) -> tuple[float, float]:
    """(slope, intercept) stored by ``alignkit eval rm`` in ``run_dir/eval.json``."""
    report = run_dir / "eval.json"
    fit = json.loads(report.read_text()).get("rm_eval", {}).get("length_fit") if report.is_file() else None
    if fit is None:
        raise AlignkitError(f"{run_dir}: no length fit in eval.json; run `alignkit eval rm --model {run_dir}` first")
    return fit["slope"], fit["intercept"]
