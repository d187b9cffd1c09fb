"""What the app and its routers share: the page templates, the database session, the signed-in user (with
the admin role, with the session's CSRF token checked), the request bodies, and the errors that say no.

The app (:mod:`alignkit.annotate.app`) turns :class:`NotSignedIn` and :class:`Forbidden` into 401/303 and 403
answers; the routers only depend on these objects, never on the app.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from alignkit.annotate.db import User
from alignkit.annotate.labels import LabelError
from alignkit.annotate.security import SESSION_COOKIE, csrf_matches

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))


class NotSignedIn(Exception):
    """Raised by :func:`current_user`: 401 for the API, a redirect to /login for pages."""


class Forbidden(Exception):
    """Raised when a signed-in user lacks the role a route needs (403)."""


def get_db(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


DB = Annotated[Session, Depends(get_db)]


def current_user(request: Request, db: DB) -> User:
    """The signed-in user (the session's CSRF token is left in ``request.state.csrf``)."""
    data = request.app.state.signer.read(request.cookies.get(SESSION_COOKIE))
    user = db.get(User, data["uid"]) if data else None
    if user is None:
        raise NotSignedIn
    request.state.csrf = data["csrf"]
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def _require_admin(user: User) -> User:
    if user.role != "admin":
        raise Forbidden
    return user


def admin_user(user: CurrentUser) -> User:
    return _require_admin(user)


AdminUser = Annotated[User, Depends(admin_user)]


async def csrf_protect(request: Request, user: CurrentUser) -> User:
    """The signed-in user, after checking the request carries their session's CSRF token (else 403)."""
    given = request.headers.get("x-csrf-token")
    if given is None and "form" in request.headers.get("content-type", ""):
        given = (await request.form()).get("csrf_token")
    if not csrf_matches(request.state.csrf, given):
        raise Forbidden
    return user


CsrfUser = Annotated[User, Depends(csrf_protect)]


def admin_csrf(user: CsrfUser) -> User:
    return _require_admin(user)


AdminCsrf = Annotated[User, Depends(admin_csrf)]


async def read_form(request: Request) -> FormData:
    """The parsed form body, read on the event loop so the (sync) route can use it from its thread."""
    return await request.form()


async def read_json(request: Request) -> Any:
    """The JSON body; LabelError(400) when it is not JSON."""
    try:
        return await request.json()
    except ValueError:
        raise LabelError(400, "expected a JSON body") from None


Form = Annotated[FormData, Depends(read_form)]
JsonBody = Annotated[Any, Depends(read_json)]


def render(request: Request, name: str, status_code: int = 200, **context) -> Response:
    """A page from ``templates/`` with the CSRF token (when signed in) in its context."""
    context.setdefault("csrf_token", getattr(request.state, "csrf", ""))
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)
