"""What annotators do: see their projects, read the guidelines, label the next assigned item.

Pages: ``/`` (my projects), ``/projects/{id}/guidelines``, ``/projects/{id}/task`` (the next item;
the guidelines first when not yet read). JSON: ``/api/projects/{id}/next``, ``/api/items/{id}``,
``POST /api/items/{id}/labels``, ``/api/labels`` (my labels). A project or item not assigned to the
user answers 404, exactly like one that does not exist; labels of other users are never returned.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from alignkit.annotate.db import Assignment, GuidelinesSeen, Item, Label, Project, User
from alignkit.annotate.dependencies import DB, CsrfUser, CurrentUser, Form, JsonBody, render
from alignkit.annotate.labels import (
    CRITERIA,
    LabelError,
    Submission,
    assigned_item,
    next_item,
    progress,
    submit_label,
)

router = APIRouter()
FLAGS = ("unsafe", "factually_wrong", "nonsense", "skip_unsure")


def my_project(db: Session, project_id: int, user: User) -> Project:
    """The project when the user has an assignment in it; LabelError(404) otherwise."""
    project = db.scalars(select(Project).join(Item).join(Assignment, Assignment.item_id == Item.id).where(
        Project.id == project_id, Assignment.user_id == user.id).limit(1)).first()
    if project is None:
        raise LabelError(404, f"no project {project_id} assigned to you")
    return project


def item_json(item: Item) -> dict:
    """What an annotator may see of an item (never its gold answer)."""
    return {"id": item.id, "project_id": item.project_id, "prompt": item.prompt, "responses": item.responses}


def label_json(label: Label) -> dict:
    return {"id": label.id, "item_id": label.item_id, "payload": label.payload, "rationale": label.rationale,
            "flags": label.flags, "created_at": label.created_at.isoformat()}


@router.get("/")
def home(request: Request, user: CurrentUser, db: DB):
    projects = db.scalars(select(Project).join(Item).join(Assignment, Assignment.item_id == Item.id).where(
        Assignment.user_id == user.id).distinct().order_by(Project.name)).all()
    rows = [(project, *progress(db, project, user)) for project in projects]
    return render(request, "home.html", user=user, rows=rows)


@router.get("/projects/{project_id}/guidelines")
def guidelines(request: Request, project_id: int, user: CurrentUser, db: DB):
    return render(request, "guidelines.html", user=user, project=my_project(db, project_id, user))


@router.post("/projects/{project_id}/guidelines")
def guidelines_read(project_id: int, user: CsrfUser, db: DB):
    my_project(db, project_id, user)
    seen = select(GuidelinesSeen).where(GuidelinesSeen.project_id == project_id, GuidelinesSeen.user_id == user.id)
    if db.scalars(seen).first() is None:
        db.add(GuidelinesSeen(project_id=project_id, user_id=user.id))
        db.commit()
    return RedirectResponse(f"/projects/{project_id}/task", status_code=303)


@router.get("/projects/{project_id}/task")
def task(request: Request, project_id: int, user: CurrentUser, db: DB):
    project = my_project(db, project_id, user)
    seen = select(GuidelinesSeen).where(GuidelinesSeen.project_id == project_id, GuidelinesSeen.user_id == user.id)
    if db.scalars(seen).first() is None:
        return RedirectResponse(f"/projects/{project_id}/guidelines", status_code=303)
    item = next_item(db, project, user)
    done, assigned = progress(db, project, user)
    return render(request, "task.html", user=user, project=project, item=item, done=done, assigned=assigned,
                  criteria=CRITERIA, flags=FLAGS, idempotency_key=uuid.uuid4().hex)


def form_submission(kind: str, form, num_responses: int) -> Submission:
    """A Submission from the task page's form fields (``rank_i``, ``choice`` or ``rating_i_criterion``)."""
    def number(name):
        value = form.get(name, "")
        return int(value) if str(value).isdigit() else value

    if kind == "rank":
        payload = {"ranks": [number(f"rank_{i}") for i in range(num_responses)]}
    elif kind == "pairwise":
        payload = {"choice": form.get("choice")}
    else:
        payload = {"ratings": [{c: number(f"rating_{i}_{c}") for c in CRITERIA} for i in range(num_responses)]}
    flags = tuple(flag for flag in form.getlist("flags") if flag in FLAGS)
    return Submission(payload=payload, idempotency_key=str(form.get("idempotency_key", "")),
                      rationale=str(form.get("rationale", "")), flags=flags)


@router.post("/projects/{project_id}/items/{item_id}/label")
def submit_form(project_id: int, item_id: int, user: CsrfUser, db: DB, form: Form):
    item = assigned_item(db, item_id, user)
    project = my_project(db, project_id, user)
    if item.project_id != project.id:
        raise LabelError(404, f"no item {item_id} in project {project_id}")
    submit_label(db, user, item_id, form_submission(project.kind, form, len(item.responses)))
    return RedirectResponse(f"/projects/{project_id}/task", status_code=303)


@router.get("/api/projects/{project_id}/next")
def api_next(project_id: int, user: CurrentUser, db: DB):
    project = my_project(db, project_id, user)
    item = next_item(db, project, user)
    done, assigned = progress(db, project, user)
    return {"kind": project.kind, "item": item_json(item) if item else None, "done": done, "assigned": assigned}


@router.get("/api/items/{item_id}")
def api_item(item_id: int, user: CurrentUser, db: DB):
    return item_json(assigned_item(db, item_id, user))


@router.post("/api/items/{item_id}/labels")
def api_submit(item_id: int, user: CsrfUser, db: DB, body: JsonBody):
    """Body: ``{"idempotency_key", "ranks" | "choice" | "ratings", "rationale"?, "flags"?}``; 201 when
    stored, 200 when the same key was already stored (the same label id comes back)."""
    if not isinstance(body, dict):
        raise LabelError(400, "expected a JSON object")
    payload = {key: body[key] for key in ("ranks", "choice", "ratings") if key in body}
    flags = body.get("flags") or []
    if not isinstance(flags, list) or not all(flag in FLAGS for flag in flags):
        raise LabelError(400, f"'flags' must be a list of {', '.join(FLAGS)}")
    submission = Submission(payload=payload, idempotency_key=str(body.get("idempotency_key") or ""),
                            rationale=str(body.get("rationale") or ""), flags=tuple(flags))
    label, created = submit_label(db, user, item_id, submission)
    return JSONResponse({"label_id": label.id, "created": created}, status_code=201 if created else 200)


@router.get("/api/labels")
def api_my_labels(user: CurrentUser, db: DB, project_id: int | None = None):
    query = select(Label).where(Label.user_id == user.id).order_by(Label.id)
    if project_id is not None:
        query = query.join(Item).where(Item.project_id == project_id)
    return [label_json(label) for label in db.scalars(query)]


@router.get("/api/labels/{label_id}")
def api_my_label(label_id: int, user: CurrentUser, db: DB):
    label = db.get(Label, label_id)
    if label is None or label.user_id != user.id:
        raise LabelError(404, f"no label {label_id} of yours")
    return label_json(label)
