"""Annotators cannot read or change others' labels, see unassigned items or reach admin endpoints;
every POST needs the CSRF token; forged sessions are refused."""

import pytest
from annotate_helpers import login, seed
from fastapi.testclient import TestClient

from alignkit.annotate.app import create_app
from alignkit.annotate.security import SESSION_COOKIE, hash_password, verify_password


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('sec') / 's.db'}"
    seed(url, annotators=2, n_items=2, overlap=1)  # item 1 -> ann0, item 2 -> ann1
    return create_app(url)


@pytest.fixture(scope="module")
def clients(app):
    out = {}
    for name in ("ann0", "ann1", "admin"):
        client = TestClient(app)
        client.headers["X-CSRF-Token"] = login(client, name)
        out[name] = client
    return out


ADMIN_GETS = ["/admin", "/admin/projects/1", "/admin/projects/1/export", "/api/admin/projects",
              "/api/admin/projects/1/quality", "/api/admin/projects/1/labels"]
ADMIN_POSTS = ["/admin/projects", "/admin/users", "/admin/projects/1/import", "/admin/projects/1/assign"]


def test_passwords_are_hashed_with_argon2():
    stored = hash_password("s3cret-pass")
    assert stored.startswith("$argon2id$") and "s3cret-pass" not in stored
    assert verify_password(stored, "s3cret-pass") and not verify_password(stored, "wrong")
    assert not verify_password("not a hash", "s3cret-pass")


def test_annotator_reaches_no_admin_endpoint(clients):
    ann = clients["ann0"]
    for path in ADMIN_GETS:
        assert ann.get(path).status_code == 403, path
    for path in ADMIN_POSTS:
        assert ann.post(path, data={"csrf_token": ann.headers["X-CSRF-Token"]}).status_code == 403, path


def test_annotator_sees_only_assigned_items_and_own_labels(clients):
    ann0, ann1 = clients["ann0"], clients["ann1"]
    assert ann0.get("/api/items/1").status_code == 200
    assert ann0.get("/api/items/2").status_code == 404  # assigned to ann1: looks like it does not exist
    assert ann0.get("/api/items/999").status_code == 404
    assert ann0.post("/api/items/2/labels", json={"ranks": [1, 2, 3], "idempotency_key": "a"}).status_code == 404
    theirs = ann1.post("/api/items/2/labels", json={"ranks": [1, 2, 3], "idempotency_key": "b"}).json()["label_id"]
    assert ann0.get(f"/api/labels/{theirs}").status_code == 404
    assert ann0.get("/api/labels").json() == []
    # the same key as ann1 used is a different key for ann0, and cannot touch ann1's label
    assert ann0.post("/api/items/2/labels", json={"ranks": [3, 2, 1], "idempotency_key": "b"}).status_code == 404
    assert ann1.get(f"/api/labels/{theirs}").json()["payload"] == {"ranks": [1, 2, 3]}
    assert ann0.get("/projects/2/task").status_code in (200, 404)  # project 1 only


def test_posts_without_or_with_a_wrong_csrf_token_are_rejected(app, clients):
    ann = TestClient(app)
    token = login(ann, "ann0")
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        response = ann.post("/api/items/1/labels", json={"ranks": [1, 2, 3], "idempotency_key": "c"}, headers=headers)
        assert response.status_code == 403
    assert ann.post("/projects/1/guidelines", data={}).status_code == 403
    assert ann.post("/logout", data={"csrf_token": "forged"}).status_code == 403
    admin = TestClient(app)
    login(admin, "admin")
    new_user = {"username": "x", "password": "12345678", "role": "admin"}
    assert admin.post("/admin/users", data=new_user).status_code == 403
    assert ann.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303


def test_login_form_needs_its_csrf_cookie_and_forged_sessions_fail(app):
    client = TestClient(app)
    assert client.post("/login", data={"username": "ann0", "password": "x", "csrf_token": "t"}).status_code == 403
    client.cookies.set(SESSION_COOKIE, "eyJ1aWQiOjF9.forged.sig")
    assert client.get("/api/session").status_code == 401


def test_pages_send_protective_headers(clients):
    headers = clients["ann0"].get("/").headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
