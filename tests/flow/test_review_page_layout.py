"""The review page's layout (issue 22): what a reviewer sees first, on a wide screen and on a phone, and a comment
on a line the diff does not show.

Real parts: the app under uvicorn on a free port and Debian's chromium under Playwright.
"""

from __future__ import annotations

import uuid

import httpx

from tasks_lib.domain.records import CheckResult, DiffResult, FileChange
from tests.flow import review_pages
from tests.flow.review_pages import csrf_of
from tests.helpers import fake_session as _fake_session

app, browser = review_pages.app, review_pages.browser  # the fixtures


WIDE, PHONE = {"width": 1400, "height": 1000}, {"width": 390, "height": 844}
LONG_SUMMARY = (
    "## Summary\n\n### What was done\nRewrote the parser's list handling so trailing commas are accepted.\n\n"
    "### Why\n"
    + "The task asked for it, and the reasons take a while to tell. " * 20
    + "\n\n### Key changes\n- `src/x.py`: twenty new lines.\n\n### Facts\n"
    + "".join(f"- **Fact {n}:** a line of the facts the summary step writes\n" for n in range(25))
)


def _twenty_lines(path: str = "src/x.py") -> DiffResult:
    """A diff adding one 20-line file."""
    lines = "".join(f"+line {n}\n" for n in range(1, 21))
    patch = (
        f"diff --git a/{path} b/{path}\nnew file mode 100644\nindex 0000000..1111111\n--- /dev/null\n"
        f"+++ b/{path}\n@@ -0,0 +1,20 @@\n{lines}"
    )
    return DiffResult(
        base_commit="abc1234", added=20, patch=patch.encode(), files=[FileChange(path=path, kind="added", added=20)]
    )


def _cli_session(store, **fields) -> str:
    """A session waiting for review as a CLI run leaves it (no workflow, no work branch, no trigger), with a
    long summary (narrative and facts), a 20-line file in its diff and a check."""
    session_id = _fake_session(store, f"layout-{uuid.uuid4().hex[:8]}", **fields)
    store.save_diff(session_id, _twenty_lines())
    store.save_summary(session_id, LONG_SUMMARY, {})
    store.save_check(session_id, 1, CheckResult(command="pytest -q tests", passed=True, exit_code=0, duration_s=1.5))
    return session_id


def test_the_first_screen_shows_the_head_the_decision_controls_and_the_diff(store, app, browser):
    session_id = _cli_session(store)
    page = browser.new_page(viewport=WIDE)
    page.goto(f"{app.base}/sessions/{session_id}")
    first_line = page.locator("table.diff tr:not(.hunk)").first.bounding_box()
    assert first_line["y"] + first_line["height"] < WIDE["height"], f"the diff starts below the fold: {first_line}"
    for control in ("form.accept button", "#request-changes button[type=submit]", "#feedback"):
        box = page.locator(control).bounding_box()
        assert box["y"] + box["height"] <= WIDE["height"] and box["x"] + box["width"] <= WIDE["width"], control

    headings = [h.strip() for h in page.locator("h1, h2, h3, h4, h5, h6").all_inner_texts()]
    assert headings.count("Summary") == 1, headings
    assert "Rewrote the parser's list handling" in page.inner_text("#summary"), "beside the diff, a long one open too"

    header = page.inner_text("header")
    assert "Workflow" not in header, "a CLI run has no workflow to show"
    body = page.inner_text("body")
    assert "- ·" not in body and "· ·" not in body
    for line in body.splitlines():
        assert not line.strip().startswith("·") and not line.strip().endswith("·"), line
        assert line.strip() != "-", "no field shows '-' for nothing"
    for fact in page.locator("header ul.facts li").all():
        label = fact.locator(".label").inner_text()
        assert fact.inner_text().strip() != label.strip(), f"{label} shows no value"

    with_workflow = _cli_session(store, workflow="nightly-deps")
    page.goto(f"{app.base}/sessions/{with_workflow}")
    assert "Workflow nightly-deps" in page.inner_text("header")


def test_on_a_phone_the_page_does_not_scroll_sideways_and_every_button_is_in_reach(store, app, browser):
    session_id = _cli_session(store)
    page = browser.new_page(viewport=PHONE)
    for address in (f"/sessions/{session_id}", f"/sessions/{session_id}?view=split", "/sessions"):
        page.goto(app.base + address)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{address} scrolls sideways: {width}px wide"

    page.goto(f"{app.base}/sessions/{session_id}")
    assert page.locator("#summary details[data-open-wide]").get_attribute("open") is None, "a long summary: closed"
    page.click("details.more > summary")  # retry and reject are one tap away
    for control in (
        "form.accept button",
        "#request-changes button[type=submit]",
        "form.retry button",
        "form.reject button",
    ):
        button = page.locator(control)
        button.scroll_into_view_if_needed()
        box = button.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (control, box)
    page.click("details[data-path='src/x.py'] td.n[data-line='20']")
    page.fill("tr.cbox textarea", "on the phone")
    page.click("tr.cbox >> text=Add comment")
    assert "src/x.py:20 — on the phone" in page.inner_text("#pending")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_a_comment_on_a_line_the_diff_does_not_show_is_refused_and_nothing_is_stored(store, app):
    session_id = _cli_session(store)
    url, token = f"{app.base}/sessions/{session_id}/decide", csrf_of(app.base, session_id)
    refused = httpx.post(
        url,
        headers={"Origin": app.base},
        data={
            "decision": "request_changes",
            "csrf": token,
            "feedback": "keep this",
            "comments": '[{"path": "src/x.py", "line": 999, "body": "off the end"}]',
        },
    )
    assert refused.status_code == 422
    assert "Not sent: line 999 is not in src/x.py&#x27;s diff (it shows lines 1–20)" in refused.text
    assert ">\nkeep this</textarea>" in refused.text, "what the reviewer typed is kept"
    now = store.get_session(session_id)
    assert (now.status, store.reviews(session_id)) == ("awaiting_review", [])
