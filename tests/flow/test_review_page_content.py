"""What the review pages show: the inbox's filters and pages, the agent's text as text (never run), a large diff
loaded file by file, and best-of-N attempts ranked with a read-only page for each one's diff.

Real parts: the app under uvicorn on a free port and, where a page is clicked, Debian's chromium under Playwright.
"""

from __future__ import annotations

import re
import uuid

import httpx

from tasks_lib.domain.records import DiffResult, FileChange
from tasks_lib.domain.session import SessionStatus
from tests.flow import review_pages
from tests.flow.review_pages import csrf_of
from tests.helpers import fake_session as _fake_session
from tests.helpers import patch_with as _patch_with

app, browser = review_pages.app, review_pages.browser  # the fixtures


def _ids(html: str) -> list[str]:
    return re.findall(r'<tr data-session="([0-9a-f-]+)"', html)


def test_inbox_filters_and_pages(store, app):
    marker = f"inbox-{uuid.uuid4().hex[:8]}"
    waiting = _fake_session(store, marker, workflow=f"wf-{marker}", reviewer=f"rv-{marker}")
    failed = _fake_session(store, marker, SessionStatus.failed, workflow=f"wf-{marker}")
    other_flow = _fake_session(store, marker, SessionStatus.awaiting_review, workflow=f"other-{marker}")

    def ids(**params) -> list[str]:
        response = httpx.get(f"{app.base}/sessions", params=params)
        assert response.status_code == 200
        return _ids(response.text)

    assert ids(repository=marker) == [other_flow, failed, waiting]  # newest first
    assert ids(repository=marker, status="awaiting_review") == [other_flow, waiting]
    assert ids(workflow=f"wf-{marker}") == [failed, waiting]
    assert ids(workflow=f"wf-{marker}", status="failed") == [failed]
    assert ids(reviewer=f"rv-{marker}") == [waiting]
    bad = httpx.get(f"{app.base}/sessions", params={"status": "nonsense"})
    assert bad.status_code == 422 and "unknown status &#x27;nonsense&#x27;" in bad.text

    many = [
        _fake_session(store, f"{marker}-page", SessionStatus.completed, workflow=f"paged-{marker}") for _ in range(53)
    ]
    first = httpx.get(f"{app.base}/sessions", params={"workflow": f"paged-{marker}"}).text
    assert _ids(first) == many[::-1][:50]
    older = re.search(r'<a href="([^"]+)" rel="next">', first).group(1).replace("&amp;", "&")
    assert older == f"/sessions?workflow=paged-{marker}&page=2", "paging keeps the filters"
    second = httpx.get(app.base + older).text
    assert _ids(second) == many[::-1][50:] and 'rel="next"' not in second and 'rel="prev"' in second


def test_agent_text_is_shown_as_text_never_run(store, app, browser):
    evil = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    marker = f"xss-{uuid.uuid4().hex[:8]}"
    session_id = _fake_session(store, marker, reviewer='"><script>alert(2)</script>')
    store.update_session(session_id, instructions=f"Do it {evil}", work_branch=f"agent/{evil}")
    store.save_summary(session_id, f"### What was done\n{evil}\n\n[click](javascript:alert(3))", {})
    store.save_diff(
        session_id,
        DiffResult(
            base_commit="abc123",
            added=4,
            removed=0,
            patch=_patch_with(2, evil),
            files=[FileChange(path=f"f{n}.py", kind="added", added=2) for n in range(2)],
        ),
    )
    page_html = httpx.get(f"{app.base}/sessions/{session_id}").text
    for raw in ("<script>alert", "<img src=x", 'href="javascript:', "onerror=alert(1)>"):
        assert raw not in page_html, raw
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page_html
    inbox = httpx.get(f"{app.base}/sessions", params={"repository": marker}).text
    assert "<script>alert" not in inbox and "&lt;script&gt;" in inbox

    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{app.base}/sessions/{session_id}")
    page.wait_for_selector("details[data-path='f1.py']")
    assert evil in page.inner_text("#summary") and evil in page.inner_text("#diff")
    page.click("#summary >> text=click")
    page.goto(f"{app.base}/sessions?repository={marker}")
    assert dialogs == [], "no script of the agent's ran"


def test_a_large_diff_renders_its_first_files_and_loads_the_rest_on_demand(store, app, browser):
    from tasks_lib.web.diffview import FILES_IN_FULL

    files = FILES_IN_FULL + 20
    session_id = _fake_session(store, f"big-{uuid.uuid4().hex[:8]}")
    store.save_diff(
        session_id,
        DiffResult(
            base_commit="abc123",
            added=2 * files,
            patch=_patch_with(files, "x"),
            files=[FileChange(path=f"f{n}.py", kind="added", added=2) for n in range(files)],
        ),
    )
    page_html = httpx.get(f"{app.base}/sessions/{session_id}").text
    assert page_html.count('<table class="diff unified">') == FILES_IN_FULL
    last = files - 1
    assert f'data-src="/sessions/{session_id}/files/{last}?view=unified&amp;path=f{last}.py"' in page_html
    fragment = httpx.get(
        f"{app.base}/sessions/{session_id}/files/{last}", params={"view": "split", "path": f"f{last}.py"}
    )
    assert (
        fragment.status_code == 200
        and '<table class="diff split">' in fragment.text
        and f"line {last}" in fragment.text
    )
    stale = httpx.get(f"{app.base}/sessions/{session_id}/files/{last}", params={"path": "f0.py"})
    assert stale.status_code == 409 and "reload the page" in stale.text

    page = browser.new_page()
    page.goto(f"{app.base}/sessions/{session_id}")
    block = page.locator(f"details#f{last}")
    block.locator("summary").click()
    block.locator("table.unified").wait_for()
    assert f"line {last}" in block.inner_text()
    block.locator("td.n[data-line='2']").click()  # a file loaded on demand takes comments too
    page.fill("tr.cbox textarea", "late file")
    page.click("tr.cbox >> text=Add comment")
    assert f"f{last}.py:2 — late file" in page.inner_text("#pending")


def test_best_of_n_attempts_are_ranked_on_the_page_and_accept_names_one(store, app):
    from tasks_lib.session.attempts import Candidate

    session_id = _fake_session(store, f"attempts-{uuid.uuid4().hex[:8]}")
    ranked = [
        Candidate(attempt=2, end_reason="finished", summary="<b>two</b>", rank=1, why="check passed"),
        Candidate(attempt=1, end_reason="finished", rank=2, why="check failed"),
    ]
    store.update_session(
        session_id, candidates={"iteration": 1, "chosen": 2, "ranked": [c.model_dump() for c in ranked]}
    )
    page = httpx.get(f"{app.base}/sessions/{session_id}").text
    assert "Attempts, ranked" in page and "#1 attempt 2: check passed" in page and "&lt;b&gt;two&lt;/b&gt;" in page
    assert '<input type="radio" name="candidate" value="2" checked>' in page
    assert '<input type="radio" name="candidate" value="1">' in page

    url, token = f"{app.base}/sessions/{session_id}/decide", csrf_of(app.base, session_id)
    missing = httpx.post(
        url, data={"decision": "accept", "candidate": "5", "csrf": token}, headers={"Origin": app.base}
    )
    assert missing.status_code == 422 and "has no attempt 5: iteration 1 has attempts 1, 2" in missing.text
    assert '<input type="radio" name="candidate" value="5"' not in missing.text
    wrong = httpx.post(
        url, data={"decision": "request_changes", "candidate": "1", "csrf": token}, headers={"Origin": app.base}
    )
    assert wrong.status_code == 422 and "a candidate is chosen only with accept" in wrong.text
    assert store.reviews(session_id) == [] and store.get_session(session_id).status == "awaiting_review"


def test_each_attempt_s_own_diff_has_a_read_only_page(store, app):
    from tasks_lib.domain.records import DiffResult, FileChange
    from tasks_lib.session.attempts import Candidate

    session_id = _fake_session(store, f"attempt-diffs-{uuid.uuid4().hex[:8]}")

    def patch(name: str, line: str) -> DiffResult:
        text = (
            f"diff --git a/{name} b/{name}\nnew file mode 100644\n--- /dev/null\n+++ b/{name}\n@@ -0,0 +1 @@\n+{line}\n"
        )
        return DiffResult(
            base_commit="abc1234",
            files=[FileChange(path=name, kind="added", added=1, removed=0)],
            added=1,
            removed=0,
            patch=text.encode(),
        )

    store.save_diff(session_id, patch("first.py", "x = 1"), 1, scope="attempt-1")
    store.save_diff(session_id, patch("second.py", "y = '<script>alert(1)</script>'"), 1, scope="attempt-2")
    ranked = [
        Candidate(attempt=1, end_reason="finished", rank=1, why="check passed"),
        Candidate(attempt=2, end_reason="finished", rank=2, why="check failed"),
    ]
    store.update_session(
        session_id, candidates={"iteration": 1, "chosen": 1, "ranked": [c.model_dump() for c in ranked]}
    )

    page = httpx.get(f"{app.base}/sessions/{session_id}").text
    assert f'<a href="/sessions/{session_id}/attempts/2">its diff</a>' in page
    assert f'/sessions/{session_id}/attempts/1"' not in page, "the attempt in the workspace is the page's own diff"
    second = httpx.get(f"{app.base}/sessions/{session_id}/attempts/2")
    assert second.status_code == 200 and "Attempt 2 of 2" in second.text and "#2 attempt 2: check failed" in second.text
    assert "second.py" in second.text and "first.py" not in second.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in second.text and "<script>alert" not in second.text
    assert "Click a line number" not in second.text and "review.js" not in second.text, "read-only: no comments"
    split = httpx.get(f"{app.base}/sessions/{session_id}/attempts/2", params={"view": "split"})
    assert split.status_code == 200 and "second.py" in split.text
    assert httpx.get(f"{app.base}/sessions/{session_id}/attempts/3").status_code == 404
    assert (
        httpx.get(f"{app.base}/sessions/{session_id}/attempts/2/files/0", params={"path": "second.py"}).status_code
        == 200
    )
    assert (
        httpx.get(f"{app.base}/sessions/{session_id}/attempts/2/files/0", params={"path": "first.py"}).status_code
        == 404
    )
