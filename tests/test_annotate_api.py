"""Every endpoint of the annotation app through FastAPI's TestClient on a SQLite file."""

import json
import uuid

import pytest
from annotate_helpers import PASSWORD, XSS, items, login, seed
from fastapi.testclient import TestClient

from alignkit.annotate.app import create_app
from alignkit.annotate.security import SESSION_COOKIE


@pytest.fixture
def world(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    ids = seed(url, n_items=4, gold_every=4)
    app = create_app(url)
    return {**ids, "app": app, "url": url}


def client_for(world, username):
    client = TestClient(world["app"])
    token = login(client, username)
    client.headers["X-CSRF-Token"] = token
    return client


def label(client, item_id, ranks, key=None):
    body = {"ranks": ranks, "idempotency_key": key or uuid.uuid4().hex}
    return client.post(f"/api/items/{item_id}/labels", json=body)


def test_login_session_cookie_flags_and_wrong_password(world):
    client = TestClient(world["app"])
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    bad = client.post("/login", data={"username": "ann0", "password": "nope", "csrf_token": token})
    assert bad.status_code == 401 and "Wrong user name or password" in bad.text
    ok = client.post("/login", data={"username": "ann0", "password": PASSWORD, "csrf_token": token},
                     follow_redirects=False)
    cookie = ok.headers["set-cookie"]
    assert SESSION_COOKIE in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert client.get("/api/session").json()["role"] == "annotator"
    assert TestClient(world["app"]).get("/api/session").status_code == 401
    assert TestClient(world["app"]).get("/", follow_redirects=False).headers["location"] == "/login"


def test_guidelines_first_then_tasks_then_done(world):
    client = client_for(world, "ann0")
    pid = world["project"]
    home = client.get("/")
    assert "p" in home.text and "0 / 4" in home.text
    first = client.get(f"/projects/{pid}/task", follow_redirects=False)
    assert first.headers["location"] == f"/projects/{pid}/guidelines"
    assert "Rank the best first." in client.get(f"/projects/{pid}/guidelines").text
    client.post(f"/projects/{pid}/guidelines", data={"csrf_token": client.headers["X-CSRF-Token"]})
    for _ in range(4):
        page = client.get(f"/projects/{pid}/task")
        item_id = int(page.text.split('data-item="')[1].split('"')[0])
        key = page.text.split('name="idempotency_key" value="')[1].split('"')[0]
        form = {"csrf_token": client.headers["X-CSRF-Token"], "idempotency_key": key, "rank_0": "2", "rank_1": "1",
                "rank_2": "2", "rationale": "second is clearer", "flags": ["unsafe"]}
        done = client.post(f"/projects/{pid}/items/{item_id}/label", data=form, follow_redirects=False)
        assert done.status_code == 303
    assert "All items assigned to you are labelled" in client.get(f"/projects/{pid}/task").text
    mine = client.get("/api/labels").json()
    assert len(mine) == 4 and mine[0]["payload"] == {"ranks": [2, 1, 2]} and mine[0]["flags"] == ["unsafe"]
    assert client.get(f"/api/projects/{pid}/next").json()["item"] is None


def test_json_api_next_item_label_and_idempotent_retry(world):
    client = client_for(world, "ann1")
    nxt = client.get(f"/api/projects/{world['project']}/next").json()
    assert nxt["kind"] == "rank" and "gold" not in nxt["item"]
    item_id = nxt["item"]["id"]
    assert client.get(f"/api/items/{item_id}").json()["responses"][0].startswith("answer")
    first = label(client, item_id, [1, 2, 3], key="k1")
    retry = label(client, item_id, [1, 2, 3], key="k1")
    assert first.status_code == 201 and retry.status_code == 200
    assert first.json()["label_id"] == retry.json()["label_id"] and retry.json()["created"] is False
    assert label(client, item_id, [3, 2, 1], key="k2").status_code == 409  # a second, different label
    assert label(client, item_id + 1, [1, 2, 3], key="k1").status_code == 409  # key reused elsewhere
    assert len(client.get("/api/labels").json()) == 1
    assert client.get(f"/api/labels/{first.json()['label_id']}").json()["payload"] == {"ranks": [1, 2, 3]}


@pytest.mark.parametrize("body", [{"ranks": [1, 2]}, {"ranks": [0, 1, 2]}, {"ranks": [1, 2, True]},
                                  {"choice": "A"}, {"ranks": [1, 2, 3], "flags": ["nope"]}])
def test_bad_label_payloads_are_400(world, body):
    client = client_for(world, "ann0")
    item_id = client.get(f"/api/projects/{world['project']}/next").json()["item"]["id"]
    response = client.post(f"/api/items/{item_id}/labels", json={**body, "idempotency_key": "x"})
    assert response.status_code == 400, response.text


def test_admin_pages_import_assign_export_and_quality(world, tmp_path):
    admin = client_for(world, "admin")
    token = admin.headers["X-CSRF-Token"]
    assert "p" in admin.get("/admin").text
    made = admin.post("/admin/projects", data={"csrf_token": token, "name": "pairs", "kind": "pairwise",
                                               "overlap": "1", "guidelines": "Pick the better."})
    assert made.status_code == 200 and "Project created." in made.text
    pid = next(p["id"] for p in admin.get("/api/admin/projects").json() if p["name"] == "pairs")
    upload = "".join(json.dumps(r) + "\n" for r in items(3, k=2))
    done = admin.post(f"/admin/projects/{pid}/import", data={"csrf_token": token},
                      files={"file": ("new.jsonl", upload, "application/json")})
    assert "Imported 3 items." in done.text
    made_user = admin.post("/admin/users", data={"csrf_token": token, "username": "late", "password": PASSWORD,
                                                 "role": "annotator"})
    assert "User late created." in made_user.text
    assigned = admin.post(f"/admin/projects/{pid}/assign", data={"csrf_token": token, "annotators": ["late"]})
    assert "3 assignments added." in assigned.text
    late = client_for(world, "late")
    item_id = late.get(f"/api/projects/{pid}/next").json()["item"]["id"]
    stored = late.post(f"/api/items/{item_id}/labels", json={"choice": "B", "idempotency_key": "z"})
    assert stored.status_code == 201
    export = admin.get(f"/admin/projects/{pid}/export", params={"format": "pairs"})
    rows = [json.loads(line) for line in export.text.splitlines()]
    assert rows == [{"prompt": [{"role": "user", "content": "Question 0?"}], "chosen": "answer 0.1",
                     "rejected": "answer 0.0", "label": 1.0}]
    assert admin.get(f"/admin/projects/{pid}/export", params={"format": "nope"}).status_code == 400
    assert admin.get(f"/api/admin/projects/{pid}/labels").json()[0]["username"] == "late"
    quality = admin.get(f"/api/admin/projects/{pid}/quality").json()
    assert quality["labels"] == 1 and quality["level"] == "nominal"
    assert "Krippendorff" in admin.get(f"/admin/projects/{pid}").text


def test_import_error_names_file_and_line_and_imports_nothing(world):
    admin = client_for(world, "admin")
    pid = world["project"]
    bad = json.dumps(items(1)[0]) + "\n" + json.dumps({"prompt": "q", "responses": ["only one"]}) + "\n"
    page = admin.post(f"/admin/projects/{pid}/import", data={"csrf_token": admin.headers["X-CSRF-Token"]},
                      files={"file": ("bad.jsonl", bad, "application/json")})
    assert "bad.jsonl:2: 1 responses for a rank project (expected at least 2)" in page.text
    assert "nothing imported" in page.text
    assert admin.get(f"/api/admin/projects/{pid}/quality").json()["items"] == 4


def test_quality_figures_with_gold(world):
    a, b = client_for(world, "ann0"), client_for(world, "ann1")
    for client, ranks in ((a, [1, 2, 3]), (b, [3, 2, 1])):
        for item in range(4):
            nxt = client.get(f"/api/projects/{world['project']}/next").json()["item"]
            assert label(client, nxt["id"], ranks).status_code == 201, item
    quality = client_for(world, "admin").get(f"/api/admin/projects/{world['project']}/quality").json()
    by_name = {row["username"]: row for row in quality["annotators"]}
    assert by_name["ann0"]["gold_accuracy"] == 1.0 and by_name["ann1"]["gold_accuracy"] == 0.0
    assert by_name["ann0"]["gold_labels"] == 1
    assert quality["alpha"] < 0 and quality["raw_agreement"] == pytest.approx(1 / 3)


def test_sql_looking_text_is_stored_verbatim_and_html_is_inert(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    sql = "'; DROP TABLE labels; --"
    seed(url, annotators=1, overlap=1, rows=[{"prompt": sql, "responses": [XSS, "plain"]}])
    app = create_app(url)
    client = client_for({"app": app}, "ann0")
    client.post("/projects/1/guidelines", data={"csrf_token": client.headers["X-CSRF-Token"]})
    page = client.get("/projects/1/task").text
    assert "<script>alert(1)</script>" not in page and "onerror=\"alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert client.get("/api/items/1").json()["prompt"][0]["content"] == sql
    stored = client.post("/api/items/1/labels", json={"ranks": [2, 1], "idempotency_key": "k",
                                                      "rationale": sql}).json()
    assert client.get(f"/api/labels/{stored['label_id']}").json()["rationale"] == sql
