"""Shared builders for the annotation-app tests: a seeded database, signed-in clients, a live server."""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the annotation app needs the 'app' extra: pip install -e '.[app]'")

from alignkit.annotate.db import User, open_database  # noqa: E402
from alignkit.annotate.importing import get_or_create_project, import_text  # noqa: E402
from alignkit.annotate.labels import assign_items  # noqa: E402
from alignkit.annotate.security import create_user  # noqa: E402

PASSWORD = "correct horse battery"
XSS = '<script>alert(1)</script><img src=x onerror="alert(2)">'
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def items(n: int, k: int = 3, gold_every: int = 0) -> list[dict]:
    """``n`` items with ``k`` responses; every ``gold_every``-th one is gold with ranks 1..k in order."""
    rows = []
    for i in range(n):
        row = {"prompt": f"Question {i}?", "responses": [f"answer {i}.{j}" for j in range(k)]}
        if gold_every and i % gold_every == 0:
            row["gold"] = list(range(1, k + 1))
        rows.append(row)
    return rows


def seed(url: str, *, annotators: int = 2, n_items: int = 4, k: int = 3, kind: str = "rank", overlap: int = 2,
         gold_every: int = 0, rows: list[dict] | None = None) -> dict:
    """Admin ``admin``, annotators ``ann0..``, one project ``p`` with items assigned; returns ids."""
    sessions = open_database(url)
    with sessions() as session:
        admin = create_user(session, "admin", PASSWORD, "admin")
        users = [User(username=f"ann{i}", password_hash=admin.password_hash, role="annotator")
                 for i in range(annotators)]  # one argon2 hash for all: hashing is slow on purpose
        session.add_all(users)
        session.flush()
        project = get_or_create_project(session, "p", kind=kind, overlap=overlap, guidelines="Rank the best first.")
        text = "".join(json.dumps(r) + "\n" for r in (rows or items(n_items, k, gold_every)))
        import_text(session, project, text, "items.jsonl")
        assign_items(session, project, users)
        return {"project": project.id, "sessions": sessions}


def login(client, username: str, password: str = PASSWORD) -> str:
    """Sign ``client`` in (through the login form and its CSRF cookie); returns the session CSRF token."""
    page = client.get("/login")
    token = CSRF_FIELD.search(page.text).group(1)
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return client.get("/api/session").json()["csrf_token"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SERVER = "import sys, uvicorn; from alignkit.annotate.app import create_app; " \
         "uvicorn.run(create_app(sys.argv[1]), host='127.0.0.1', port=int(sys.argv[2]), log_level='warning')"


def start_server(url: str) -> tuple[subprocess.Popen, str]:
    """A uvicorn server of the app over ``url`` in its own process on a free loopback port."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, url, str(port)], env=env, cwd=Path(__file__).parent)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, base
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the server exited while starting") from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start within 30 s")


def postgres_url() -> str:
    """ALIGNKIT_TEST_POSTGRES_URL, or skip with the reason."""
    url = os.environ.get("ALIGNKIT_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("PostgreSQL tests need ALIGNKIT_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test)")
    return url


def fresh_postgres(url: str) -> str:
    """Drop every table of the test database so each test starts empty; returns ``url``."""
    from sqlalchemy import text

    from alignkit.annotate.db import make_engine

    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    return url
