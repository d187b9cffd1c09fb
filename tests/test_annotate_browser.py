"""The app in a real browser (headless Chromium through Playwright): an annotator signs in, reads the
guidelines, ranks with the keyboard, submits and sees the next item; an admin exports. Screenshots go
to the test's tmp folder."""

import json
from pathlib import Path

import pytest
from annotate_helpers import PASSWORD, seed, start_server

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the 'playwright' package")
if not CHROMIUM.exists():
    pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('web') / 'w.db'}"
    ids = seed(url, annotators=1, n_items=2, overlap=1)
    proc, base = start_server(url)
    yield base, ids
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def sign_in(page, base, username):
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_annotator_ranks_with_the_keyboard(server, browser, tmp_path):
    base, ids = server
    page = browser.new_page()
    sign_in(page, base, "ann0")
    page.click("text=Start")
    page.wait_for_selector("#start")
    assert "Rank the best first." in page.inner_text(".guidelines")
    page.screenshot(path=tmp_path / "guidelines.png")
    page.click("#start")
    first = page.get_attribute("#item", "data-item")
    for key in ("2", "1", "=", "3"):  # response 2 best, then 1 tied with 3
        page.keyboard.press(key)
    assert page.inner_text("#order-hint") == "Order: 2 > 1 = 3"
    assert [page.input_value(f"select[name=rank_{i}]") for i in range(3)] == ["2", "1", "2"]
    page.screenshot(path=tmp_path / "ranked.png")
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelector('#item')?.dataset.item !== '{first}'")
    assert page.inner_text("h1").endswith("1 / 2 done")
    page.screenshot(path=tmp_path / "next.png")
    labels = json.loads(page.evaluate("fetch('/api/labels').then(r => r.text())"))
    assert [label["payload"] for label in labels] == [{"ranks": [2, 1, 2]}]
    assert (tmp_path / "next.png").stat().st_size > 0


@pytest.mark.parametrize("kind", ["pairwise", "rating"])
def test_pairwise_and_rating_tasks_from_the_keyboard(kind, browser, tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    seed(url, annotators=1, n_items=1, k=2, kind=kind, overlap=1)
    proc, base = start_server(url)
    try:
        page = browser.new_page()
        sign_in(page, base, "ann0")
        page.click("text=Start")
        page.click("#start")
        page.wait_for_selector("#label-form")
        page.wait_for_load_state("load")  # the shortcuts are set up when the page's script has run
        keys = ["b"] if kind == "pairwise" else ["7", "6", "5", "1", "2", "3", "Backspace", "4"]
        for key in keys:
            page.keyboard.press(key)
        page.screenshot(path=tmp_path / f"{kind}.png")
        if kind == "rating":
            filled = [page.input_value(f"select[name=rating_{i}_{c}]") for i in range(2)
                      for c in ("helpful", "harmless", "honest")]
            assert filled == ["7", "6", "5", "1", "2", "4"]
        page.keyboard.press("Enter")
        page.wait_for_selector("#all-done")
        labels = json.loads(page.evaluate("fetch('/api/labels').then(r => r.text())"))
        if kind == "pairwise":
            assert labels[0]["payload"]["choice"] == "B"
        else:
            ratings = labels[0]["payload"]["ratings"]
            assert [[r[c] for c in ("helpful", "harmless", "honest")] for r in ratings] == [[7, 6, 5], [1, 2, 4]]
    finally:
        proc.terminate()
        proc.wait(10)


def test_admin_exports(server, browser, tmp_path):
    base, ids = server
    page = browser.new_page()
    sign_in(page, base, "admin")
    page.wait_for_url(f"{base}/admin")
    page.click(f"a[href='/admin/projects/{ids['project']}']")
    page.select_option("select[name=format]", "ranking")
    with page.expect_download() as download:
        page.click("#export")
    path = tmp_path / "export.jsonl"
    download.value.save_as(path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows and rows[0]["ranks"] == [2, 1, 2]
    page.screenshot(path=tmp_path / "admin.png")
