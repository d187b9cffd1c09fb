"""The FastAPI application: sessions, CSRF, login and the routers of annotators and admins.

``create_app(db_url)`` migrates the database and returns the app. Pages are rendered on the server
with Jinja2 (autoescaped, so model responses holding HTML or scripts show as text); the JSON API
under ``/api`` serves scripts and tests. Who may do what:

- anyone: ``/login``; a signed-in user: ``/logout``, ``/api/session``, the simulator;
- annotators: only items assigned to them and only their own labels (``routes_annotate``);
- admins: everything under ``/admin`` and ``/api/admin`` (``routes_admin``).

Every POST needs the session's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``);
the login form uses a double-submit cookie instead, as there is no session yet.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from alignkit.annotate.db import DEFAULT_DB, User, open_database
from alignkit.annotate.labels import LabelError
from alignkit.annotate.security import (
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    SessionSigner,
    csrf_matches,
    server_secret,
    verify_password,
)

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
LOGIN_CSRF_COOKIE = "alignkit_login_csrf"


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


def create_app(db_url: str = DEFAULT_DB, simulator_model: str = "smollm2-135m") -> FastAPI:
    """The annotation app over the database at ``db_url`` (migrated on creation); the simulator page
    uses ``simulator_model`` (loaded on its first use)."""
    from alignkit.annotate import routes_admin, routes_annotate, routes_simulator

    app = FastAPI(title="alignkit annotate", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sessions = open_database(db_url)
    app.state.simulator_model, app.state.simulator = simulator_model, None
    with app.state.sessions() as session:
        app.state.signer = SessionSigner(server_secret(session))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    _add_handlers(app)
    _add_login_routes(app)
    app.include_router(routes_annotate.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_simulator.router)
    return app


def _add_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, _exc):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "sign in first"}, status_code=401)
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, _exc):
        return JSONResponse({"detail": "forbidden"}, status_code=403)

    @app.exception_handler(LabelError)
    async def _label_error(request: Request, exc: LabelError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.middleware("http")
    async def _security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = "default-src 'self'; object-src 'none'; frame-ancestors 'none'"
        return response


def _add_login_routes(app: FastAPI) -> None:
    @app.get("/login")
    def login_page(request: Request, error: str = ""):
        token = secrets.token_urlsafe(32)
        response = render(request, "login.html", csrf_token=token, error=error)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.post("/login")
    def login(request: Request, db: DB, form: Form):
        if not csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE, ""), form.get("csrf_token")):
            return JSONResponse({"detail": "forbidden: missing or wrong csrf_token"}, status_code=403)
        user = db.scalars(select(User).where(User.username == str(form.get("username", "")))).first()
        db.rollback()  # end the read transaction before the (slow, deliberately) password check
        if user is None or not verify_password(user.password_hash, str(form.get("password", ""))):
            return render(request, "login.html", status_code=401, csrf_token=form.get("csrf_token"),
                          error="Wrong user name or password.")
        cookie, _csrf = request.app.state.signer.new_session(user.id)
        response = RedirectResponse("/admin" if user.role == "admin" else "/", status_code=303)
        response.set_cookie(SESSION_COOKIE, cookie, max_age=SESSION_MAX_AGE, httponly=True, samesite="lax")
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    @app.post("/logout")
    def logout(_user: CsrfUser):
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/api/session")
    def session_info(request: Request, user: CurrentUser):
        return {"username": user.username, "role": user.role, "csrf_token": request.state.csrf}
