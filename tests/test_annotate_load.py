"""20 annotators labelling at once over HTTP against a real uvicorn server on loopback; a server killed
with SIGKILL mid-load loses nothing it acknowledged, and retries with the same keys store each label once.
Run on SQLite, and on PostgreSQL when ALIGNKIT_TEST_POSTGRES_URL is set."""

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from annotate_helpers import fresh_postgres, login, postgres_url, seed, start_server
from sqlalchemy import func, select

from alignkit.annotate.db import Label

ANNOTATORS, PER_ANNOTATOR = 20, 10


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'load.db'}"
    return fresh_postgres(postgres_url())


def annotate(base: str, username: str, acked: dict, stop: threading.Event, keys: dict | None = None) -> None:
    """Label every item assigned to ``username``; record each acknowledged (key, label id) in ``acked``.
    ``keys`` (item id -> key) makes the keys reusable by a retry after a crash."""
    keys = keys if keys is not None else {}
    with httpx.Client(base_url=base, timeout=30) as client:
        client.headers["X-CSRF-Token"] = login(client, username)
        project = 1
        while not stop.is_set():
            item = client.get(f"/api/projects/{project}/next").json()["item"]
            if item is None:
                return
            key = keys.setdefault(item["id"], uuid.uuid4().hex)
            response = client.post(f"/api/items/{item['id']}/labels", json={"ranks": [1, 2], "idempotency_key": key})
            assert response.status_code in (200, 201), response.text
            acked[key] = response.json()["label_id"]


def run_all(base: str, acked: dict, stop: threading.Event, keys: dict) -> list:
    with ThreadPoolExecutor(ANNOTATORS) as pool:
        futures = [pool.submit(annotate, base, f"ann{i}", acked, stop, keys.setdefault(i, {}))
                   for i in range(ANNOTATORS)]
        return [f.exception() for f in futures]


def stored(sessions) -> dict:
    with sessions() as session:
        return dict(session.execute(select(Label.idempotency_key, Label.id)).all())


def test_concurrent_annotators_store_exactly_the_acknowledged_labels(db_url):
    ids = seed(db_url, annotators=ANNOTATORS, n_items=ANNOTATORS * PER_ANNOTATOR, k=2, overlap=1)
    proc, base = start_server(db_url)
    acked: dict = {}
    try:
        start = time.monotonic()
        errors = run_all(base, acked, threading.Event(), {})
        elapsed = time.monotonic() - start
    finally:
        proc.terminate()
        proc.wait(10)
    assert errors == [None] * ANNOTATORS
    assert len(acked) == ANNOTATORS * PER_ANNOTATOR and elapsed < 30
    assert stored(ids["sessions"]) == acked


def test_sigkill_mid_load_loses_nothing_acknowledged_and_retries_store_once(db_url):
    ids = seed(db_url, annotators=ANNOTATORS, n_items=ANNOTATORS * PER_ANNOTATOR, k=2, overlap=1)
    proc, base = start_server(db_url)
    acked: dict = {}
    keys: dict = {}
    stop = threading.Event()
    worker = threading.Thread(target=run_all, args=(base, acked, stop, keys))
    worker.start()
    deadline = time.monotonic() + 30
    while len(acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill()  # SIGKILL: no shutdown handlers run
    proc.wait(10)
    stop.set()
    worker.join(60)
    assert len(acked) >= 40
    after_crash = stored(ids["sessions"])
    assert all(after_crash.get(key) == label_id for key, label_id in acked.items())
    proc, base = start_server(db_url)  # clients retry with the same keys after the restart
    try:
        retried: dict = {}
        assert run_all(base, retried, threading.Event(), keys) == [None] * ANNOTATORS
    finally:
        proc.terminate()
        proc.wait(10)
    final = stored(ids["sessions"])
    assert len(final) == ANNOTATORS * PER_ANNOTATOR
    assert all(final[key] == label_id for key, label_id in acked.items())
    with ids["sessions"]() as session:
        assert session.scalar(select(func.count()).select_from(Label)) == ANNOTATORS * PER_ANNOTATOR
