"""Passwords, signed session cookies and CSRF tokens.

- Passwords are hashed with argon2id (``argon2-cffi``); only the hash is stored.
- A session is a cookie holding ``{"uid": user id, "csrf": token}`` signed (HMAC, ``itsdangerous``)
  with a secret kept in the database, so sessions survive restarts and several workers agree. It is
  set ``HttpOnly`` and ``SameSite=Lax`` and expires after :data:`SESSION_MAX_AGE` seconds.
- Every POST must carry the session's CSRF token, as the form field ``csrf_token`` or the header
  ``X-CSRF-Token``; comparison is constant-time.
"""

from __future__ import annotations

import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from alignkit.annotate.db import ROLES, Setting, User
from alignkit.errors import AlignkitError

SESSION_COOKIE = "alignkit_session"
SESSION_MAX_AGE = 7 * 24 * 3600
_HASHER = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salted; the same password gives different hashes)."""
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``; never raises for a wrong or malformed hash."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def server_secret(session: Session) -> str:
    """The session-signing secret stored in the database, created (and committed) on first use."""
    row = session.get(Setting, "session_secret")
    if row is None:
        session.add(Setting(key="session_secret", value=secrets.token_urlsafe(48)))
        session.commit()
        row = session.get(Setting, "session_secret")
    return row.value


class SessionSigner:
    """Signs and reads session cookies with one secret."""

    def __init__(self, secret: str):
        self._serializer = URLSafeTimedSerializer(secret, salt="alignkit-annotate-session")

    def new_session(self, user_id: int) -> tuple[str, str]:
        """(cookie value, csrf token) of a fresh session for ``user_id``."""
        csrf = secrets.token_urlsafe(32)
        return self._serializer.dumps({"uid": user_id, "csrf": csrf}), csrf

    def read(self, cookie: str | None) -> dict | None:
        """The session's ``{"uid", "csrf"}``, or None for a missing, forged or expired cookie."""
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=SESSION_MAX_AGE)
        except BadSignature:
            return None
        return data if isinstance(data, dict) and {"uid", "csrf"} <= data.keys() else None


def csrf_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of the session's CSRF token with the one a request sent."""
    return bool(given) and hmac.compare_digest(expected.encode(), given.encode())


def create_user(session: Session, username: str, password: str, role: str = "annotator") -> User:
    """Add (and commit) a user with an argon2 hash of ``password``; AlignkitError for a bad role, a
    blank or taken name, or a password shorter than 8 characters."""
    if role not in ROLES:
        raise AlignkitError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if not username.strip() or len(username) > 64:
        raise AlignkitError("a user name must be 1 to 64 characters")
    if len(password) < 8:
        raise AlignkitError(f"the password of {username!r} is shorter than 8 characters")
    if session.scalars(select(User).where(User.username == username)).first() is not None:
        raise AlignkitError(f"user {username!r} already exists")
    user = User(username=username, password_hash=hash_password(password), role=role)
    session.add(user)
    session.commit()
    return user
