"""``alignkit eval rm``: a reward model's accuracy on held-out pairs and the diagnostics of length bias.

Without ``--data`` the run's own held-out split is rebuilt from its ``config.yaml`` (same source,
fraction and seed), so the numbers are on pairs the model never trained on.
"""

from __future__ import annotations

from pathlib import Path

import torch

from alignkit.console import console, summary_table
from alignkit.data.sources import load_records
from alignkit.errors import AlignkitError
from alignkit.evaluate import reward_metrics as rm
from alignkit.evaluate.held_out import held_out_records
from alignkit.evaluate.intervals import wilson_cc_interval
from alignkit.io import merge_json_key
from alignkit.models.scorer import RewardScorer


def held_out_pairs(run_dir: Path, data: str | None) -> list:
    """Preference pairs to evaluate on: all of ``data``, or the held-out split of the run in ``run_dir``."""
    if data is not None:
        return load_records(data, "preference", on_error="skip").records
    return held_out_records(run_dir, "preference")


def evaluate_reward_model(model: str, data: str | None = None, *, split_from: str | None = None,
                          combine: str = "mean", lam: float = 1.0, max_length: int = 1024,
                          batch_size: int = 8) -> dict:
    """Score every pair's chosen and rejected response; return accuracy, margin, ECE and length diagnostics.
    Both replies of a pair are scored under the same prompt, cut from the left as training cuts it.
    Pairs with a response that does not fit in ``max_length`` tokens even with the prompt cut away are
    left out (as training with ``on_error: skip`` leaves them out) and counted in ``"skipped_too_long"``.
    The pairs: all of ``data``, else the held-out split of the run folder ``split_from`` (e.g. a reward
    model trained on human labels, to test one trained on AI labels), else the model's own; the report
    says which under ``"pairs_from"``."""
    run_dir = Path(model)
    source = Path(split_from) if split_from is not None else run_dir
    pairs = [p for p in held_out_pairs(source, data) if p.chosen.strip() != p.rejected.strip()]
    if not pairs:
        raise AlignkitError(f"{data or source}: no pairs with different chosen and rejected responses")
    scorer = RewardScorer(run_dir, combine=combine, lam=lam, max_length=max_length, batch_size=batch_size)
    fitting = [p for p in pairs if scorer.fits(p.prompt, p.chosen) and scorer.fits(p.prompt, p.rejected)]
    if not fitting:
        raise AlignkitError(f"{data or source}: no pair's responses fit in max_length {max_length} tokens")
    too_long, pairs = len(pairs) - len(fitting), fitting
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    chosen, rejected, spread = scorer.score_pairs([p.prompt for p in pairs], responses[: len(pairs)],
                                                  responses[len(pairs) :])
    rewards = torch.cat([chosen, rejected])
    lengths = scorer.response_lengths(responses)
    slope, intercept = rm.length_residual_fit(rewards, lengths)
    chosen_len, rejected_len = lengths[: len(pairs)], lengths[len(pairs) :]
    accuracy = rm.pairwise_accuracy(chosen, rejected)
    report = {
        "pairs": len(pairs),
        "pairs_from": data if data is not None else f"held-out split of {source}",
        "skipped_too_long": too_long,
        "accuracy": accuracy,
        "accuracy_interval": list(wilson_cc_interval(accuracy * len(pairs), len(pairs))),
        **rm.length_balanced_accuracy(chosen, rejected, chosen_len, rejected_len),
        "shorter_wins_accuracy": rm.shorter_wins_accuracy(chosen_len, rejected_len),
        "mean_margin": rm.mean_margin(chosen, rejected),
        "ece": rm.pairwise_ece(chosen, rejected),
        **rm.length_diagnostics(chosen, rejected, chosen_len, rejected_len),
        "length_fit": {"slope": slope, "intercept": intercept},
        "ensemble": {"members": len(scorer.members), "combine": combine, "mean_spread": float(spread.mean())},
    }
    return report


def write_report(run_dir: Path, report: dict) -> Path:
    """Merge ``report`` under the key ``rm_eval`` into the run's eval.json (atomically) and print it."""
    path = merge_json_key(run_dir / "eval.json", "rm_eval", report)
    flat = {k: v for k, v in report.items() if isinstance(v, (int, float))}
    console.print(summary_table(f"reward model: {run_dir}", flat))
    low, high = report["accuracy_interval"]
    b_low, b_high = report["length_balanced_interval"]
    console.print(
        f"  accuracy {report['accuracy']:.3f} (95% {low:.3f}-{high:.3f}); length-balanced "
        f"{report['length_balanced_accuracy']:.3f} (95% {b_low:.3f}-{b_high:.3f}); "
        f"'the shorter reply wins' alone {report['shorter_wins_accuracy']:.3f}"
    )
    for bucket in report["accuracy_by_length_bucket"]:
        console.print(f"  {bucket['bucket']}: {bucket['pairs']} pairs, accuracy {bucket['accuracy']:.3f}")
    return path
