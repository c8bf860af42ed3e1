"""The review page end to end in Debian's chromium, driven by Playwright: filter, open a
sample, correct a label with a keyboard shortcut, reload, find the correction shown and stored,
open a confusion-matrix cell, list the agents' flags. Saves a screenshot artifact.

Needs `playwright` (dev extra; its bundled browsers are never installed) and /usr/bin/chromium
(`apt-get install chromium`). Without them the test skips, unless HELPDESK_REQUIRE_BROWSER=1
(CI), where it fails. Screenshot: reports/artifacts/review.png, or HELPDESK_REVIEW_SCREENSHOT.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluation.review import ReviewSettings, create_review_app
from serving.feedback import FeedbackStore
from tests.review_fixture import QUEUE, agent_flag, write_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = Path(
    os.environ.get(
        "HELPDESK_REVIEW_SCREENSHOT",
        Path(__file__).resolve().parents[1] / "reports" / "artifacts" / "review.png",
    )
)


def _require_browser() -> None:
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if missing:
        reason = "browser test needs " + " and ".join(missing)
        if os.environ.get("HELPDESK_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def review_url(tmp_path: Path, tiny_release: Path) -> Iterator[tuple[str, str]]:
    """The review app on a free loopback port, in a thread; yields (page URL, store URL)."""
    import uvicorn

    store_url = f"sqlite:///{tmp_path / 'feedback.db'}"
    FeedbackStore.open(store_url).add([agent_flag("crm-77")])
    port = _free_port()
    settings = ReviewSettings(
        report_dir=write_report(tmp_path / "report"),
        model_dir=tiny_release,
        store_url=store_url,
        reviewer="qa-browser",
        port=port,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_review_app(settings), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "review app did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/", store_url
    finally:
        server.should_exit = True
        thread.join(10)


def test_review_page_end_to_end(review_url: tuple[str, str]) -> None:
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    url, store_url = review_url
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda r: r.url.startswith(url) or errors.append(f"request {r.url}"))
        page.goto(url)
        queue = page.locator("#queue li")
        expect(queue).to_have_count(len(QUEUE))
        expect(page.locator("#progress-text")).to_have_text("0 / 4 reviewed")

        # filter: frustration errors, then false positives only
        page.select_option("#filters select[name=head]", "frustration")
        expect(queue).to_have_count(2)
        page.select_option("#filters select[name=kind]", "false_positive")
        expect(queue).to_have_count(1)
        queue.first.click()
        expect(page.locator("#sample-text")).to_have_text("thanks great help love it")
        expect(page.locator("#sample-text mark")).to_have_count(5)

        # correct the frustration label (dataset: no) with the flip shortcut
        row = page.locator("table.heads tr[data-head=frustration]")
        expect(row).to_have_class("selected")
        page.keyboard.press("x")
        expect(row.locator(".inforce")).to_have_text("correct → yes")
        expect(page.locator("#progress-text")).to_have_text("1 / 4 reviewed")

        # reload: filters, sample and the judgement in force come back
        page.reload()
        expect(page.locator("#filters select[name=kind]")).to_have_value("false_positive")
        expect(row.locator(".inforce")).to_have_text("correct → yes")
        expect(page.locator("#queue li[data-id=a3]")).to_have_class("reviewed current")
        records = FeedbackStore.open(store_url).current()
        assert [(r.sample_id, r.head, r.action, r.label, r.author, r.channel) for r in records] == [
            ("crm-77", "frustration", "flag", 1, "crm-agent", "api"),
            ("a3", "frustration", "correct", 1, "qa-browser", "review"),
        ]

        # a confusion-matrix cell filters the queue to its samples
        page.locator("#matrices td[data-head=complaint][data-cell=fn]").click()
        expect(queue).to_have_count(1)
        expect(queue.first).to_have_attribute("data-id", "a1")
        expect(page.locator("#cell-chip")).to_have_text("complaint FN \u00d7")
        expect(page.locator("#filters select[name=head]")).to_have_value("complaint")
        queue.first.click()
        expect(page.locator("#sample-text")).to_have_text("my order never arrived and i am angry")
        expect(page.locator("table.heads tr[data-head=complaint]")).to_have_class("selected")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))

        # the agents' flags from the scoring API are listed
        expect(page.locator("#flag-count")).to_have_text("1")
        page.click("button[data-tab=flags]")
        expect(page.locator("#flags tbody tr")).to_have_count(1)
        expect(page.locator("#flags tbody tr")).to_contain_text("crm-77")
        browser.close()
    assert errors == []
    assert SCREENSHOT.stat().st_size > 10_000
