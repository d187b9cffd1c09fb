"""``alignkit eval winrate``: how often a judge prefers one policy's replies to another's.

Each policy samples one reply per prompt. A reward-model judge scores every (prompt, reply) and the
policy wins a prompt when its reply scores higher than the baseline's; an AI judge
(:mod:`alignkit.evaluate.ai_judge`) gives P(policy's reply better), and the policy wins when it is above
½. The interval is Wilson's score interval with continuity correction, ties counted as half a win
(:func:`~alignkit.evaluate.intervals.wilson_cc_interval`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from alignkit.config import GenerationConfig, to_dict
from alignkit.console import console, summary_table
from alignkit.data.records import Demonstration
from alignkit.data.sources import load_records
from alignkit.errors import AlignkitError
from alignkit.evaluate.ai_judge import AIJudge
from alignkit.evaluate.held_out import held_out_records
from alignkit.evaluate.intervals import normal_quantile, wilson_cc_interval
from alignkit.evaluate.side_by_side import (
    SIDES,
    Comparison,
    Judged,
    compare,
    free_memory,
    sample_sides,
    write_rows,
)
from alignkit.io import atomic_write_json


@dataclass(frozen=True)
class WinRate:
    """Wins, losses and ties of A over B on ``n`` prompts, the win rate and its confidence interval."""

    n: int
    wins: int
    losses: int
    ties: int
    rate: float
    ci_low: float
    ci_high: float


def win_rate(scores_a: torch.Tensor, scores_b: torch.Tensor, *, confidence: float = 0.95) -> WinRate:
    """Win rate of A over B from per-prompt scores (shape (n,) each; a tie is exact equality):

        rate = (wins + ties / 2) / n

    The interval is Wilson's score interval with continuity correction (Newcombe 1998, method 4; see
    :func:`~alignkit.evaluate.intervals.wilson_cc_interval`) of the proportion (wins + ties / 2) / n at
    ``confidence``. A tie's score ½ varies less than a win's or a loss's, so counting ties as half-wins
    under the binomial variance only widens the interval. It holds at small n and when every prompt is
    a win (or a loss): 5 wins out of 5 give [0.463, 1], not the point 1 a bootstrap gives.
    """
    if scores_a.shape != scores_b.shape or scores_a.dim() != 1:
        raise ValueError(f"expected two score vectors of one shape, got {tuple(scores_a.shape)} "
                         f"and {tuple(scores_b.shape)}")
    if scores_a.numel() == 0:
        raise ValueError("win_rate needs at least one prompt")
    z = normal_quantile(confidence)
    n = scores_a.numel()
    wins, ties = int((scores_a > scores_b).sum()), int((scores_a == scores_b).sum())
    low, high = wilson_cc_interval(wins + ties / 2, n, z)
    return WinRate(n, wins, n - wins - ties, ties, (wins + ties / 2) / n, low, high)


def winrate_prompts(policy: str | Path, data: str | None, num_prompts: int) -> list[tuple[dict, ...]]:
    """The first ``num_prompts`` distinct prompts: of the preference pairs in ``data`` (any data source),
    or by default of the held-out split of the policy's run folder (rebuilt from its config.yaml)."""
    if num_prompts < 1:
        raise AlignkitError(f"--num-prompts must be at least 1, got {num_prompts}")
    records = load_records(data, "preference", on_error="skip").records if data else held_out_records(Path(policy))
    distinct, seen = [], set()
    for record in records:
        prompt = record.messages[:-1] if isinstance(record, Demonstration) else record.prompt
        key = tuple((m["role"], m["content"]) for m in prompt)
        if key not in seen:
            seen.add(key)
            distinct.append(prompt)
    if not distinct:
        raise AlignkitError(f"{data or policy}: no prompts to evaluate on")
    return distinct[:num_prompts]


def evaluate_winrate(
    policy: str, baseline: str, judge: str | AIJudge, prompts: list[tuple[dict, ...]], generation: GenerationConfig,
    out_dir: Path, judge_batch_size: int = 8, judge_max_length: int = 1024,
    device: str | torch.device | None = None,
) -> dict:
    """Sample one reply per prompt from ``policy`` and from ``baseline``, judge them with ``judge`` (a
    reward model, run or ensemble folder, or an :class:`AIJudge`) and return the report: win rate of policy
    over baseline with its 95% interval, wins/losses/ties, and per side the mean reply length in tokens,
    the fraction of replies cut at max_new_tokens, and the mean reward (AI judge: the mean probability
    that the side's reply is the better one); seconds spent generating and judging (model loading
    included). Writes ``winrate.json`` (the report) and ``samples.jsonl`` (one line per prompt; AI judge:
    with the principle asked) to ``out_dir``, atomically. ``device``: None is the GPU when there is one.
    """
    extra = {}
    if isinstance(judge, AIJudge):
        comparison, principles = _ai_judged(policy, baseline, judge, prompts, generation, out_dir, device)
        extra["principle"] = principles
    else:
        comparison = compare(policy, baseline, judge, {"prompts": prompts}, generation,
                             judge_batch_size=judge_batch_size, judge_max_length=judge_max_length, device=device)
    judged = comparison.sets["prompts"]
    result = win_rate(judged.rewards["policy"], judged.rewards["baseline"])
    report = {
        "policy": str(policy), "baseline": str(baseline), "judge": str(judge), "num_prompts": len(prompts),
        "win_rate": result.rate, "ci_low": result.ci_low, "ci_high": result.ci_high,
        "wins": result.wins, "losses": result.losses, "ties": result.ties,
        **judged.side_summary(),
        "generation_seconds": comparison.generation_seconds, "judging_seconds": comparison.judging_seconds,
        "generation": to_dict(generation),
    }
    write_rows(Path(out_dir) / "samples.jsonl", judged.rows(extra))
    atomic_write_json(Path(out_dir) / "winrate.json", report)
    return report


def _ai_judged(
    policy: str, baseline: str, judge: AIJudge, prompts: list[tuple[dict, ...]], generation: GenerationConfig,
    out_dir: Path, device: str | torch.device | None,
) -> tuple[Comparison, list[str | None]]:
    """Both sides' replies judged pairwise by ``judge``: as ``compare`` does, with the scores P(policy's reply
    better) and 1 - P, so that the policy wins exactly where P > ½; and the principle of each prompt."""
    sampled, generation_seconds = sample_sides(policy, baseline, {"prompts": prompts}, generation, device)
    replies = {side: sets["prompts"] for side, sets in sampled.items()}
    start = time.perf_counter()
    judged = judge.judge(prompts, *([c.text for c in replies[side]] for side in SIDES), generation, Path(out_dir))
    free_memory()
    rewards = {"policy": judged.preferences.float(), "baseline": (1 - judged.preferences).float()}
    comparison = Comparison({"prompts": Judged(list(prompts), replies, rewards)}, generation_seconds,
                            time.perf_counter() - start)
    return comparison, judged.principles


def print_report(report: dict, out_dir: Path | None = None) -> None:
    """The report's numbers as a summary table (and where they were written)."""
    flat = {k: v for k, v in report.items() if isinstance(v, (int, float))}
    console.print(summary_table(f"win rate: {report['policy']} vs {report['baseline']}", flat))
    if out_dir is not None:
        console.print(f"wrote {Path(out_dir) / 'winrate.json'} and samples.jsonl")
