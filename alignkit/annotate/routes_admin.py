"""What admins do: create projects and users, import items, assign them, export labels, see quality.

Pages under ``/admin`` (forms post back and redirect); JSON under ``/api/admin``. Every route needs
the admin role (403 otherwise) and every POST the session's CSRF token.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alignkit.annotate.db import TASK_KINDS, Item, Label, Project, User
from alignkit.annotate.dependencies import DB, AdminCsrf, AdminUser, Form, render
from alignkit.annotate.export import AGGREGATES, FORMATS, export_records, to_jsonl
from alignkit.annotate.importing import get_or_create_project, import_text
from alignkit.annotate.labels import LabelError, assign_items
from alignkit.annotate.quality import project_quality
from alignkit.annotate.routes_annotate import label_json
from alignkit.annotate.security import create_user
from alignkit.errors import AlignkitError

router = APIRouter()


def project_or_404(db: Session, project_id: int) -> Project:
    project = db.get(Project, project_id)
    if project is None:
        raise LabelError(404, f"no project {project_id}")
    return project


def _back(url: str, message: str = "", error: str = "") -> RedirectResponse:
    query = urlencode({k: v for k, v in (("message", message), ("error", error)) if v})
    return RedirectResponse(url + (f"?{query}" if query else ""), status_code=303)


@router.get("/admin")
def admin_home(request: Request, user: AdminUser, db: DB, message: str = "", error: str = ""):
    counts = dict(db.execute(select(Item.project_id, func.count()).group_by(Item.project_id)).all())
    projects = [(p, counts.get(p.id, 0)) for p in db.scalars(select(Project).order_by(Project.name))]
    users = db.scalars(select(User).order_by(User.username)).all()
    return render(request, "admin.html", user=user, projects=projects, users=users, kinds=TASK_KINDS,
                  message=message, error=error)


@router.post("/admin/projects")
def create_project(_user: AdminCsrf, db: DB, form: Form):
    try:
        overlap = int(form.get("overlap") or 1)
        if db.scalars(select(Project).where(Project.name == form.get("name", ""))).first() is not None:
            raise AlignkitError(f"project {form.get('name')!r} already exists")
        project = get_or_create_project(db, str(form.get("name", "")), kind=str(form.get("kind", "rank")),
                                        overlap=overlap, guidelines=str(form.get("guidelines", "")))
        db.commit()
    except (AlignkitError, ValueError) as exc:
        return _back("/admin", error=str(exc))
    return _back(f"/admin/projects/{project.id}", message="Project created.")


@router.post("/admin/users")
def add_user(_user: AdminCsrf, db: DB, form: Form):
    try:
        create_user(db, str(form.get("username", "")), str(form.get("password", "")), str(form.get("role", "")))
    except AlignkitError as exc:
        return _back("/admin", error=str(exc))
    return _back("/admin", message=f"User {form.get('username')} created.")


@router.get("/admin/projects/{project_id}")
def project_page(request: Request, project_id: int, user: AdminUser, db: DB, message: str = "", error: str = ""):
    project = project_or_404(db, project_id)
    annotators = db.scalars(select(User).order_by(User.username)).all()
    return render(request, "project.html", user=user, project=project, annotators=annotators,
                  quality=project_quality(db, project), formats=FORMATS, aggregates=AGGREGATES,
                  message=message, error=error)


@router.post("/admin/projects/{project_id}/import")
def import_upload(project_id: int, _user: AdminCsrf, db: DB, form: Form):
    project = project_or_404(db, project_id)
    upload = form.get("file")
    url = f"/admin/projects/{project_id}"
    if upload is None or not hasattr(upload, "read"):
        return _back(url, error="choose a .jsonl file to import")
    try:
        text = upload.file.read().decode("utf-8")
        count = import_text(db, project, text, upload.filename or "upload.jsonl")
    except UnicodeDecodeError:
        return _back(url, error=f"{upload.filename}: not UTF-8 text")
    except AlignkitError as exc:
        db.rollback()
        return _back(url, error=f"{exc} (nothing imported)")
    return _back(url, message=f"Imported {count} items.")


@router.post("/admin/projects/{project_id}/assign")
def assign(project_id: int, _user: AdminCsrf, db: DB, form: Form):
    project = project_or_404(db, project_id)
    names = form.getlist("annotators")
    users = db.scalars(select(User).where(User.username.in_(names)).order_by(User.username)).all()
    try:
        added = assign_items(db, project, list(users))
    except AlignkitError as exc:
        return _back(f"/admin/projects/{project_id}", error=str(exc))
    return _back(f"/admin/projects/{project_id}", message=f"{added} assignments added.")


@router.get("/admin/projects/{project_id}/export")
def export(project_id: int, _user: AdminUser, db: DB, format: str = "pairs", aggregate: str = "majority"):
    project = project_or_404(db, project_id)
    try:
        records = export_records(db, project, format, aggregate)
    except AlignkitError as exc:
        raise LabelError(400, str(exc)) from None
    name = f"{project.name}-{format}.jsonl".replace('"', "")
    return Response(to_jsonl(records), media_type="application/x-ndjson",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/api/admin/projects")
def api_projects(_user: AdminUser, db: DB):
    return [{"id": p.id, "name": p.name, "kind": p.kind, "overlap": p.overlap}
            for p in db.scalars(select(Project).order_by(Project.id))]


@router.get("/api/admin/projects/{project_id}/quality")
def api_quality(project_id: int, _user: AdminUser, db: DB):
    return project_quality(db, project_or_404(db, project_id)).as_dict()


@router.get("/api/admin/projects/{project_id}/labels")
def api_labels(project_id: int, _user: AdminUser, db: DB):
    project_or_404(db, project_id)
    rows = db.execute(select(Label, User.username).join(Item).join(User, User.id == Label.user_id)
                      .where(Item.project_id == project_id).order_by(Label.id)).all()
    return [{**label_json(label), "username": name} for label, name in rows]
