"""Take the screenshots of docs/ui.md: ``.venv/bin/python tests/ui/docs_screenshots.py``.

Starts a server with the browser tests' data set, runs a light search load for a few
seconds so the live charts have something to draw, and saves the overview and a
collection's search as ``docs/img/ui-overview.png`` and ``docs/img/ui-search.png``.
Not a test (pytest does not collect it); it needs chromium and chromedriver like the tests.
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from ui_util import ADMIN_KEY, CHROMIUM_FLAGS, fill, find_browser  # noqa: E402

import keeldb  # noqa: E402
from keeldb.server.testing import ServerProcess  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "docs" / "img"


def shoot(driver: Any, name: str) -> None:
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    (OUT / name).write_bytes(base64.b64decode(shot["data"]))
    print("wrote", OUT / name)


def load(url: str, stop: threading.Event) -> None:
    """About 20 searches a second until ``stop``."""
    client = keeldb.Client(url, api_key=ADMIN_KEY)
    col = client.get_collection("products")
    rng = np.random.default_rng(0)
    while not stop.is_set():
        col.search(rng.normal(size=8).astype(np.float32), k=int(rng.integers(1, 20)))
        time.sleep(0.05 * rng.random() * 2)
    client.close()


def main() -> None:
    found = find_browser()
    if found is None:
        sys.exit("chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    root = Path(tempfile.mkdtemp(prefix="keeldb-shots-"))
    keys = root / "keys.json"
    keys.write_text(json.dumps([{"key": ADMIN_KEY, "role": "admin"}]))
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={root / 'profile'}"):
        options.add_argument(flag.replace("--window-size=1400,1000", "--window-size=1280,800"))
    stop = threading.Event()
    with ServerProcess(root / "db", args=["--keys-file", str(keys)]) as server:
        data = fill(server.url)
        driver = webdriver.Chrome(service=Service(executable_path=found[1]), options=options)
        traffic = threading.Thread(target=load, args=(server.url, stop))
        traffic.start()
        try:
            wait = WebDriverWait(driver, 20)
            driver.get(server.url + "/ui")
            wait.until(lambda d: d.find_element("id", "key-input").is_displayed())
            driver.find_element("id", "key-input").send_keys(ADMIN_KEY)
            driver.find_element("id", "signin-button").click()
            time.sleep(14)  # seven polls of /metrics
            shoot(driver, "ui-overview.png")
            driver.get(server.url + "/ui#/c/default/products")
            wait.until(lambda d: d.find_elements("css selector", "#records tbody tr[data-id]"))
            driver.find_element("css selector", "#tabs [data-tab='search']").click()
            driver.find_element("css selector", "#search-mode option[value='vector']").click()
            query = [round(float(x) + 0.01, 4) for x in data.vectors["p23"]]
            driver.find_element("id", "mode-vector").send_keys(json.dumps(query))
            driver.find_element("id", "search-filter-input").send_keys('{"year": {"$gte": 2018}}')
            driver.find_element("id", "search-button").click()
            wait.until(lambda d: d.find_element("id", "search-results").is_displayed())
            time.sleep(0.5)
            shoot(driver, "ui-search.png")
        finally:
            stop.set()
            traffic.join()
            driver.quit()
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
