"""``alignkit eval gsm8k``: how often a policy's reply to a problem with a known answer is right.

The problems are :class:`~alignkit.data.records.Prompt` records with a reference ``answer`` (GSM8K's
final number); a reply is right when :func:`~alignkit.rl.checkers.gsm8k_correct` says so. The
interval is Wilson's score interval for a binomial proportion.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from alignkit.config import GenerationConfig, to_dict
from alignkit.console import console, summary_table
from alignkit.data.records import Prompt
from alignkit.data.sources import load_records
from alignkit.errors import AlignkitError
from alignkit.evaluate.held_out import held_out_records
from alignkit.evaluate.intervals import wilson_interval
from alignkit.io import atomic_write_json, atomic_write_text
from alignkit.rl.checkers import extract_answer, gsm8k_correct
from alignkit.rl.generation import load_policy_generator


def accuracy_problems(split_from: str | None, data: str | None, num_problems: int) -> list[Prompt]:
    """The first ``num_problems`` problems: of ``data`` (any data source with prompt records), or by
    default of the held-out split of the run folder ``split_from`` (rebuilt from its config.yaml)."""
    if num_problems < 1:
        raise AlignkitError(f"--num-problems must be at least 1, got {num_problems}")
    if data is not None:
        records = load_records(data, "prompt", on_error="skip").records
    elif split_from is not None:
        records = held_out_records(Path(split_from), "prompt")
    else:
        raise AlignkitError("give --data, or --split-from a run folder whose held-out split to use")
    problems = [r for r in records if r.answer is not None][:num_problems]
    if not problems:
        raise AlignkitError(f"{data or split_from}: no problems with a reference answer")
    return problems


def evaluate_accuracy(policy: str, problems: list[Prompt], generation: GenerationConfig, out_dir: Path | None,
                      device: str | torch.device | None = None) -> dict:
    """One reply per problem from ``policy``; the report holds the accuracy and its 95% Wilson interval,
    the share of replies with no number and of replies cut at max_new_tokens, the mean reply length and
    the seconds spent generating. With ``out_dir``, writes ``accuracy.json`` and ``samples.jsonl``."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    completions = load_policy_generator(policy, device).generate([p.prompt for p in problems], generation)
    seconds = time.perf_counter() - start
    right = [gsm8k_correct(c.text, p.answer) for p, c in zip(problems, completions, strict=True)]
    low, high = wilson_interval(sum(right), len(right))
    n = len(problems)
    report = {
        "policy": str(policy), "num_problems": n, "correct": sum(right), "accuracy": sum(right) / n,
        "ci_low": low, "ci_high": high,
        "no_answer": sum(extract_answer(c.text) is None for c in completions) / n,
        "unfinished": sum(not c.finished for c in completions) / n,
        "mean_tokens": sum(c.num_tokens for c in completions) / n,
        "generation_seconds": seconds, "generation": to_dict(generation),
    }
    if out_dir is not None:
        lines = [json.dumps({"prompt": list(p.prompt), "answer": p.answer, "reply": c.text, "correct": ok,
                             "tokens": c.num_tokens, "finished": c.finished}, ensure_ascii=False) + "\n"
                 for p, c, ok in zip(problems, completions, right, strict=True)]
        atomic_write_text(Path(out_dir) / "samples.jsonl", "".join(lines))
        atomic_write_json(Path(out_dir) / "accuracy.json", report)
    return report


def print_accuracy(report: dict, out_dir: Path | None = None) -> None:
    """The report's numbers as a summary table (and where they were written)."""
    flat = {k: v for k, v in report.items() if isinstance(v, (int, float))}
    console.print(summary_table(f"accuracy: {report['policy']}", flat))
    if out_dir is not None:
        console.print(f"wrote {Path(out_dir) / 'accuracy.json'} and samples.jsonl")
