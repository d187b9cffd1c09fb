"""``alignkit cai revise``: the supervised phase of Constitutional AI (Bai et al. 2022, section 3).

For each prompt the feedback model samples a reply; then, for ``revise.rounds`` rounds, it critiques the
current reply under a principle drawn for that example and round (seeded by ``seed`` and the example's
index, see :func:`~alignkit.feedback.constitution.draw_principles`) and revises it. A blank revision leaves
the reply as it was. Written to ``output_dir`` (each file atomically):

- ``sft.jsonl``: ``{"prompt", "response"}``, the final revision of every prompt with a non-blank reply
  (what ``alignkit sft`` reads as ``data.train``);
- ``pairs.jsonl``: ``{"prompt", "chosen": final revision, "rejected": initial reply}`` where the two differ
  (what ``alignkit rm`` and ``alignkit dpo`` read);
- ``revisions.jsonl``: per prompt its index, source location, principles, initial reply, every round's
  principle, requests, critique and revision, and the final reply;
- ``report.json``: counts, principle counts, mean lengths, seconds, and request counts of an HTTP backend.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from alignkit.config import GenerationConfig
from alignkit.console import console, summary_table
from alignkit.errors import AlignkitError
from alignkit.feedback.backends import FeedbackBackend
from alignkit.feedback.config import CAIReviseConfig
from alignkit.feedback.constitution import Principle, draw_principles, load_constitution
from alignkit.feedback.prompts import critique_query, revision_query
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


def revise_chunk(
    backend: FeedbackBackend, prompts: list[tuple[dict, ...]], first_index: int, principles: tuple[Principle, ...],
    shots: tuple[tuple[dict, ...], ...], rounds: int, seed: int, generation: GenerationConfig,
) -> list[dict]:
    """Reply, critique and revise ``prompts`` (examples ``first_index ...``); one record per prompt (module doc).
    Each generate call is seeded from ``generation.seed``, ``first_index`` and the step."""

    def settings(step: str) -> GenerationConfig:
        return dataclasses.replace(generation, seed=call_seed(generation.seed, first_index, step))

    draws = [draw_principles(principles, seed, first_index + k, rounds) for k in range(len(prompts))]
    initial = backend.generate(prompts, settings("reply"))
    current = list(initial)
    history: list[list[dict]] = [[] for _ in prompts]
    for r in range(rounds):
        active = [k for k in range(len(prompts)) if current[k]]
        if not active:
            break
        critique_chats = [critique_query(prompts[k], current[k], draws[k][r], shots) for k in active]
        critiques = backend.generate(critique_chats, settings(f"critique-{r}"))
        revision_chats = [revision_query(chat, critique, draws[k][r])
                          for chat, critique, k in zip(critique_chats, critiques, active, strict=True)]
        revisions = backend.generate(revision_chats, settings(f"revision-{r}"))
        for k, critique, revision in zip(active, critiques, revisions, strict=True):
            principle = draws[k][r]
            history[k].append({"round": r + 1, "principle": principle.name,
                               "critique_request": principle.critique_request, "critique": critique,
                               "revision_request": principle.revision_request, "revision": revision})
            if revision:
                current[k] = revision
    return [{"index": first_index + k, "prompt": list(prompts[k]), "principles": [p.name for p in draws[k]],
             "initial": initial[k], "rounds": history[k], "final": current[k]} for k in range(len(prompts))]


def run_cai_revise(config: CAIReviseConfig, backend: FeedbackBackend | None = None) -> dict:
    """Run the supervised phase as ``config`` says (module doc); returns the report. ``backend``: a ready
    feedback backend to use instead of the one ``config.feedback`` names."""
    constitution = load_constitution(config.constitution)
    principles = constitution.for_revision()
    shots = constitution.critique_shots(config.revise.few_shot)
    out = prepare_output(config)
    records = feedback_records(config.data, "prompt", config.seed)
    console.print(f"cai revise: {len(records)} prompts, {config.revise.rounds} round(s), {len(principles)} "
                  f"principle(s) of {constitution.name}")
    with open_backend(config, out, backend) as backend:
        start = time.perf_counter()

        def revise(first: int, chunk: Sequence) -> list[dict]:
            made = revise_chunk(backend, [record.prompt for record, _ in chunk], first, principles, shots,
                                config.revise.rounds, config.seed, config.generation)
            for example, (_, location) in zip(made, chunk, strict=True):
                example["location"] = location
            return made

        examples = in_chunks("cai revise", records, config.generation.batch_size, revise)
        report = _write(out, examples, constitution.name, time.perf_counter() - start, backend_stats(backend))
    console.print(summary_table(f"cai revise: {out}", report))
    return report


def _write(out: Path, examples: list[dict], constitution: str, seconds: float, stats: dict) -> dict:
    kept = [e for e in examples if e["initial"]]
    if not kept:
        raise AlignkitError(f"cai revise: all {len(examples)} initial replies are blank; nothing to write")
    demonstrations = [{"prompt": e["prompt"], "response": e["final"]} for e in kept]
    pairs = [{"prompt": e["prompt"], "chosen": e["final"], "rejected": e["initial"]}
             for e in kept if e["final"] != e["initial"]]
    rounds = [r for e in kept for r in e["rounds"]]
    principles = Counter(r["principle"] for r in rounds)
    report = {
        "constitution": constitution, "num_prompts": len(examples), "num_demonstrations": len(demonstrations),
        "num_pairs": len(pairs), "blank_replies": len(examples) - len(kept),
        "blank_revisions": sum(not r["revision"] for r in rounds), "unchanged": len(kept) - len(pairs),
        "mean_reply_chars": sum(len(e["initial"]) for e in kept) / len(kept),
        "mean_final_chars": sum(len(e["final"]) for e in kept) / len(kept), "seconds": seconds,
        **stats,
    }
    write_jsonl(out / "revisions.jsonl", examples)
    write_jsonl(out / "sft.jsonl", demonstrations)
    write_jsonl(out / "pairs.jsonl", pairs)
    atomic_write_json(out / "report.json", {**report, "principle_counts": dict(sorted(principles.items()))})
    if not pairs:
        console.print("[yellow]cai revise: no revision differs from its initial reply; pairs.jsonl is empty")
    console.print(f"wrote {out / 'sft.jsonl'}, pairs.jsonl, revisions.jsonl and report.json")
    return report
