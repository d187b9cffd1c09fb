"""``alignkit cai label``: preference labels from AI feedback (RLAIF; Bai et al. 2022, section 4).

Each pair is a prompt and two replies, *first* and *second*: the chosen and rejected reply of an input
preference pair (``label.pairs_from: data``; with human labels the first is the human's choice), or two
replies sampled from ``label.policy`` (``pairs_from: policy``). The feedback model is asked which reply is
better under a principle drawn for the pair (seeded, recorded), with the first reply as option (A); with
``label.swap`` it is asked again with the order swapped. The soft label, the probability that the first
reply is better, comes from :func:`~alignkit.feedback.labels.soft_labels`. Written to ``output_dir``:

- ``pairs.jsonl``: ``{"prompt", "chosen", "rejected", "label"}`` with the reply the label prefers as
  ``chosen`` and ``label`` the probability that it is better (>= 0.5): ``alignkit rm`` trains on the soft
  label directly, ``alignkit dpo`` on the preferred reply;
- ``labels.jsonl``: per pair its index, location, prompt, first and second reply, principle, ``p_first``,
  ``p_swapped``, ``label``, and with human labels ``agrees`` / ``agrees_without_swap`` (1, 0, or 1/2 at a
  tie), with the swap ``position_flip``, with chain of thought the reasoning of each ordering;
- ``report.json``: :func:`~alignkit.feedback.labels.label_summary`, counts and seconds.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections import Counter
from pathlib import Path

import torch

from alignkit.config import GenerationConfig
from alignkit.console import console, summary_table
from alignkit.errors import AlignkitError, ConfigError
from alignkit.feedback.backends import FeedbackBackend
from alignkit.feedback.config import CAILabelConfig, LabelSettings
from alignkit.feedback.constitution import ComparisonExample, Principle, draw_principles, load_constitution
from alignkit.feedback.labels import SoftLabels, label_summary, preference_score, soft_labels
from alignkit.feedback.prompts import OPTIONS, comparison_query, follow_up_query
from alignkit.feedback.runs import (
    backend_stats,
    call_seed,
    feedback_records,
    in_chunks,
    open_backend,
    prepare_output,
    write_jsonl,
)
from alignkit.io import atomic_write_json


def label_chunk(
    backend: FeedbackBackend, pairs: list[dict], first_index: int, principles: tuple[Principle, ...],
    shots: tuple[ComparisonExample, ...], settings: LabelSettings, seed: int, generation: GenerationConfig,
) -> list[dict]:
    """Ask about ``pairs`` (dicts with ``prompt``, ``first``, ``second``; examples ``first_index ...``) in one
    or both orders; per pair its principle, the option log-probabilities ``first_logprobs`` (and
    ``swapped_logprobs``) and, with chain of thought, the reasoning."""
    drawn = [draw_principles(principles, seed, first_index + k, 1)[0] for k in range(len(pairs))]
    results = [{"principle": p.name} for p in drawn]
    for order in ("first", "swapped") if settings.swap else ("first",):
        queries = []
        for pair, principle in zip(pairs, drawn, strict=True):
            a, b = (pair["first"], pair["second"]) if order == "first" else (pair["second"], pair["first"])
            queries.append(comparison_query(pair["prompt"], a, b, principle, shots, settings.chain_of_thought))
        if settings.chain_of_thought:
            reasoning_settings = dataclasses.replace(generation, seed=call_seed(generation.seed, first_index, order))
            reasoning = backend.generate(queries, reasoning_settings)
            queries = [follow_up_query(q, r) for q, r in zip(queries, reasoning, strict=True)]
            for result, text in zip(results, reasoning, strict=True):
                result[f"reasoning_{order}"] = text
        for result, scores in zip(results, backend.option_logprobs(queries, OPTIONS, generation), strict=True):
            result[f"{order}_logprobs"] = scores
    return results


def input_pairs(config: CAILabelConfig) -> list[dict]:
    """The pairs to label (module doc), each ``{"prompt", "first", "second", "location"}``."""
    if config.label.pairs_from == "data":
        records = feedback_records(config.data, "preference", config.seed)
        return [{"prompt": r.prompt, "first": r.chosen, "second": r.rejected, "location": loc} for r, loc in records]
    from alignkit.rl.generation import load_policy_generator

    records = feedback_records(config.data, "prompt", config.seed)
    prompts = [r.prompt for r, _ in records]
    generator = load_policy_generator(config.label.policy, "cuda" if torch.cuda.is_available() else "cpu")
    samples = [generator.generate(prompts, dataclasses.replace(config.generation, seed=config.generation.seed + k))
               for k in (0, 1)]
    del generator
    gc.collect()
    pairs = [{"prompt": p, "first": a.text.strip(), "second": b.text.strip(), "location": loc}
             for p, a, b, (_, loc) in zip(prompts, *samples, records, strict=True)]
    kept = [p for p in pairs if p["first"] and p["second"]]
    if len(kept) < len(pairs):
        console.print(f"[yellow]cai label: left out {len(pairs) - len(kept)} prompts with a blank sampled reply")
    if not kept:
        raise AlignkitError(f"cai label: every reply sampled from {config.label.policy} is blank")
    return kept


def _check(config: CAILabelConfig) -> bool:
    """Whether the pairs carry human labels; ConfigError for settings that contradict each other."""
    settings = config.label
    human = settings.human_labels if settings.human_labels is not None else settings.pairs_from == "data"
    if human and settings.pairs_from == "policy":
        raise ConfigError("label.human_labels is true but label.pairs_from is 'policy': sampled pairs carry no "
                          "human choice")
    if settings.cot_clamp_low > settings.cot_clamp_high:
        raise ConfigError(f"label.cot_clamp_low ({settings.cot_clamp_low}) is above label.cot_clamp_high "
                          f"({settings.cot_clamp_high})")
    return human


def run_cai_label(config: CAILabelConfig, backend: FeedbackBackend | None = None) -> dict:
    """Label pairs as ``config`` says (module doc); returns the report. ``backend``: a ready feedback backend
    to use instead of the one ``config.feedback`` names."""
    human = _check(config)
    constitution = load_constitution(config.constitution)
    principles = constitution.for_comparison()
    shots = constitution.comparison_shots(config.label.few_shot)
    out = prepare_output(config)
    pairs = input_pairs(config)
    console.print(f"cai label: {len(pairs)} pairs, {len(principles)} principle(s) of {constitution.name}")
    with open_backend(config, out, backend) as backend:
        start = time.perf_counter()
        results = in_chunks("cai label", pairs, config.generation.batch_size, lambda first, chunk: label_chunk(
            backend, chunk, first, principles, shots, config.label, config.seed, config.generation))
        stats = backend_stats(backend)
    settings = config.label
    clamp = (settings.cot_clamp_low, settings.cot_clamp_high) if settings.chain_of_thought else None
    labels = soft_labels(torch.tensor([r["first_logprobs"] for r in results], dtype=torch.float64),
                         torch.tensor([r["swapped_logprobs"] for r in results], dtype=torch.float64)
                         if settings.swap else None, clamp)
    report = {"constitution": constitution.name, **label_summary(labels, human),
              "seconds": time.perf_counter() - start, **stats}
    _write(out, pairs, results, labels, human, report)
    console.print(summary_table(f"cai label: {out}", report))
    return report


def _write(out: Path, pairs: list[dict], results: list[dict], labels: SoftLabels, human: bool, report: dict) -> None:
    preferred, details = [], []
    for i, (pair, result) in enumerate(zip(pairs, results, strict=True)):
        label = float(labels.label[i])
        better, worse = ("first", "second") if label >= 0.5 else ("second", "first")
        preferred.append({"prompt": list(pair["prompt"]), "chosen": pair[better], "rejected": pair[worse],
                          "label": max(label, 1.0 - label)})
        row = {"index": i, "location": pair["location"], "prompt": list(pair["prompt"]), "first": pair["first"],
               "second": pair["second"], "principle": result["principle"], "p_first": float(labels.p_first[i]),
               "p_swapped": None if labels.p_swapped is None else float(labels.p_swapped[i]), "label": label}
        if human:
            row["agrees"] = float(preference_score(labels.label[i : i + 1]))
            row["agrees_without_swap"] = float(preference_score(labels.p_first[i : i + 1]))
        if labels.p_swapped is not None:
            row["position_flip"] = bool(preference_score(labels.p_first[i : i + 1])
                                        != preference_score(labels.p_swapped[i : i + 1]))
        row.update({k: v for k, v in result.items() if k.startswith("reasoning_") or k.endswith("_logprobs")})
        details.append(row)
    write_jsonl(out / "labels.jsonl", details)
    write_jsonl(out / "pairs.jsonl", preferred)
    counts = Counter(r["principle"] for r in results)
    atomic_write_json(out / "report.json", {**report, "human_labels": human,
                                            "principle_counts": dict(sorted(counts.items()))})
    console.print(f"wrote {out / 'pairs.jsonl'}, labels.jsonl and report.json")
