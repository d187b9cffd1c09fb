"""Items in from JSON lines, all or nothing.

Each line: ``{"prompt": str | chat messages, "responses": [K strings], "gold": ...}`` where the
optional ``gold`` is the known answer of a gold item: ranks (``[1, 3, 2]``, 1 = best, ties allowed)
for any project, or for a pairwise project one of ``"A"``, ``"B"``, ``"tie"``, ``"both_bad"``.
A pairwise project needs exactly 2 responses per line, others at least 2.

Every line is checked before anything is written; the first bad one raises
:class:`~alignkit.errors.DataError` naming ``file:line`` and what was expected, and nothing is
imported. The items are then added in one transaction.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alignkit.annotate.db import TASK_KINDS, Item, Project
from alignkit.annotate.labels import CHOICES, payload_ranks
from alignkit.data.records import as_messages
from alignkit.errors import AlignkitError, DataError


def get_or_create_project(session: Session, name: str, *, kind: str = "rank", overlap: int = 1,
                          guidelines: str = "") -> Project:
    """The project called ``name``, created with the given settings when it does not exist (not committed)."""
    project = session.scalars(select(Project).where(Project.name == name)).first()
    if project is not None:
        return project
    if kind not in TASK_KINDS:
        raise AlignkitError(f"project kind {kind!r} is not one of {', '.join(TASK_KINDS)}")
    if not name.strip() or overlap < 1:
        raise AlignkitError("a project needs a non-blank name and an overlap >= 1")
    project = Project(name=name, kind=kind, overlap=overlap, guidelines=guidelines)
    session.add(project)
    session.flush()
    return project


def parse_item(row: dict, location: str, kind: str) -> dict:
    """The item fields of one line (``prompt`` as messages, ``responses``, ``gold`` as ranks or None)."""
    if "prompt" not in row or "responses" not in row:
        raise DataError(location, "missing field 'prompt' or 'responses' (expected {\"prompt\": str or messages, "
                                  "\"responses\": [strings], optional \"gold\"})")
    prompt = list(as_messages(row["prompt"], location))
    responses = row["responses"]
    if not isinstance(responses, list) or not all(isinstance(r, str) and r.strip() for r in responses):
        raise DataError(location, f"'responses' must be a list of non-blank strings, got {responses!r:.80}")
    need = "exactly 2" if kind == "pairwise" else "at least 2"
    if len(responses) < 2 or (kind == "pairwise" and len(responses) != 2):
        raise DataError(location, f"{len(responses)} responses for a {kind} project (expected {need})")
    return {"prompt": prompt, "responses": responses, "gold": _gold(row.get("gold"), len(responses), location)}


def _gold(gold, k: int, location: str) -> list[int] | None:
    if gold is None:
        return None
    if k == 2 and gold in CHOICES:
        return payload_ranks("pairwise", {"choice": gold})
    if isinstance(gold, list) and len(gold) == k and all(
        isinstance(r, int) and not isinstance(r, bool) and 1 <= r <= k for r in gold
    ):
        return gold
    choices = f", or one of {', '.join(CHOICES)}" if k == 2 else ""
    raise DataError(location, f"'gold' must be {k} ranks in 1..{k} (1 = best){choices}, got {gold!r:.60}")


def import_items(session: Session, project: Project, path: str | Path) -> int:
    """Add every line of the JSONL file ``path`` to ``project`` in one transaction; returns the count.

    Any bad line raises DataError (``file:line: problem``) before anything is written.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(str(path), f"cannot read this file ({exc}); expected a UTF-8 .jsonl file of items") from None
    return import_text(session, project, text, str(path))


def import_text(session: Session, project: Project, text: str, name: str) -> int:
    """Like :func:`import_items` for JSON lines already read; ``name`` is the file name in errors."""
    parsed = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            location = f"{name}:{line_no}"
            parsed.append(parse_item(_json_object(line, location), location, project.kind))
    if not parsed:
        raise DataError(name, "no items (expected one JSON object per line)")
    start = session.scalar(select(func.coalesce(func.max(Item.position), -1)).where(
        Item.project_id == project.id)) + 1
    session.add_all(Item(project_id=project.id, position=start + i, **fields) for i, fields in enumerate(parsed))
    session.commit()
    return len(parsed)


def _json_object(line: str, location: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(location, f"not valid JSON ({exc.msg} at column {exc.colno}); expected one JSON object "
                                  "per line") from None
    if not isinstance(row, dict):
        raise DataError(location, f"expected a JSON object per line, got a JSON {type(row).__name__}")
    return row
