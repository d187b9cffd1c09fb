"""Quality figures of a project: agreement between annotators and accuracy on gold items.

Units of agreement: for ``rank`` projects each (item, response) with its rank as an ordinal value;
for ``pairwise`` each item with its choice as a nominal value; for ``rating`` each (item, response,
criterion) with its score as an ordinal value. Gold accuracy of a label is the share of response
pairs it orders as the gold ranks do (better, tie or worse); an annotator's is its mean over their
gold items.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from alignkit.annotate.agreement import krippendorff_alpha, raw_agreement, without_coder
from alignkit.annotate.db import Item, Label, Project, User
from alignkit.annotate.labels import payload_ranks


@dataclass
class AnnotatorQuality:
    username: str
    labels: int = 0
    gold_labels: int = 0
    gold_accuracy: float = math.nan
    agreement_with_others: float = math.nan
    alpha_without: float = math.nan


@dataclass
class ProjectQuality:
    items: int
    labels: int
    level: str
    alpha: float
    raw_agreement: float
    annotators: list[AnnotatorQuality] = field(default_factory=list)

    def as_dict(self) -> dict:
        """JSON-ready figures; NaN (undefined) becomes None."""
        def clean(value):
            return None if isinstance(value, float) and math.isnan(value) else value

        out = {key: clean(value) for key, value in vars(self).items() if key != "annotators"}
        out["annotators"] = [{key: clean(value) for key, value in vars(a).items()} for a in self.annotators]
        return out


def gold_accuracy(ranks: list[int], gold: list[int]) -> float:
    """Share of response pairs (i < j) that ``ranks`` orders like ``gold`` (better, tie or worse)."""
    def sign(r, i, j):
        return (r[i] > r[j]) - (r[i] < r[j])

    pairs = [(i, j) for i in range(len(gold)) for j in range(i + 1, len(gold))]
    return sum(sign(ranks, i, j) == sign(gold, i, j) for i, j in pairs) / len(pairs)


def reliability_data(kind: str, labels: list[tuple[Label, Item]]) -> dict:
    """``unit -> {user id: value}`` of the project's labels (units as in the module doc)."""
    data: dict = defaultdict(dict)
    for label, item in labels:
        if kind == "pairwise":
            data[item.id][label.user_id] = label.payload["choice"]
        elif kind == "rank":
            for i, rank in enumerate(label.payload["ranks"]):
                data[item.id, i][label.user_id] = rank
        else:
            for i, scores in enumerate(label.payload["ratings"]):
                for criterion, score in scores.items():
                    data[item.id, i, criterion][label.user_id] = score
    return dict(data)


def project_quality(session: Session, project: Project) -> ProjectQuality:
    """Alpha and raw agreement of the whole project, and per-annotator figures."""
    rows = session.execute(select(Label, Item).join(Item).where(Item.project_id == project.id)).all()
    level = "nominal" if project.kind == "pairwise" else "ordinal"
    data = reliability_data(project.kind, rows)
    items = len(session.scalars(select(Item.id).where(Item.project_id == project.id)).all())
    quality = ProjectQuality(items=items, labels=len(rows), level=level, alpha=krippendorff_alpha(data, level),
                             raw_agreement=raw_agreement(data))
    names = dict(session.execute(select(User.id, User.username)).all())
    per_user: dict[int, AnnotatorQuality] = {}
    gold_scores: dict[int, list[float]] = defaultdict(list)
    for label, item in rows:
        entry = per_user.setdefault(label.user_id, AnnotatorQuality(names[label.user_id]))
        entry.labels += 1
        if item.gold is not None:
            entry.gold_labels += 1
            gold_scores[label.user_id].append(gold_accuracy(payload_ranks(project.kind, label.payload), item.gold))
    for user_id, entry in per_user.items():
        if gold_scores[user_id]:
            entry.gold_accuracy = sum(gold_scores[user_id]) / len(gold_scores[user_id])
        entry.agreement_with_others = raw_agreement(data, coder=user_id)
        entry.alpha_without = krippendorff_alpha(without_coder(data, user_id), level)
    quality.annotators = sorted(per_user.values(), key=lambda a: a.username)
    return quality
