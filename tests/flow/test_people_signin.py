"""The review pages' sign-in rate limit over real HTTP: the app under uvicorn on a free port, a store of the test's
own, clients on different loopback addresses. A burst of wrong tokens from one address, or with one person's token
id from anywhere, locks sign-in (429, one line) — the right token included — until the window (set short here)
passes; then the right token signs in. Another address and another person are not held up."""

from __future__ import annotations

import time

import httpx
import pytest

from tasks_lib.domain.people import Person
from tasks_lib.store.people import add_person
from tasks_lib.web.signin import COOKIE
from tests.flow import test_people
from tests.flow.test_review_page import AppServer

own_store = test_people.own_store  # the fixture: a store of the test's own
WINDOW_S = 4


@pytest.fixture
def limited(own_store, monkeypatch):
    """root and bob in the store, and the app over it with a limit of 3 failures in WINDOW_S seconds."""
    monkeypatch.setenv("AGENT_TASKS_SIGNIN_MAX_FAILURES", "3")
    monkeypatch.setenv("AGENT_TASKS_SIGNIN_WINDOW", str(WINDOW_S))
    tokens = {p.name: add_person(own_store, p).token for p in (Person(name="root", role="admin"), Person(name="bob"))}
    with AppServer(own_store) as app:
        yield app, tokens


def sign_in(app: AppServer, address: str, token: str) -> httpx.Response:
    """Post the sign-in form (with its CSRF token, as the page would) from ``address``."""
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=app.base, transport=transport, timeout=30, follow_redirects=False) as web:
        csrf = web.get("/signin").text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        return web.post("/signin", data={"token": token, "csrf": csrf, "next": "/sessions"})


def refused_for(answer: httpx.Response) -> int:
    """The seconds a 429 says to wait, after checking it says so in one line and sets no cookie."""
    assert answer.status_code == 429 and "set-cookie" not in answer.headers
    wait = int(answer.headers["retry-after"])
    assert f"too many sign-in attempts; try again in {wait} s" in answer.text and 0 < wait <= WINDOW_S
    return wait


def test_a_burst_of_wrong_tokens_locks_sign_in_until_the_window_passes_the_right_token_included(limited):
    app, tokens = limited
    # One address, tokens that are nobody's: the address is locked, for root's right token too; not elsewhere.
    nobody = ["hunter2", "at_000000000000_" + "x" * 43, tokens["root"][:3] + "ffffffffffff" + tokens["root"][15:]]
    assert [sign_in(app, "127.0.0.2", t).status_code for t in nobody] == [401, 401, 401]
    refused_for(sign_in(app, "127.0.0.2", tokens["root"]))
    assert sign_in(app, "127.0.0.3", tokens["root"]).status_code == 303, "root's own count is untouched"

    # bob's token id with wrong secrets, from one address: bob is locked from every address.
    wrong = [tokens["bob"][:-4] + suffix for suffix in ("AAAA", "BBBB", "CCCC")]
    assert [sign_in(app, "127.0.0.4", t).status_code for t in wrong] == [401, 401, 401]
    refused_for(sign_in(app, "127.0.0.4", tokens["bob"]))
    refused_for(sign_in(app, "127.0.0.5", tokens["bob"]))
    wait = refused_for(sign_in(app, "127.0.0.4", tokens["root"]))  # and that address, for anyone

    # Refused attempts do not prolong the cool-down: once the window has passed, bob's token signs him in.
    time.sleep(wait)  # the seconds it said, rounded up
    signed = sign_in(app, "127.0.0.4", tokens["bob"])
    assert signed.status_code == 303 and signed.headers["location"] == "/sessions"
    cookie = signed.headers["set-cookie"].split(";", 1)[0]
    assert cookie.startswith(f"{COOKIE}=")
    page = httpx.get(f"{app.base}/sessions", headers={"cookie": cookie}, timeout=30)
    assert page.status_code == 200 and 'data-person="bob"' in page.text
