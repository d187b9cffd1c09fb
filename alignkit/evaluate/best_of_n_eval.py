"""``alignkit eval best-of-n``: best-of-n sampling as an evaluation and as the training-free baseline policy.

The policy samples N = max(ns) replies per prompt, a reward model (the judge, the proxy that picks) scores
every reply and, when given, a second independent reward model or ensemble (the gold) scores them too.
For each n, ``best_of_n.json`` holds the KL of the best-of-n policy to the sampled one,
KL_bon(n) = log n − (n − 1)/n (:func:`~alignkit.evaluate.best_of_n.best_of_n_kl`), its square root, and the
unbiased estimates from the N samples (:func:`~alignkit.evaluate.best_of_n.expected_best_of_n`) of the mean
judge reward of the best of n (``proxy``) and of the mean gold reward of the reply the judge picks
(``gold``). Proxy rising while gold falls is over-optimisation of the judge (Gao et al. 2022); the curve is
the reward-for-KL trade an RL run should beat. ``samples.jsonl`` holds every reply of every prompt with its
scores and the index the best of N picks.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from rich.table import Table

from alignkit.config import GenerationConfig, to_dict
from alignkit.console import console
from alignkit.errors import AlignkitError
from alignkit.evaluate.best_of_n import best_of_n_kl, expected_best_of_n, select_best_of_n
from alignkit.evaluate.document import fmt
from alignkit.evaluate.side_by_side import check_reward_folder, default_device, free_memory, sample_replies, write_rows
from alignkit.io import atomic_write_json
from alignkit.models.scorer import RewardScorer
from alignkit.rl.generation import Completion

CURVE_COLUMNS = (("n", "n"), ("KL", "kl"), ("√KL", "sqrt_kl"), ("proxy", "proxy"), ("gold", "gold"))
"""Header and key of each column of the best-of-n curve's table."""


def parse_ns(text: str) -> list[int]:
    """The n values of ``--n``: comma-separated positive integers. Raises AlignkitError otherwise."""
    try:
        ns = [int(part) for part in text.split(",")]
    except ValueError:
        ns = []
    if not ns or min(ns) < 1:
        raise AlignkitError(f"--n {text!r}: expected comma-separated positive integers, e.g. 1,2,4,8,16")
    return ns


def evaluate_best_of_n(
    policy: str | Path, judge: str | Path, prompts: list[tuple[dict, ...]], generation: GenerationConfig,
    ns: list[int], out_dir: Path | None, *, gold: str | Path | None = None, judge_batch_size: int = 8,
    judge_max_length: int = 1024, device: str | torch.device | None = None,
) -> dict:
    """Sample max(ns) replies per prompt from ``policy`` in one generate call (every prompt repeated, seeded
    with ``generation.seed`` as :func:`~alignkit.evaluate.side_by_side.sample_replies`), free the policy, score
    every reply with ``judge`` and ``gold`` (reward-model run, model or ensemble folders) and return the report
    of the module docstring, its curve in increasing n. With ``out_dir``, write ``best_of_n.json`` and
    ``samples.jsonl`` there, atomically. Raises ValueError for an empty ``ns`` or n < 1, AlignkitError for a
    missing judge or gold folder or no prompts, before any model is loaded."""
    if not ns or min(ns) < 1:
        raise ValueError(f"ns must be positive integers, got {ns}")
    rewards = {"judge": judge} if gold is None else {"judge": judge, "gold": gold}
    for role, path in rewards.items():
        check_reward_folder(path, role)
    if not prompts:
        raise AlignkitError("no prompts to evaluate on")
    ns, samples, device = sorted(set(ns)), max(ns), default_device(device)
    repeated = [prompt for prompt in prompts for _ in range(samples)]
    start = time.perf_counter()
    replies = sample_replies(policy, {"best_of_n": repeated}, generation, device)["best_of_n"]
    generation_seconds = time.perf_counter() - start
    start = time.perf_counter()
    scores = {role: reward_scores(path, repeated, [c.text for c in replies], judge_batch_size, judge_max_length,
                                  device).view(-1, samples)
              for role, path in rewards.items()}
    judging_seconds = time.perf_counter() - start
    report = {
        "policy": str(policy), "judge": str(judge), "gold": None if gold is None else str(gold),
        "num_prompts": len(prompts), "samples_per_prompt": samples,
        "curve": [_curve_point(n, scores["judge"], scores.get("gold")) for n in ns],
        "generation_seconds": generation_seconds, "judging_seconds": judging_seconds,
        "generation": to_dict(generation),
    }
    if out_dir is not None:
        write_rows(Path(out_dir) / "samples.jsonl", _rows(prompts, replies, scores))
        atomic_write_json(Path(out_dir) / "best_of_n.json", report)
    return report


def reward_scores(path: str | Path, prompts: list, replies: list[str], batch_size: int, max_length: int,
                  device: str | torch.device) -> torch.Tensor:
    """The reward of every (prompt, reply) under the reward model at ``path``, which is freed afterwards."""
    scorer = RewardScorer(path, batch_size=batch_size, max_length=max_length, device=device)
    scores = scorer.score(prompts, replies)
    del scorer
    free_memory()
    return scores


def _curve_point(n: int, judge: torch.Tensor, gold: torch.Tensor | None) -> dict:
    """One point of the curve: n, KL_bon(n), its square root, and the expected judge (proxy) and gold
    reward of the reply the judge picks from n (gold None without a gold model)."""
    kl = best_of_n_kl(n)
    return {"n": n, "kl": kl, "sqrt_kl": math.sqrt(kl), "proxy": expected_best_of_n(judge, n),
            "gold": None if gold is None else expected_best_of_n(judge, n, gold)}


def _rows(prompts: list[tuple[dict, ...]], replies: list[Completion], scores: dict[str, torch.Tensor]) -> list[dict]:
    """One JSON-ready row per prompt: the prompt, its replies (text, tokens, finished, judge and gold score)
    and ``best``, the index of the reply the judge picks among all of them."""
    samples = scores["judge"].shape[1]
    best = select_best_of_n(scores["judge"]).indices.tolist()
    rows = []
    for i, prompt in enumerate(prompts):
        own = replies[i * samples : (i + 1) * samples]
        rows.append({"prompt": list(prompt), "best": best[i], "replies": [
            {"text": c.text, "tokens": c.num_tokens, "finished": c.finished,
             "judge": float(scores["judge"][i, k]), "gold": float(scores["gold"][i, k]) if "gold" in scores else None}
            for k, c in enumerate(own)]})
    return rows


def curve_rows(report: dict) -> list[tuple]:
    """The report's curve as table rows, in the order of :data:`CURVE_COLUMNS`."""
    return [tuple(point[key] for _, key in CURVE_COLUMNS) for point in report["curve"]]


def print_best_of_n(report: dict, out_dir: Path | None = None) -> None:
    """The curve as a table (and where it was written)."""
    table = Table(title=f"best-of-n: {report['policy']} judged by {report['judge']}"
                  + (f", gold {report['gold']}" if report["gold"] else ""))
    for header, _ in CURVE_COLUMNS:
        table.add_column(header, justify="right")
    for row in curve_rows(report):
        table.add_row(*(fmt(value) for value in row))
    console.print(table)
    if out_dir is not None:
        console.print(f"wrote {Path(out_dir) / 'best_of_n.json'} and samples.jsonl")
