"""The review pages under test: the app served on a free port, headless chromium, and what the page says.

Shared by the tests of the review pages (tests/flow/test_review_page*.py) and the others that open a page; the
fixtures are taken into a test module by name (``app = review_pages.app``).
"""

from __future__ import annotations

import re
import shutil
import threading
import time

import httpx
import pytest

from tests.conftest import free_port


class AppServer:
    """The review app under uvicorn in a thread, on a free port of 127.0.0.1."""

    def __init__(self, store):
        import uvicorn

        from tasks_lib.web import create_app

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(store, "127.0.0.1", self.port), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> AppServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the review app did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def app(store, prefect_server, monkeypatch):
    """The review app over the test store, its Prefect links pointing at the test server."""
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)  # where ui_url() takes the Prefect UI's address from
    with AppServer(store) as server:
        yield server


@pytest.fixture
def browser():
    """Headless Debian chromium under Playwright; fails (does not skip) when either is missing."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is not installed: apt-get install -y chromium (.ci/run installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright's Python package is not installed: pip install -e '.[test]'")
    with sync_playwright() as p:
        # As root in a container chromium needs --no-sandbox; a small /dev/shm needs --disable-dev-shm-usage.
        launched = p.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            launched.close()


def page_says(page, status: str, iteration: str, timeout: float = 120) -> None:
    """Wait until the session page (which refreshes itself while the run works) shows this status and iteration."""
    from playwright.sync_api import Error

    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        try:
            seen = (
                page.locator("#status").get_attribute("data-status", timeout=2000),
                page.locator("#iteration").text_content(timeout=2000),
            )
            if seen == (status, iteration):
                return
        except Error:  # the page was reloading
            pass
        time.sleep(0.3)
    raise AssertionError(f"the page never said {status} at iteration {iteration} (last seen: {seen})")


def csrf_of(base: str, session_id: str) -> str:
    """The token the session's page embeds in its forms."""
    page = httpx.get(f"{base}/sessions/{session_id}", timeout=10).text
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
