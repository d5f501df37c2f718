"""The dashboard in a real browser (headless Chromium) against a live ``keeldb serve``.

Each test starts from a signed-out tab. Screenshots of every page go to the artefacts
directory (see conftest.py).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client"))  # wordhash_embedding

from ui_util import (  # noqa: E402  (importlib mode: this directory is put on sys.path)
    ADMIN_KEY,
    ARTIFACTS,
    RARE_WORD,
    READ_ONLY_KEY,
    TEAM_A_KEY,
    WRONG_KEY,
    XSS_IMG,
    XSS_SCRIPT,
    Dataset,
)
from wordhash_embedding import WordHash  # noqa: E402

import keeldb  # noqa: E402
from keeldb.server.testing import ServerProcess  # noqa: E402

Live = tuple[ServerProcess, Dataset]
TIMEOUT_S = 10


def by_id(browser: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, element_id)


def displayed(browser: Any, element_id: str) -> Any:
    """The element once it is displayed (a user can type into it), else False."""
    element = by_id(browser, element_id)
    return element if element.is_displayed() else False


def present(browser: Any, element_id: str) -> bool:
    from selenium.webdriver.common.by import By

    return bool(browser.find_elements(By.ID, element_id))


def wait_for(browser: Any, condition: Callable[[Any], Any], what: str) -> Any:
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    # The page redraws parts of itself (charts, tables): retry a condition that caught an
    # element just before it was replaced.
    ignored = (NoSuchElementException, StaleElementReferenceException)
    wait = WebDriverWait(browser, TIMEOUT_S, ignored_exceptions=ignored)
    try:
        return wait.until(condition, message=f"waiting for {what}")
    except TimeoutException:
        # Leave the evidence next to the screenshots.
        name = "timeout-" + "".join(c if c.isalnum() else "-" for c in what)
        browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))
        (ARTIFACTS / f"{name}.log").write_text(
            browser.current_url + "\n" + "\n".join(e["message"] for e in browser.get_log("browser"))
        )
        raise


def visible_text(browser: Any, element_id: str) -> str:
    """The element's text once it is displayed and not empty."""

    def text(b: Any) -> str:
        if not present(b, element_id) or not by_id(b, element_id).is_displayed():
            return ""
        return str(by_id(b, element_id).text)

    result: str = wait_for(browser, text, f"#{element_id} to show text")
    return result


def open_signed_out(browser: Any, url: str) -> None:
    # Forget the key on a page of the same origin that runs no dashboard script (a
    # dashboard page still signing in would store its key again).
    browser.get(url + "/healthz")
    browser.execute_script("sessionStorage.clear()")
    browser.get(url + "/ui")
    wait_for(browser, lambda b: by_id(b, "signin").is_displayed(), "the sign-in form")


def sign_in(browser: Any, url: str, key: str) -> None:
    open_signed_out(browser, url)
    field = by_id(browser, "key-input")
    field.send_keys(key)
    by_id(browser, "signin-button").click()
    wait_for(browser, lambda b: by_id(b, "overview").is_displayed(), "the overview")


def overview_rows(browser: Any) -> dict[str, str]:
    """workspace/name -> the rows column, once the collections table is filled."""
    from selenium.webdriver.common.by import By

    def rows(b: Any) -> dict[str, str] | None:
        found = {
            tr.get_attribute("data-collection"): tr.find_element(By.CSS_SELECTOR, "td.rows").text
            for tr in b.find_elements(By.CSS_SELECTOR, "#collections tbody tr")
        }
        return found or None

    result: dict[str, str] = wait_for(browser, rows, "the collections table")
    return result


def open_collection(browser: Any, url: str, ws: str, name: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{url}/ui#/c/{ws}/{name}")
    wait_for(
        browser,
        lambda b: b.find_elements(By.CSS_SELECTOR, "#records tbody tr[data-id]"),
        f"the records of {ws}/{name}",
    )


def hit_ids(browser: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [
        tr.get_attribute("data-id")
        for tr in browser.find_elements(By.CSS_SELECTOR, "#hits tbody tr[data-id]")
    ]


def wait_for_hits(browser: Any, previous: list[str] | None = None) -> list[str]:
    def ready(b: Any) -> list[str] | None:
        if not by_id(b, "search-results").is_displayed():
            return None
        ids = hit_ids(b)
        return ids if ids and ids != previous else None

    result: list[str] = wait_for(browser, ready, "search hits")
    return result


def assert_no_alert(browser: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 (the access is the check)


def console_errors(browser: Any) -> list[str]:
    """Console errors since the last call: script errors and CSP violations (an HTTP error
    status the page expected, such as the first sign-in probe's 401, is not one)."""
    return [
        e["message"]
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE"
        and "Failed to load resource: the server responded" not in e["message"]
    ]


def fetch_status(browser: Any, method: str, path: str, key: str, body: Any = None) -> Any:
    """Send a request from the page itself (as a forged click would) and return
    ``[status, json]``."""
    script = """
        const [method, path, key, body, done] = arguments;
        const init = {method, headers: {"Authorization": "Bearer " + key}};
        if (body !== null) {
            init.body = JSON.stringify(body);
            init.headers["Content-Type"] = "application/json";
        }
        fetch(path, init).then(async r => done([r.status, await r.json()]))
            .catch(e => done([0, String(e)]));
    """
    return browser.execute_async_script(script, method, path, key, body)


def expected_neighbours(data: Dataset, query: np.ndarray, k: int) -> list[str]:
    ids = list(data.vectors)
    matrix = np.stack([data.vectors[i] for i in ids])
    order = np.argsort(((matrix - query) ** 2).sum(axis=1), kind="stable")
    return [ids[i] for i in order[:k]]


# --- the tests ---------------------------------------------------------------------------


def test_wrong_key_is_refused(browser: Any, live: Live, screenshot: Any) -> None:
    server, _ = live
    open_signed_out(browser, server.url)
    by_id(browser, "key-input").send_keys(WRONG_KEY)
    by_id(browser, "signin-button").click()
    message = visible_text(browser, "signin-error")
    assert "refused" in message
    assert not by_id(browser, "overview").is_displayed()
    assert browser.execute_script("return sessionStorage.getItem('keeldb.key')") is None
    screenshot("signin-refused")


def test_sign_in_overview_lists_collections_with_counts(
    browser: Any, live: Live, screenshot: Any
) -> None:
    server, data = live
    console_errors(browser)
    sign_in(browser, server.url, ADMIN_KEY)
    rows = overview_rows(browser)
    assert {k: int(v.replace(",", "")) for k, v in rows.items()} == data.counts
    assert "admin" in by_id(browser, "whoami").text
    # The key is in sessionStorage, never in the URL.
    assert ADMIN_KEY not in browser.current_url
    assert browser.execute_script("return sessionStorage.getItem('keeldb.key')") == ADMIN_KEY
    # Admin key: the live charts draw /metrics between polls. 60 searches (a route whose
    # template holds braces) must show as a rate of several per second.
    wait_for(browser, lambda b: "max" in by_id(b, "chart-rate").text, "the first rate")
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    ) as c:
        for _ in range(60):
            c.post(
                "/v1/workspaces/default/collections/products/search", json={"vector": [0.0] * 8}
            ).raise_for_status()

    def peak_rate(b: Any) -> float:
        match = re.search(r"max ([0-9.]+)", by_id(b, "chart-rate").text)
        return float(match.group(1)) if match else 0.0

    wait_for(browser, lambda b: peak_rate(b) >= 5, "the searches in the rate chart")
    wait_for(browser, lambda b: "ms" in by_id(b, "chart-latency").text, "latency percentiles")
    screenshot("overview")
    assert console_errors(browser) == []


def test_more_like_this_and_vector_search_show_the_expected_hits(
    browser: Any, live: Live, screenshot: Any
) -> None:
    from selenium.webdriver.common.by import By

    server, data = live
    sign_in(browser, server.url, ADMIN_KEY)
    open_collection(browser, server.url, "default", "products")
    screenshot("collection-browse")
    # Open p07 from the browse table, then "More like this".
    row = browser.find_element(By.CSS_SELECTOR, "#records tr[data-id='p07']")
    row.find_element(By.CSS_SELECTOR, "button.open-record").click()
    wait_for(browser, lambda b: by_id(b, "record-panel").is_displayed(), "the record panel")
    assert json.loads(by_id(browser, "record-metadata").text) == data.metadata["p07"]
    assert "8" in by_id(browser, "record-vector").text  # the dimension
    screenshot("record")
    by_id(browser, "more-like-this").click()
    ids = wait_for_hits(browser)
    assert ids == expected_neighbours(data, data.vectors["p07"], 10)
    assert ids[0] == "p07"
    stats = by_id(browser, "search-stats").text.lower()
    assert "mem: exact" in stats or "seg-" in stats
    assert "engine time" in stats

    # A pasted vector near p23, with a filter and k = 5.
    mode = by_id(browser, "search-mode")
    mode.find_element(By.CSS_SELECTOR, "option[value='vector']").click()
    query = data.vectors["p23"] + np.float32(0.01)
    by_id(browser, "mode-vector").send_keys(json.dumps([float(x) for x in query]))
    by_id(browser, "search-filter-input").send_keys('{"year": {"$gte": 2018}}')
    k = by_id(browser, "search-k")
    k.clear()
    k.send_keys("5")
    by_id(browser, "search-button").click()
    hits = wait_for_hits(browser, ids)
    eligible = Dataset(
        {i: v for i, v in data.vectors.items() if data.metadata[i]["year"] >= 2018},
        data.metadata,
        data.counts,
        data.documents,
    )
    assert hits == expected_neighbours(eligible, query, 5)
    assert hits[0] == "p23"
    matching = sum(m["year"] >= 2018 for m in data.metadata.values())
    assert f"yes, {matching} matching rows" in by_id(browser, "search-stats").text.lower()
    screenshot("collection-search")


def choose_mode(browser: Any, mode: str) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR, ".tab[data-tab='search']").click()
    by_id(browser, "search-mode").find_element(By.CSS_SELECTOR, f"option[value='{mode}']").click()


def hit_documents(browser: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#hits td.hit-document")]


def test_full_text_and_hybrid_search_show_the_expected_top_hit(
    browser: Any, live: Live, screenshot: Any
) -> None:
    server, data = live
    sign_in(browser, server.url, READ_ONLY_KEY)  # searching needs no write permission
    open_collection(browser, server.url, "default", "products")
    with keeldb.Client(server.url, api_key=ADMIN_KEY) as client:
        col = client.get_collection("products")
        expected_text = col.text_search(f"{RARE_WORD} lamp", k=10)
        expected_hybrid = col.hybrid_search("lamp", 10, vector=data.vectors["p07"])
    choose_mode(browser, "text")
    assert not by_id(browser, "search-ef").is_enabled()  # no HNSW walk to steer
    by_id(browser, "mode-text-query").send_keys(f"{RARE_WORD} lamp")
    by_id(browser, "search-button").click()
    ids = wait_for_hits(browser)
    assert ids == [h.id for h in expected_text] and ids[0] == "p13"
    assert hit_documents(browser)[0] == data.documents["p13"]
    assert "score (BM25)" in by_id(browser, "hits").text
    assert "full text" in by_id(browser, "search-stats").text
    screenshot("collection-text-search")

    # Hybrid: the same words' neighbour p13 and the record p07's own vector, fused.
    choose_mode(browser, "hybrid")
    by_id(browser, "mode-hybrid-query").send_keys("lamp")
    by_id(browser, "search-button").click()
    message = visible_text(browser, "search-error")
    assert "needs a vector" in message
    by_id(browser, "mode-hybrid-record").send_keys("p07")
    by_id(browser, "search-button").click()
    hybrid = wait_for_hits(browser, ids)
    assert hybrid == [h.id for h in expected_hybrid]
    assert set(hybrid[:2]) == {"p07", "p13"}  # the dense and the text side's winners
    assert "reciprocal-rank fusion" in by_id(browser, "search-stats").text
    screenshot("collection-hybrid-search")


ARTICLES = [
    "the quick brown fox jumps",
    "lazy dogs sleep all day",
    "a quick dog runs home",
    "vector databases store embeddings",
    "full text search finds rare terms",
]


def test_text_search_through_the_embedding_function_shows_the_expected_top_hit(
    browser: Any, live: Live, screenshot: Any
) -> None:
    """A collection with an embedding function: the overview and the collection page name
    it and the analyser; "text (embedding)" searches by meaning, and hybrid search needs
    no vector (the server embeds the words)."""
    from selenium.webdriver.common.by import By

    server, _ = live
    client = keeldb.Client(server.url, api_key=ADMIN_KEY)
    col = client.create_collection("articles", embedding=WordHash())
    try:
        ids = [f"a{i}" for i in range(len(ARTICLES))]
        col.upsert(ids, documents=ARTICLES)
        expected = col.search("quick fox", k=5)
        expected_hybrid = col.hybrid_search("quick dog", 5)
        assert expected[0].id == "a0" and expected_hybrid[0].id == "a2"

        sign_in(browser, server.url, READ_ONLY_KEY)
        overview_rows(browser)
        row = browser.find_element(
            By.CSS_SELECTOR, '#collections tr[data-collection="default/articles"]'
        )
        assert row.find_element(By.CSS_SELECTOR, "td.embedding").text == "test-word-hash"
        assert row.find_element(By.CSS_SELECTOR, "td.analyzer").text == "standard (english)"
        # the full-text index from stats().text: its live documents, then its bytes
        text_cell = row.find_element(By.CSS_SELECTOR, "td.text-index").text
        assert text_cell.startswith(f"{len(ARTICLES)} docs, "), text_cell
        other = browser.find_element(
            By.CSS_SELECTOR, '#collections tr[data-collection="default/products"]'
        )
        assert other.find_element(By.CSS_SELECTOR, "td.embedding").text == "—"
        screenshot("overview-embedding")

        open_collection(browser, server.url, "default", "articles")
        assert "test-word-hash" in by_id(browser, "col-facts").text
        choose_mode(browser, "embedding")
        assert by_id(browser, "search-ef").is_enabled()  # a dense search: HNSW steering applies
        by_id(browser, "mode-embedding-query").send_keys("quick fox")
        by_id(browser, "search-button").click()
        found = wait_for_hits(browser)
        assert found == [h.id for h in expected] and found[0] == "a0"
        assert hit_documents(browser)[0] == ARTICLES[0]
        screenshot("collection-embedding-search")

        choose_mode(browser, "hybrid")
        by_id(browser, "mode-hybrid-query").send_keys("quick dog")
        by_id(browser, "search-button").click()
        hybrid = wait_for_hits(browser, found)
        assert hybrid == [h.id for h in expected_hybrid] and hybrid[0] == "a2"
        assert by_id(browser, "search-error").text == ""
    finally:
        client.drop_collection("articles")
        client.close()


def test_markup_in_a_document_renders_as_text_and_runs_nothing(
    browser: Any, live: Live, screenshot: Any
) -> None:
    from selenium.webdriver.common.by import By

    server, data = live
    sign_in(browser, server.url, ADMIN_KEY)
    open_collection(browser, server.url, "default", "products")
    choose_mode(browser, "text")
    by_id(browser, "mode-text-query").send_keys("markup")
    by_id(browser, "search-button").click()
    assert wait_for_hits(browser) == ["xss"]
    shown = hit_documents(browser)[0]
    assert XSS_IMG in shown and XSS_SCRIPT in shown and shown == data.documents["xss"]
    browser.find_element(By.CSS_SELECTOR, "#hits tr[data-id='xss'] td.hit-id button").click()
    wait_for(browser, lambda b: by_id(b, "record-panel").is_displayed(), "the record panel")
    assert by_id(browser, "record-document").text == data.documents["xss"]
    screenshot("xss-document-as-text")
    assert browser.find_elements(By.CSS_SELECTOR, "img") == []
    scripts = browser.find_elements(By.CSS_SELECTOR, "script")
    assert [s.get_attribute("src").split("/ui/")[1] for s in scripts] == [
        "assets/widgets.js",
        "assets/app.js",
    ]
    assert_no_alert(browser)
    assert console_errors(browser) == []


def test_admin_backs_up_from_the_overview_and_others_see_no_backup_control(
    browser: Any, live: Live, screenshot: Any
) -> None:
    server, data = live
    sign_in(browser, server.url, TEAM_A_KEY)  # may write, but is no admin
    overview_rows(browser)
    assert not present(browser, "backup-button")
    status, body = fetch_status(browser, "POST", "/v1/backup", TEAM_A_KEY, {})
    assert (status, body["error"]) == (403, "permission_denied")

    sign_in(browser, server.url, ADMIN_KEY)
    overview_rows(browser)
    by_id(browser, "backup-button").click()
    wait_for(browser, lambda b: by_id(b, "confirm").is_displayed(), "the confirmation")
    by_id(browser, "confirm-cancel").click()
    wait_for(browser, lambda b: "Cancelled" in by_id(b, "backup-result").text, "cancel")
    by_id(browser, "backup-button").click()
    wait_for(browser, lambda b: by_id(b, "confirm").is_displayed(), "the confirmation")
    by_id(browser, "confirm-ok").click()
    done = wait_for(
        browser,
        lambda b: (
            by_id(b, "backup-result").text.startswith("Backup written to ")
            and by_id(b, "backup-result").text
        ),
        "the backup report",
    )
    path = Path(done.removeprefix("Backup written to ").split(":")[0])
    assert path.is_dir() and path.parent.name == "backups"
    assert f"{len(data.counts)} collections" in done
    screenshot("backup")


def test_filter_editor_shows_a_malformed_filters_error(
    browser: Any, live: Live, screenshot: Any
) -> None:
    server, _ = live
    sign_in(browser, server.url, ADMIN_KEY)
    open_collection(browser, server.url, "default", "products")
    field = by_id(browser, "browse-filter-input")
    field.send_keys('{"year": ')
    status = wait_for(
        browser,
        lambda b: "Not valid JSON" in by_id(b, "browse-filter-status").text,
        "the JSON error",
    )
    assert status
    assert field.get_attribute("aria-invalid") == "true"
    screenshot("filter-error")
    # Valid JSON the engine rejects: the server's message is shown inline.
    field.clear()
    field.send_keys('{"year": {"$almost": 2020}}')
    wait_for(
        browser,
        lambda b: (
            "Filter rejected" in by_id(b, "browse-filter-status").text
            and "$almost" in by_id(b, "browse-filter-status").text
        ),
        "the server's filter error",
    )
    # A good filter shows its count, and the scan pages through the matches.
    field.clear()
    field.send_keys('{"year": 2020}')
    wait_for(
        browser,
        lambda b: by_id(b, "browse-filter-status").text == "5 matching records",
        "the match count",
    )
    assert field.get_attribute("aria-invalid") == "false"


def test_paging_walks_every_record(browser: Any, live: Live) -> None:
    from selenium.webdriver.support.ui import Select

    server, data = live
    sign_in(browser, server.url, ADMIN_KEY)
    open_collection(browser, server.url, "default", "products")
    Select(by_id(browser, "page-size")).select_by_visible_text("10")
    total = len(data.vectors)
    seen: list[str] = []
    page = 1

    def page_rows(b: Any, p: int) -> list[str] | None:
        # The table is redrawn after the page size changes (the first page is loaded
        # twice): wait for page p's rows at size 10, read in one call (no stale rows).
        if by_id(b, "page-label").text != f"page {p}":
            return None
        ids: list[str] = b.execute_script(
            "return Array.from(document.querySelectorAll("
            "'#records tbody tr[data-id]')).map(r => r.dataset.id)"
        )
        return ids if len(ids) == min(10, total - 10 * (p - 1)) else None

    while True:
        seen += wait_for(browser, lambda b, p=page: page_rows(b, p), f"page {page}")
        if not by_id(browser, "next-page").is_enabled():
            break
        by_id(browser, "next-page").click()
        page += 1
    assert sorted(seen) == sorted(data.vectors)
    by_id(browser, "prev-page").click()
    wait_for(browser, lambda b: by_id(b, "page-label").text == f"page {page - 1}", "back")


def shown_ids(browser: Any) -> list[str]:
    """The ids in the records table, read in one call (no stale rows)."""
    ids: list[str] = browser.execute_script(
        "return Array.from(document.querySelectorAll("
        "'#records tbody tr[data-id]')).map(r => r.dataset.id)"
    )
    return ids


def test_a_filter_typed_while_the_collection_opens_is_kept_and_wins(
    browser: Any, live: Live, screenshot: Any
) -> None:
    """Regression: opening a collection reset the filter editors and ran its first
    (unfiltered) scan only after the collection's details arrived. A filter typed and
    scanned in that time was wiped, and the late unfiltered page replaced the filtered
    one. A slow network makes that window wide, as a distant server does."""
    import time

    server, data = live
    sign_in(browser, server.url, ADMIN_KEY)
    latency_ms = 400
    browser.set_network_conditions(
        offline=False, latency=latency_ms, download_throughput=-1, upload_throughput=-1
    )
    try:
        browser.get(f"{server.url}/ui#/c/default/products")
        field = wait_for(browser, lambda b: displayed(b, "browse-filter-input"), "the filter")
        text = '{"title": {"$exists": true}}'
        field.send_keys(text)
        by_id(browser, "scan-button").click()
        wait_for(browser, lambda b: shown_ids(b) == ["xss"], "the filtered page")
        # Every request still in flight has landed well before this.
        time.sleep(8 * latency_ms / 1000)
        assert shown_ids(browser) == ["xss"]
        assert by_id(browser, "browse-filter-input").get_attribute("value") == text
    finally:
        browser.delete_network_conditions()


def test_markup_in_metadata_renders_as_text_and_runs_nothing(
    browser: Any, live: Live, screenshot: Any
) -> None:
    from selenium.webdriver.common.by import By

    server, data = live
    sign_in(browser, server.url, ADMIN_KEY)
    browser.get(f"{server.url}/ui#/c/default/products")
    field = wait_for(browser, lambda b: displayed(b, "browse-filter-input"), "the filter")
    field.send_keys('{"title": {"$exists": true}}')
    by_id(browser, "scan-button").click()
    row = wait_for(
        browser,
        lambda b: b.find_elements(By.CSS_SELECTOR, "#records tr[data-id='xss']"),
        "the record holding markup",
    )[0]
    cell = row.find_element(By.CSS_SELECTOR, "td.meta").text
    assert XSS_IMG in cell and XSS_SCRIPT in cell
    row.find_element(By.CSS_SELECTOR, "button.open-record").click()
    wait_for(browser, lambda b: by_id(b, "record-panel").is_displayed(), "the record panel")
    assert json.loads(by_id(browser, "record-metadata").text) == data.metadata["xss"]
    by_id(browser, "more-like-this").click()
    assert wait_for_hits(browser)[0] == "xss"
    screenshot("xss-as-text")
    # No element was made from the data, and nothing ran.
    assert browser.find_elements(By.CSS_SELECTOR, "img") == []
    scripts = browser.find_elements(By.CSS_SELECTOR, "script")
    assert [s.get_attribute("src").split("/ui/")[1] for s in scripts] == [
        "assets/widgets.js",
        "assets/app.js",
    ]
    assert_no_alert(browser)


def test_read_only_key_has_no_write_controls_and_a_forged_write_gets_403(
    browser: Any, live: Live, screenshot: Any
) -> None:
    server, data = live
    sign_in(browser, server.url, READ_ONLY_KEY)
    assert set(overview_rows(browser)) == set(data.counts)
    assert "admin key" in visible_text(browser, "metrics-note")
    open_collection(browser, server.url, "default", "products")
    for control in ("admin-tab", "tab-admin", "compact-button", "delete-button"):
        assert not present(browser, control), control
    screenshot("read-only-collection")
    col = "/v1/workspaces/default/collections/products"
    status, body = fetch_status(browser, "POST", col + "/delete", READ_ONLY_KEY, {"ids": ["p01"]})
    assert (status, body["error"]) == (403, "permission_denied")
    status, body = fetch_status(browser, "POST", col + "/compact", READ_ONLY_KEY)
    assert (status, body["error"]) == (403, "permission_denied")
    status, body = fetch_status(browser, "POST", col + "/count", READ_ONLY_KEY, {})
    assert (status, body["count"]) == (200, data.counts["default/products"])


def test_workspace_key_sees_its_workspace_and_deletes_by_filter_after_confirming(
    browser: Any, live: Live, screenshot: Any
) -> None:
    from selenium.webdriver.common.by import By

    server, _ = live
    sign_in(browser, server.url, TEAM_A_KEY)
    assert set(overview_rows(browser)) == {"team-a/notes"}
    chips = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#workspaces li")]
    assert chips == ["team-a\n1"] or chips == ["team-a1"] or chips[0].startswith("team-a")
    assert len(chips) == 1
    open_collection(browser, server.url, "team-a", "notes")
    by_id(browser, "admin-tab").click()
    by_id(browser, "delete-filter-input").send_keys('{"kind": "draft"}')
    wait_for(
        browser,
        lambda b: by_id(b, "delete-filter-status").text == "5 matching records",
        "the delete count",
    )
    # Cancel first: nothing is deleted.
    by_id(browser, "delete-button").click()
    wait_for(browser, lambda b: by_id(b, "confirm").is_displayed(), "the confirmation")
    assert "Delete 5 records?" in by_id(browser, "confirm-title").text
    screenshot("delete-confirm")
    by_id(browser, "confirm-cancel").click()
    wait_for(browser, lambda b: "Cancelled" in by_id(b, "delete-result").text, "cancel")
    assert "12" in by_id(browser, "col-facts").text
    # Then confirm.
    by_id(browser, "delete-button").click()
    wait_for(browser, lambda b: by_id(b, "confirm").is_displayed(), "the confirmation")
    by_id(browser, "confirm-ok").click()
    wait_for(browser, lambda b: by_id(b, "delete-result").text == "Deleted 5 records.", "delete")
    wait_for(browser, lambda b: "\n7\n" in "\n" + by_id(b, "col-facts").text + "\n", "7 rows")
    # Another workspace is out of reach, whatever the URL says.
    status, body = fetch_status(
        browser, "GET", "/v1/workspaces/team-b/collections/other", TEAM_A_KEY
    )
    assert (status, body["error"]) == (403, "permission_denied")


def test_admin_compacts_after_confirming(browser: Any, live: Live, screenshot: Any) -> None:
    server, _ = live
    sign_in(browser, server.url, ADMIN_KEY)
    open_collection(browser, server.url, "team-b", "other")
    by_id(browser, "admin-tab").click()
    by_id(browser, "compact-button").click()
    wait_for(browser, lambda b: by_id(b, "confirm").is_displayed(), "the confirmation")
    by_id(browser, "confirm-ok").click()
    report = json.loads(visible_text(browser, "compact-result"))
    assert set(report) >= {"segments_before", "segments_after", "rows_removed"}
    screenshot("compact")


@pytest.mark.parametrize(
    ("page", "ready_css", "expected"),
    [
        ("docs", ".swagger-ui .opblock-summary-path", "/v1/whoami"),
        ("redoc", "#redoc h1", "KeelDB"),
    ],
)
def test_api_docs_render_offline(
    browser: Any, live: Live, screenshot: Any, page: str, ready_css: str, expected: str
) -> None:
    from selenium.webdriver.common.by import By

    server, _ = live
    sign_in(browser, server.url, READ_ONLY_KEY)  # the page fetches the schema with this key
    console_errors(browser)
    browser.get(f"{server.url}/{page}")
    wait_for(
        browser,
        lambda b: any(expected in e.text for e in b.find_elements(By.CSS_SELECTOR, ready_css)),
        f"{page} to render the API",
    )
    screenshot(f"api-{page}")
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert any(u.startswith(server.url + "/ui/assets/vendor/") for u in loaded), loaded
    # Anything from elsewhere was stopped by the page's CSP before it reached the network
    # (ReDoc's sidebar asks its CDN for a logo): the console names each refused URL.
    errors = console_errors(browser)
    outside = [u for u in loaded if not u.startswith(server.url + "/")]
    refused = [e for e in errors if "Content Security Policy" in e and "blocked" in e]
    assert all(any(u in e for e in refused) for u in outside), (outside, errors)
    assert [e for e in errors if e not in refused] == []
    assert len(outside) == (1 if page == "redoc" else 0), outside
