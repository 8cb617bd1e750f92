"""The review pages in team mode, end to end: sign-in with a token, a trusted proxy's header, independent review.

Real parts throughout (the app under uvicorn, the test Prefect server, real paused flow runs, the scripted model,
headless Debian chromium) and a store of each test's own, so other tests stay in single-user mode. Each test tries
to break a rule first — an anonymous visitor, a forged or expired cookie, a spoofed proxy header, the starter's own
accept — and checks that nothing changed: the run still paused, no decision recorded, nothing delivered; and that
each decision refused is one row of the audit, shown in the session page's history.
"""

from __future__ import annotations

import re
import time

import httpx

from tasks_lib.config import load_settings
from tasks_lib.domain.people import Decider
from tasks_lib.review.resume import resume_review
from tasks_lib.security.cookies import COOKIE_LIFETIME_S, server_secret, sign_cookie
from tasks_lib.store.people import issue_grant, refusals, set_started_by
from tasks_lib.testing.scripted_server import calls, tool
from tasks_lib.web.signin import COOKIE
from tests.conftest import git
from tests.flow import test_people, test_review_page
from tests.flow.test_people import add, cli
from tests.flow.test_review_page import AppServer, page_says
from tests.helpers import Background, wait_for_review

FINISH = calls(tool("finish", summary="done"))
own_store = test_people.own_store  # the fixtures: a store of the test's own, headless chromium
browser = test_review_page.browser


def nothing_changed(store, row, repo) -> None:
    """The session still waits at the same pause, with no decision recorded and nothing delivered."""
    now = store.get_session(row.id)
    assert (now.status, now.review_key, store.reviews(row.id)) == ("awaiting_review", row.review_key, [])
    assert now.delivered_commit is None and git(repo, "branch", "--list", now.work_branch) == ""


def test_a_person_signs_in_with_their_token_and_accepts_and_nobody_else_gets_in(
    repo, scripted, own_store, prefect_server, browser, monkeypatch
):
    store = own_store
    root = add("root")
    bob = add("bob", "--group", "team-a", token=root)
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    scripted([calls(tool("write_file", path="signed.txt", content="signed in\n")), FINISH])
    run = Background(repo, "Signed-in change", reviewer="team-a")
    row = wait_for_review(store, "Signed-in change", since=run.started)
    with AppServer(store) as app:
        here = f"{app.base}/sessions/{row.id}"
        decide_url = f"{here}/decide"
        csrf = app.server.config.app.state.guard.token(row.id)
        accept = {"decision": "accept", "csrf": csrf}

        # Anonymous: the page is the sign-in page, and a decision posted by hand is refused.
        page = browser.new_page()
        page.goto(here)
        assert page.url.startswith(f"{app.base}/signin?next=")
        assert page.locator("#token").is_visible() and page.locator("form.accept").count() == 0
        posted = httpx.post(decide_url, data=accept, timeout=30)
        assert posted.status_code == 403 and posted.text.startswith("refused: sign in first")

        # A forged cookie (another secret) and an expired one (this server's secret, 12 h old): the same.
        secret = server_secret(load_settings().home)
        bob_token_id = bob.split("_")[1]
        forged = sign_cookie(b"f" * 64, "root", root.split("_")[1])
        expired = sign_cookie(secret, "bob", bob_token_id, now=time.time() - COOKIE_LIFETIME_S - 1)
        for cookie in (forged, expired):
            context = browser.new_context()
            context.add_cookies([{"name": COOKIE, "value": cookie, "url": app.base}])
            other = context.new_page()
            other.goto(here)
            assert other.url.startswith(f"{app.base}/signin"), cookie
            context.close()
            refused = httpx.post(decide_url, data=accept, headers={"cookie": f"{COOKIE}={cookie}"}, timeout=30)
            assert refused.status_code == 403 and "sign in first" in refused.text
        nothing_changed(store, row, repo)
        # Each of those decisions is one row of the audit: nobody known, from the page, and why.
        assert [(r.person, r.via, r.action, r.detail) for r in refusals(store, row.id)] == [
            (None, "page", "accept", "not signed in"),
            (None, "page", "accept", "a sign-in cookie this server did not sign, or altered (forged)"),
            (None, "page", "accept", "an expired sign-in cookie"),
        ]

        # A wrong token is refused on the page; bob's own token signs him in and he accepts.
        page.fill("#token", root + "x")
        page.click("#signin")
        assert "no person" in page.inner_text("#banner")
        page.fill("#token", bob)
        page.click("#signin")
        page.wait_for_url(here)
        assert page.locator("#viewer").get_attribute("data-person") == "bob"
        assert "bob (reviewer), signed in" in page.inner_text("#viewer")
        [cookie] = page.context.cookies()
        assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == (COOKIE, True, "Strict")
        page.click("form.accept button")
        page_says(page, "accepted", "1")
        assert run.join().status.value == "accepted"
        page.reload()
        history = page.locator("#history .review").first
        assert history.get_attribute("data-decider") == "bob" and history.get_attribute("data-auth") == "cookie"
        assert "by bob, signed in on this page" in history.inner_text()
        assert page.locator("#refused .refusal").count() == 3
        assert "Refused: accept by unknown, through the review page" in page.inner_text("#refused")
        assert "an expired sign-in cookie" in page.inner_text("#refused")

        # Signing out ends the page's access.
        page.click("#signout")
        page.wait_for_url(re.compile(r".*/signin$"))
        page.goto(here)
        assert page.url.startswith(f"{app.base}/signin")

    done = store.get_session(row.id)
    message = git(repo, "log", "-1", "--format=%B", done.work_branch)
    assert "Reviewed-by: bob" in message and "Reviewed-by: team-a" not in message
    [review] = store.reviews(row.id)
    assert (review.decided_by, review.auth, review.commit) == ("bob", "cookie", done.delivered_commit)


def test_the_trusted_proxy_names_the_person_and_the_starter_may_not_accept_under_independent_review(
    repo, scripted, own_store, prefect_server, browser, monkeypatch
):
    store = own_store
    root = add("root")
    ada = add("ada", "--group", "team-a", "--email", "ada@example.com", token=root)
    add("bob", "--group", "team-a", token=root)
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    monkeypatch.setenv("AGENT_TASKS_TRUSTED_PROXY", "127.0.0.1")
    scripted([calls(tool("write_file", path="ada.txt", content="ada's change\n")), FINISH])
    run = Background(repo, "Ada's change", reviewer="team-a", independent_review=True)
    row = wait_for_review(store, "Ada's change", since=run.started)
    set_started_by(store, row.id, "ada")  # what `agent-tasks run` records in team mode
    independent = (
        "ada started this session and it needs an independent review: someone else from team-a (bob) or an admin "
        "(root) must accept it"
    )
    with AppServer(store) as app:
        here = f"{app.base}/sessions/{row.id}"

        # The proxy's header from an address that is not the proxy's: 403, one line, whoever it names.
        untrusted = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=30)
        spoofed = untrusted.get(here, headers={"X-Forwarded-User": "root", "host": f"127.0.0.1:{app.port}"})
        assert spoofed.status_code == 403
        spoofing = (
            "a X-Forwarded-User header is honoured only from the trusted proxy, AGENT_TASKS_TRUSTED_PROXY "
            "(127.0.0.1); not from 127.0.0.2"
        )
        assert spoofed.text == f"refused: {spoofing}\n"
        posted = untrusted.post(
            f"{here}/decide",
            data={"decision": "accept"},
            headers={"X-Forwarded-User": "root", "host": f"127.0.0.1:{app.port}"},
        )
        assert posted.status_code == 403 and posted.text == f"refused: {spoofing}\n"
        untrusted.close()
        assert [(r.person, r.via, r.action, r.detail) for r in refusals(store, row.id)] == [
            (None, "page", "accept", spoofing)
        ], "the visit is not a decision; the post is"
        nothing_changed(store, row, repo)

        # From the proxy: ada (by her email) sees the page as herself, and her own accept is refused.
        as_ada = browser.new_context(extra_http_headers={"X-Forwarded-Email": "ada@example.com"})
        page = as_ada.new_page()
        page.goto(here)
        assert page.locator("#viewer").get_attribute("data-person") == "ada"
        assert "Started by ada" in page.inner_text("#started-by")
        page.click("form.accept button")
        assert page.inner_text("#banner") == f"Not sent: {independent}"
        as_ada.close()
        nothing_changed(store, row, repo)

        # The CLI says the same, early.
        refused = cli("review", row.id[:8], "accept", "--timeout", "60", token=ada, PREFECT_API_URL=prefect_server)
        assert refused.returncode == 1 and refused.stderr.strip() == f"error: {independent}"
        nothing_changed(store, row, repo)

        # And the flow checks, not the caller: a grant made for ada by hand is refused where it is honoured.
        grant = issue_grant(store, row.id, row.review_key, "accept", Decider(person="ada", auth="proxy"))
        resume_review(store, row.id, {"decision": "accept", "grant": grant})
        again = wait_for_review(store, "Ada's change", after_key=row.review_key, since=run.started)
        assert again.status_reason == f"refused: {independent}"
        assert store.reviews(row.id) == [] and again.delivered_commit is None
        assert [(r.person, r.auth, r.via, r.detail) for r in refusals(store, row.id)][1:] == [
            ("ada", "proxy", "page", independent),  # the page's early refusal
            ("ada", "token", "cli", independent),  # the CLI's
            ("ada", "proxy", "page", independent),  # the gate's, for the grant made by hand
        ], "each refusal one row, naming her"

        # bob, named by the proxy, accepts.
        as_bob = browser.new_context(extra_http_headers={"X-Forwarded-User": "bob"})
        page = as_bob.new_page()
        page.goto(here)
        assert "bob (reviewer), through the proxy" in page.inner_text("#viewer")
        assert page.locator("#signout").count() == 0
        page.click("form.accept button")
        page_says(page, "accepted", "1")
        assert run.join().status.value == "accepted"
        as_bob.close()

    done = store.get_session(row.id)
    assert "Reviewed-by: bob" in git(repo, "log", "-1", "--format=%B", done.work_branch)
    [review] = store.reviews(row.id)
    assert (review.decided_by, review.auth, review.commit) == ("bob", "proxy", done.delivered_commit)
