"""The review pages (`agent-tasks up` serves them): inbox, session page, decisions, line comments, safety.

Real parts throughout: the app under uvicorn on a free port, the test Prefect server, real flow runs that
pause for review, the scripted model, and — for the reviewer's clicks — Debian's chromium driven by
Playwright (headless). A missing browser or Playwright fails the test, saying what to install.

The tests of the same code that need no Prefect server are in tests/unit/test_review_page.py.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
import uuid

import httpx
import pytest
from prefect.client.schemas.objects import StateType

from tasks_lib.domain.records import CheckResult, DiffResult, FileChange
from tasks_lib.domain.session import SessionStatus
from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import free_port
from tests.flow.test_review import flow_run_state
from tests.helpers import Background, wait_for_review
from tests.helpers import fake_session as _fake_session
from tests.helpers import patch_with as _patch_with

FINISH = calls(tool("finish", summary="done"))
CALC = "def add(a, b):\n    return a - b\n\n\ndef one():\n    return 1\n"


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


def test_a_reviewer_comments_on_lines_in_the_browser_and_the_agent_gets_file_line_and_code(
    repo, scripted, store, app, browser, prefect_server
):
    server = scripted(
        [
            calls(tool("write_file", path="calc.py", content=CALC)),
            FINISH,
            calls(tool("edit_file", path="calc.py", old="a - b", new="a + b")),
            FINISH,
        ]
    )
    run = Background(repo, "Write calc on the page", reviewer="carol")
    row = wait_for_review(store, "Write calc on the page", since=run.started)
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    # The inbox lists the session; its short id opens the page.
    page.goto(f"{app.base}/sessions?status=awaiting_review&reviewer=carol")
    page.click(f"a[href='/sessions/{row.id}']")
    page.wait_for_url(f"{app.base}/sessions/{row.id}")
    assert page.locator("#status").get_attribute("data-status") == "awaiting_review"
    ui = prefect_server.removesuffix("/api")
    assert page.locator("#prefect-run").get_attribute("href") == f"{ui}/runs/flow-run/{row.flow_run_id}"

    # Unified view: click the new side's line 2 of calc.py, write a comment, add it to the review.
    page.click("details[data-path='calc.py'] table.unified td.n[data-line='2']")
    page.fill("tr.cbox textarea", "use +")
    page.click("tr.cbox >> text=Add comment")
    assert "calc.py:2 — use +" in page.inner_text("#pending")
    # Side by side (the pending review survives the switch): comment on line 6, add a third and remove it.
    page.click("text=show side by side")
    page.wait_for_selector("table.split")
    assert "calc.py:2 — use +" in page.inner_text("#pending")
    page.click("details[data-path='calc.py'] table.split td.n[data-line='6']")
    page.fill("tr.cbox textarea", "return 2 here")
    page.click("tr.cbox >> text=Add comment")
    page.click("details[data-path='calc.py'] table.split td.n[data-line='1']")
    page.fill("tr.cbox textarea", "never mind")
    page.click("tr.cbox >> text=Add comment")
    assert page.locator("#pending li").count() == 3
    page.locator("#pending li", has_text="never mind").locator("button").click()
    assert page.locator("#pending li").count() == 2
    assert "(2 comments)" in page.inner_text("#request-changes button[type=submit]")

    page.fill("#feedback", "Fix the operator.")
    page.click("#request-changes button[type=submit]")
    page.wait_for_url(re.compile(r".*sent=request_changes.*"))
    page_says(page, "awaiting_review", "2")  # the next iteration arrives on the page
    assert "Fix the operator." in page.inner_text("#history")
    assert "calc.py:2 use +" in page.inner_text("#history")
    # the plain accept button finishes the session
    page.click("form.accept button")
    page_says(page, "accepted", "2")
    assert run.join().status == SessionStatus.accepted
    assert dialogs == []

    message = server.agent_requests()[2]["messages"][-1]["content"]
    assert "Fix the operator." in message and "The reviewer commented on 2 lines:" in message
    assert "calc.py:2: use +\n```\n  1 | def add(a, b):\n> 2 |     return a - b\n  3 | \n  4 | \n```" in message
    assert "calc.py:6: return 2 here\n```\n  4 | \n  5 | def one():\n> 6 |     return 1\n```" in message
    reviews = store.reviews(row.id)
    assert [r.decision for r in reviews] == ["request_changes", "accept"]
    assert reviews[0].comments == [
        {"path": "calc.py", "line": 2, "body": "use +"},
        {"path": "calc.py", "line": 6, "body": "return 2 here"},
    ]


def test_cross_site_and_refused_decisions_change_nothing_and_the_run_stays_paused(repo, scripted, store, app):
    scripted([calls(tool("write_file", path="calc.py", content=CALC)), FINISH])
    run = Background(repo, "Write calc, guarded")
    row = wait_for_review(store, "Write calc, guarded", since=run.started)
    url = f"{app.base}/sessions/{row.id}/decide"
    token = csrf_of(app.base, row.id)
    accept = {"decision": "accept", "csrf": token}
    own = {"Origin": app.base}

    attempts = {
        "another site's page": httpx.post(url, data=accept, headers={"Origin": "http://evil.example"}),
        "no token": httpx.post(url, data={"decision": "accept"}, headers=own),
        "a wrong token": httpx.post(url, data={**accept, "csrf": "0" * 64}, headers=own),
        "a rebound domain": httpx.post(url, data=accept, headers={"Host": f"evil.example:{app.port}"}),
        "a cross-site fetch": httpx.post(url, data=accept, headers={"Sec-Fetch-Site": "cross-site"}),
    }
    for what, response in attempts.items():
        assert response.status_code == 403, (what, response.status_code, response.text)
        assert response.text.startswith("refused: "), what
    # a rebound domain cannot read the pages either (they hold the token and the code)
    read = httpx.get(f"{app.base}/sessions/{row.id}", headers={"Host": f"evil.example:{app.port}"})
    assert read.status_code == 403 and token not in read.text

    # Input the form checks like `agent-tasks review` does: the page says why, nothing is resumed.
    outside = httpx.post(
        url,
        headers=own,
        data={
            "decision": "request_changes",
            "csrf": token,
            "feedback": "keep this",
            "comments": '[{"path": "calx.py", "line": 2, "body": "use +"}]',
        },
    )
    assert outside.status_code == 422
    assert "calx.py:2: calx.py is not part of this change (did you mean calc.py?)" in outside.text
    assert ">\nkeep this</textarea>" in outside.text, "what the reviewer typed is kept"
    off_the_end = httpx.post(
        url,
        headers=own,
        data={
            "decision": "request_changes",
            "csrf": token,
            "comments": '[{"path": "calc.py", "line": 999, "body": "here?"}]',
        },
    )
    assert off_the_end.status_code == 422
    assert "line 999 is not in calc.py&#x27;s diff (it shows lines 1–6)" in off_the_end.text
    no_instructions = httpx.post(url, headers=own, data={"decision": "retry", "csrf": token, "instructions": " "})
    assert no_instructions.status_code == 422 and "retry needs updated instructions" in no_instructions.text
    bad_json = httpx.post(url, headers=own, data={"decision": "request_changes", "csrf": token, "comments": "[{"})
    assert bad_json.status_code == 422 and "comments: not a JSON list" in bad_json.text

    state = flow_run_state(row)
    assert state.type == StateType.PAUSED and state.state_details.pause_key == row.review_key
    now = store.get_session(row.id)
    assert (now.status, now.review_key, store.reviews(row.id)) == ("awaiting_review", row.review_key, [])

    # The page's own form (no script needed): accepted, redirected back to the page.
    sent = httpx.post(url, headers=own, data=accept)
    assert sent.status_code == 303 and sent.headers["location"].startswith(f"/sessions/{row.id}?sent=accept")
    assert run.join().status == SessionStatus.accepted
    again = httpx.post(url, headers=own, data=accept)  # the session no longer waits: 409, nothing sent
    assert again.status_code == 409 and "is accepted" in again.text and "not awaiting review" in again.text
    assert [r.decision for r in store.reviews(row.id)] == ["accept"]


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


# The page's layout (issue 22): what a reviewer sees first, on a wide screen and on a phone.

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
