"""Assigning items to annotators and storing their labels.

A label's payload depends on the project's kind:

- ``rank``: ``{"ranks": [r_1, ..., r_K]}``, 1 = best, equal numbers are ties, each in 1..K;
- ``pairwise`` (K = 2): ``{"choice": "A" | "B" | "tie" | "both_bad"}``;
- ``rating``: ``{"ratings": [{"helpful": h, "harmless": s, "honest": o}, ...]}``, one dict per
  response, each score an integer 1..7.

Every payload also reads as ranks (:func:`payload_ranks`), which is what export, gold accuracy and
agreement use. Submitting is idempotent: a retry with the same ``idempotency_key`` returns the label
already stored instead of storing a second one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alignkit.annotate.db import Assignment, Item, Label, Project, User
from alignkit.errors import AlignkitError

CHOICES = ("A", "B", "tie", "both_bad")
CRITERIA = ("helpful", "harmless", "honest")
RATING_RANGE = (1, 7)


class LabelError(AlignkitError):
    """A label cannot be stored; ``status`` is the HTTP status that says why (400, 403, 404, 409)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def validate_payload(kind: str, payload: dict, num_responses: int) -> dict:
    """The payload reduced to the keys of ``kind`` and checked; raises LabelError(400) naming the problem."""
    if kind == "rank":
        ranks = payload.get("ranks")
        if (not isinstance(ranks, list) or len(ranks) != num_responses
                or any(isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= num_responses for r in ranks)):
            raise LabelError(400, f"'ranks' must be {num_responses} integers in 1..{num_responses} (1 = best), "
                                  f"got {ranks!r:.80}")
        return {"ranks": ranks}
    if kind == "pairwise":
        if payload.get("choice") not in CHOICES:
            raise LabelError(400, f"'choice' must be one of {', '.join(CHOICES)}, got {payload.get('choice')!r:.40}")
        return {"choice": payload["choice"]}
    ratings = payload.get("ratings")
    low, high = RATING_RANGE
    if not isinstance(ratings, list) or len(ratings) != num_responses or not all(
        isinstance(r, dict) and set(r) == set(CRITERIA)
        and all(isinstance(r[c], int) and not isinstance(r[c], bool) and low <= r[c] <= high for c in CRITERIA)
        for r in ratings
    ):
        raise LabelError(400, f"'ratings' must be {num_responses} objects with {', '.join(CRITERIA)} scored "
                              f"{low}..{high}, got {ratings!r:.80}")
    return {"ratings": [{c: r[c] for c in CRITERIA} for r in ratings]}


def dense_ranks(scores: list[float]) -> list[int]:
    """Ranks from scores where higher is better: 1 for the best, equal scores share a rank, no gaps."""
    order = sorted(set(scores), reverse=True)
    return [order.index(s) + 1 for s in scores]


def payload_ranks(kind: str, payload: dict) -> list[int]:
    """A validated payload as ranks (1 = best): a pairwise tie and ``both_bad`` are ties; ratings rank
    by their mean over the criteria."""
    if kind == "rank":
        return list(payload["ranks"])
    if kind == "pairwise":
        return {"A": [1, 2], "B": [2, 1], "tie": [1, 1], "both_bad": [1, 1]}[payload["choice"]]
    return dense_ranks([sum(r.values()) / len(r) for r in payload["ratings"]])


def assign_items(session: Session, project: Project, annotators: list[User]) -> int:
    """Give every item of ``project`` to annotators: gold items to all of them, others to ``overlap``
    of them, least-loaded first (ties by the order given). Existing assignments are kept; returns how
    many were added. Raises AlignkitError when fewer annotators than the overlap are given."""
    if len(annotators) < project.overlap:
        raise AlignkitError(f"project {project.name!r} needs {project.overlap} annotators per item "
                            f"(overlap), got {len(annotators)}")
    ids = [user.id for user in annotators]
    load = dict.fromkeys(ids, 0)
    existing: dict[int, set[int]] = {}
    rows = session.execute(select(Assignment.item_id, Assignment.user_id).join(Item).where(
        Item.project_id == project.id)).all()
    for item_id, user_id in rows:
        existing.setdefault(item_id, set()).add(user_id)
        if user_id in load:
            load[user_id] += 1
    added = 0
    items = session.scalars(select(Item).where(Item.project_id == project.id).order_by(Item.position)).all()
    for item in items:
        have = existing.get(item.id, set())
        want = len(ids) if item.gold is not None else project.overlap
        candidates = sorted((u for u in ids if u not in have), key=lambda u: load[u])
        for user_id in candidates[: max(0, want - len(have))]:
            session.add(Assignment(item_id=item.id, user_id=user_id))
            load[user_id] += 1
            added += 1
    session.commit()
    return added


def next_item(session: Session, project: Project, user: User) -> Item | None:
    """The first item (by position) of ``project`` assigned to ``user`` and not yet labelled by them."""
    labelled = select(Label.item_id).where(Label.user_id == user.id)
    return session.scalars(
        select(Item).join(Assignment, Assignment.item_id == Item.id)
        .where(Item.project_id == project.id, Assignment.user_id == user.id, Item.id.not_in(labelled))
        .order_by(Item.position).limit(1)
    ).first()


def progress(session: Session, project: Project, user: User) -> tuple[int, int]:
    """(labelled, assigned) item counts of ``user`` in ``project``."""
    assigned = session.scalar(select(func.count()).select_from(Assignment).join(Item).where(
        Item.project_id == project.id, Assignment.user_id == user.id))
    done = session.scalar(select(func.count()).select_from(Label).join(Item).where(
        Item.project_id == project.id, Label.user_id == user.id))
    return done, assigned


def assigned_item(session: Session, item_id: int, user: User) -> Item:
    """The item ``item_id`` when it is assigned to ``user``; LabelError(404) otherwise, so an annotator
    cannot tell an unassigned item from a missing one."""
    item = session.scalars(select(Item).join(Assignment, Assignment.item_id == Item.id).where(
        Item.id == item_id, Assignment.user_id == user.id)).first()
    if item is None:
        raise LabelError(404, f"no item {item_id} assigned to you")
    return item


@dataclass(frozen=True)
class Submission:
    payload: dict
    idempotency_key: str
    rationale: str = ""
    flags: tuple[str, ...] = ()


def submit_label(session: Session, user: User, item_id: int, submission: Submission) -> tuple[Label, bool]:
    """Store ``user``'s label for an item assigned to them; returns (label, created).

    A retry with an idempotency key already used by this user for this item returns the stored label
    and ``created=False`` (also when two retries race). The key reused for another item, or a second,
    different label for the same item, raise LabelError(409); a bad payload LabelError(400).
    """
    key = submission.idempotency_key
    if not key or len(key) > 64:
        raise LabelError(400, "'idempotency_key' must be a non-empty string of at most 64 characters")
    existing = _by_key(session, user, key)
    if existing is not None:
        return _replayed(existing, item_id)
    item = assigned_item(session, item_id, user)
    project = session.get(Project, item.project_id)
    payload = validate_payload(project.kind, submission.payload, len(item.responses))
    label = Label(item_id=item.id, user_id=user.id, idempotency_key=key, payload=payload,
                  rationale=submission.rationale[:10_000], flags=sorted(set(submission.flags)))
    session.add(label)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = _by_key(session, user, key)
        if existing is not None:
            return _replayed(existing, item_id)
        raise LabelError(409, f"item {item_id} already has a label from you") from None
    return label, True


def _by_key(session: Session, user: User, key: str) -> Label | None:
    return session.scalars(select(Label).where(Label.user_id == user.id, Label.idempotency_key == key)).first()


def _replayed(label: Label, item_id: int) -> tuple[Label, bool]:
    if label.item_id != item_id:
        raise LabelError(409, "this idempotency_key was already used for another item")
    return label, False
