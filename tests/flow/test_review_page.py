"""The review pages (`agent-tasks up` serves them): a reviewer's decision and line comments sent from the session
page, and the decisions it refuses (another site's, a forged token, input the form checks) with the run still paused.

Real parts throughout: the app under uvicorn on a free port, the test Prefect server, real flow runs that
pause for review, the scripted model, and — for the reviewer's clicks — Debian's chromium driven by
Playwright (headless). A missing browser or Playwright fails the test, saying what to install.

What the pages show is tested in test_review_page_content.py, their layout in test_review_page_layout.py, team
mode in test_review_page_people.py; the app and browser fixtures are in review_pages.py. The tests of the same code
that need no Prefect server are in tests/unit/test_review_page.py.
"""

from __future__ import annotations

import re

import httpx
from prefect.client.schemas.objects import StateType

from tasks_lib.domain.session import SessionStatus
from tasks_lib.testing.scripted_server import calls, tool
from tests.flow import review_pages
from tests.flow.review_pages import AppServer as AppServer  # other modules take it from here
from tests.flow.review_pages import csrf_of, page_says
from tests.flow.test_review import flow_run_state
from tests.helpers import Background, wait_for_review

FINISH = calls(tool("finish", summary="done"))
CALC = "def add(a, b):\n    return a - b\n\n\ndef one():\n    return 1\n"
app, browser = review_pages.app, review_pages.browser  # the fixtures


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
