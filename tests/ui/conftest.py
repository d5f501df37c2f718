"""Browser tests of the dashboard: headless Chromium (Selenium) against a real server.

One ``keeldb serve`` process on 127.0.0.1 (module scope) holds a small, known data set;
one Chromium (session scope) starts with a fresh profile and with every host name but
127.0.0.1 resolving to nothing, so a page that tried to load anything from outside would
fail visibly. Screenshots land in ``tests/ui/artifacts/`` (gitignored) — or in
``$KEELDB_UI_ARTIFACTS``.

Chromium and chromedriver come from Debian (``make dev`` installs them when missing).
Where they cannot be installed the browser tests skip with a loud message; the HTTP-level
tests of the same features (``test_dashboard_http.py``) run everywhere.
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keeldb.server.testing import ServerProcess

sys.path.insert(0, str(Path(__file__).parent))

from ui_util import (  # noqa: E402
    ADMIN_KEY,
    ARTIFACTS,
    CHROMIUM_FLAGS,
    READ_ONLY_KEY,
    TEAM_A_KEY,
    Dataset,
    fill,
    find_browser,
)

NO_BROWSER = (
    "BROWSER TESTS SKIPPED: chromium and chromedriver are not installed "
    "(apt-get install -y chromium chromium-driver; make dev does it)"
)
_SKIPPED_BROWSER: list[bool] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Repeat the skip at the very end of the run, where nobody can miss it."""
    if _SKIPPED_BROWSER:
        terminalreporter.write_sep("!", NO_BROWSER, red=True, bold=True)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Dataset]]:
    """A ``keeldb serve`` process with three keys and three small collections."""
    root = tmp_path_factory.mktemp("ui")
    keys = root / "keys.json"
    keys.write_text(
        json.dumps(
            [
                {"key": ADMIN_KEY, "role": "admin"},
                {"key": READ_ONLY_KEY, "role": "read-only"},
                {"key": TEAM_A_KEY, "role": "read-write", "workspaces": ["team-a"]},
            ]
        )
    )
    args = ["--keys-file", str(keys), "--backup-dir", str(root / "backups")]
    # The test embedding function (test-word-hash) of tests/client, for the text
    # (embedding) search: the server imports its module.
    args += ["--embeddings-module", "wordhash_embedding"]
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "client")}
    with ServerProcess(root / "db", args=args, env=env) as server:
        yield server, fill(server.url)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium driven by Selenium (skips loudly when none is installed)."""
    found = find_browser()
    if found is None:
        _SKIPPED_BROWSER.append(True)
        pytest.skip(NO_BROWSER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

    binary, driver_path = found
    profile = tempfile.mkdtemp(prefix="keeldb-ui-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def screenshot(browser: Any) -> Callable[[str], Path]:
    """``screenshot(name)`` saves the whole page (not just the window) as
    ``ARTIFACTS/name.png``."""

    def save(name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        shot = browser.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": size["width"],
                    "height": min(size["height"], 4000),
                    "scale": 1,
                },
            },
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    return save
