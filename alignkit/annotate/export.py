"""Labels out, in the JSON-lines formats alignkit's loaders read (``alignkit.data.records``).

Every label reads as ranks over the item's K responses (``labels.payload_ranks``). The labels of the
N annotators of an item are combined by ``aggregate``:

- ``majority``: for each pair of responses, the side most annotators preferred (a tie vote counts
  for neither); the pair's ``label`` is the share of votes for the chosen one, a tie counting half.
  A ranking orders responses by their mean rank (Borda).
- ``bradley-terry``: strengths s_1..s_K fitted to all the item's comparisons by minimising alignkit's
  own soft-label Bradley-Terry loss (``losses.reward.soft_label_loss``, a tie as p = 0.5) plus
  0.1·Σ s², so unanimous votes give finite strengths; chosen is the stronger response and
  ``label`` = σ(s_c - s_r). A ranking orders responses by strength.

Formats: ``pairs`` → ``{"prompt", "chosen", "rejected", "label"}`` (PreferencePair); ``ranking`` →
``{"prompt", "responses", "ranks"}`` (Ranking); ``unpaired`` → ``{"prompt", "completion",
"desirable"}`` (UnpairedFeedback): the best-ranked responses desirable and the worst undesirable,
except that a pairwise ``both_bad`` majority makes both undesirable and, for ratings, a mean score
>= 5 is desirable and <= 3 undesirable. Items without any label, or whose aggregate ties everything,
give no record. The file is written atomically.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import torch

from alignkit.annotate.db import Item, Label, Project
from alignkit.annotate.labels import dense_ranks, payload_ranks
from alignkit.errors import AlignkitError
from alignkit.io import atomic_write_text
from alignkit.losses.reward import soft_label_loss

FORMATS = ("pairs", "ranking", "unpaired")
AGGREGATES = ("majority", "bradley-terry")
BT_PRIOR = 0.1


def pair_votes(rankings: list[list[int]], i: int, j: int) -> tuple[int, int, int]:
    """(votes for i, votes for j, tie votes) over annotators' rankings (lower rank is better)."""
    votes = Counter("i" if r[i] < r[j] else "j" if r[j] < r[i] else "tie" for r in rankings)
    return votes["i"], votes["j"], votes["tie"]


def bradley_terry_strengths(rankings: list[list[int]]) -> list[float]:
    """Per-response strengths fitted to every pair of every ranking (see the module doc)."""
    k = len(rankings[0])
    first, second, target = [], [], []
    for ranks in rankings:
        for i in range(k):
            for j in range(i + 1, k):
                first.append(i)
                second.append(j)
                target.append(1.0 if ranks[i] < ranks[j] else 0.0 if ranks[j] < ranks[i] else 0.5)
    strengths = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    a, b = torch.tensor(first), torch.tensor(second)
    p = torch.tensor(target, dtype=torch.float64)
    optimizer = torch.optim.LBFGS([strengths], max_iter=200, tolerance_grad=1e-10, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = soft_label_loss(strengths[a], strengths[b], p).sum() + BT_PRIOR * strengths.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return strengths.detach().tolist()


def aggregate_ranks(rankings: list[list[int]], aggregate: str) -> list[int]:
    """One ranking from several: by mean rank (``majority``) or by Bradley-Terry strength."""
    if aggregate == "majority":
        return dense_ranks([-round(sum(r[i] for r in rankings) / len(rankings), 9) for i in range(len(rankings[0]))])
    return dense_ranks([round(s, 6) for s in bradley_terry_strengths(rankings)])


def pair_records(item: Item, rankings: list[list[int]], aggregate: str) -> list[dict]:
    """The item's preference pairs (chosen, rejected, label) under ``aggregate``."""
    k, rows = len(item.responses), []
    strengths = bradley_terry_strengths(rankings) if aggregate == "bradley-terry" else None
    for i in range(k):
        for j in range(i + 1, k):
            if strengths is not None:
                gap = strengths[i] - strengths[j]
                if abs(gap) < 1e-6:
                    continue
                better, worse = (i, j) if gap > 0 else (j, i)
                label = float(torch.sigmoid(torch.tensor(abs(gap))))
            else:
                wins_i, wins_j, ties = pair_votes(rankings, i, j)
                if wins_i == wins_j:
                    continue
                better, worse = (i, j) if wins_i > wins_j else (j, i)
                label = (max(wins_i, wins_j) + ties / 2) / len(rankings)
            rows.append({"prompt": item.prompt, "chosen": item.responses[better],
                         "rejected": item.responses[worse], "label": round(label, 6)})
    return rows


def unpaired_records(item: Item, kind: str, labels: list[Label], aggregate: str) -> list[dict]:
    """The item's responses marked desirable or not (see the module doc)."""
    if kind == "rating":
        means = [sum(sum(lab.payload["ratings"][i].values()) / 3 for lab in labels) / len(labels)
                 for i in range(len(item.responses))]
        marks = [True if m >= 5 else False if m <= 3 else None for m in means]
    elif kind == "pairwise" and 2 * sum(lab.payload["choice"] == "both_bad" for lab in labels) > len(labels):
        marks = [False, False]
    else:
        ranks = aggregate_ranks([payload_ranks(kind, lab.payload) for lab in labels], aggregate)
        best, worst = min(ranks), max(ranks)
        marks = [None if best == worst else True if r == best else False if r == worst else None for r in ranks]
    return [{"prompt": item.prompt, "completion": response, "desirable": mark}
            for response, mark in zip(item.responses, marks, strict=True) if mark is not None]


def export_records(session, project: Project, fmt: str, aggregate: str = "majority") -> list[dict]:
    """Every record of ``project`` in format ``fmt`` (see the module doc), in item order."""
    if fmt not in FORMATS:
        raise AlignkitError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if aggregate not in AGGREGATES:
        raise AlignkitError(f"--aggregate {aggregate!r} is not one of {', '.join(AGGREGATES)}")
    by_item: dict[int, list[Label]] = defaultdict(list)
    for label in session.query(Label).join(Item).filter(Item.project_id == project.id).order_by(Label.id):
        by_item[label.item_id].append(label)
    records = []
    for item in session.query(Item).filter(Item.project_id == project.id).order_by(Item.position):
        labels = by_item.get(item.id)
        if not labels:
            continue
        rankings = [payload_ranks(project.kind, lab.payload) for lab in labels]
        if fmt == "pairs":
            records += pair_records(item, rankings, aggregate)
        elif fmt == "unpaired":
            records += unpaired_records(item, project.kind, labels, aggregate)
        else:
            ranks = aggregate_ranks(rankings, aggregate)
            if len(set(ranks)) > 1:
                records.append({"prompt": item.prompt, "responses": item.responses, "ranks": ranks})
    return records


def to_jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def export_project(session, project: Project, fmt: str, out: str | Path, aggregate: str = "majority") -> int:
    """Write ``project``'s records in format ``fmt`` to ``out`` atomically; returns how many."""
    records = export_records(session, project, fmt, aggregate)
    atomic_write_text(out, to_jsonl(records))
    return len(records)
