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

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import select

from alignkit.annotate import routes_admin, routes_annotate, routes_simulator
from alignkit.annotate.db import DEFAULT_DB, User, open_database
from alignkit.annotate.dependencies import DB, HERE, CsrfUser, CurrentUser, Forbidden, Form, NotSignedIn, render
from alignkit.annotate.labels import LabelError
from alignkit.annotate.security import (
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    SessionSigner,
    csrf_matches,
    server_secret,
    verify_password,
)

LOGIN_CSRF_COOKIE = "alignkit_login_csrf"


def create_app(db_url: str = DEFAULT_DB, simulator_model: str = "smollm2-135m") -> FastAPI:
    """The annotation app over the database at ``db_url`` (migrated on creation); the simulator page
    uses ``simulator_model`` (loaded on its first use)."""
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
