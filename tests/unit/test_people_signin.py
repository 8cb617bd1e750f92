"""The review app in team mode, called in process over a store of the test's own: decisions it refuses before any
route are each one audit row (and count as failed sign-ins of their address, so a flood fills nothing), and the
address a sign-in counts against is the client's, behind the trusted proxy too."""

from __future__ import annotations

import time

import pytest
from starlette.testclient import TestClient

from tasks_lib.config import load_settings
from tasks_lib.domain.people import Person
from tasks_lib.security.cookies import COOKIE_LIFETIME_S, server_secret, sign_cookie
from tasks_lib.store import Store
from tasks_lib.store.people import add_person, refusals, replace_token
from tasks_lib.web import create_app
from tasks_lib.web.signin import COOKIE
from tests.helpers import fake_session


@pytest.fixture
def team(tmp_path, monkeypatch):
    """A team-mode store (root, bob), a session waiting for team-a, and the app over them (limit: 4 in 60 s)."""
    monkeypatch.setenv("AGENT_TASKS_SIGNIN_MAX_FAILURES", "4")
    monkeypatch.setenv("AGENT_TASKS_SIGNIN_WINDOW", "60")
    store = Store(f"sqlite:///{tmp_path / 'team.db'}")
    tokens = {
        name: add_person(store, Person(name=name, role=role)) for name, role in (("root", "admin"), ("bob", "reviewer"))
    }
    sid = fake_session(store, "team", reviewer="team-a")
    settings = load_settings({"AGENT_TASKS_HOME": str(tmp_path / "home"), "AGENT_TASKS_TRUSTED_PROXY": "10.0.0.0/8"})
    return store, tokens, sid, settings, create_app(store, "127.0.0.1", 8766, settings=settings)


def client(app, address: str = "127.0.0.1") -> TestClient:
    return TestClient(app, base_url="http://127.0.0.1:8766", follow_redirects=False, client=(address, 5555))


def test_each_decision_refused_before_any_route_is_one_audit_row_and_nothing_changes(team):
    store, tokens, sid, settings, app = team
    secret = server_secret(settings.home)
    bob_id = tokens["bob"].token_id
    forged = sign_cookie(b"f" * 64, "root", tokens["root"].token_id)
    expired = sign_cookie(secret, "bob", bob_id, now=time.time() - COOKIE_LIFETIME_S - 1)
    outdated = sign_cookie(secret, "bob", bob_id)
    replace_token(store, "bob")  # the cookie's token is replaced
    attempts = [
        ("127.0.0.1", {}, "not signed in"),
        (
            "127.0.0.1",
            {"cookie": f"{COOKIE}={forged}"},
            "a sign-in cookie this server did not sign, or altered (forged)",
        ),
        ("127.0.0.1", {"cookie": f"{COOKIE}={expired}"}, "an expired sign-in cookie"),
        ("127.0.0.1", {"cookie": f"{COOKIE}={outdated}"}, "a sign-in cookie of a replaced token or a removed person"),
        (
            "192.168.1.9",
            {"X-Forwarded-User": "root"},
            "a X-Forwarded-User header is honoured only from the trusted proxy, AGENT_TASKS_TRUSTED_PROXY "
            "(10.0.0.0/8); not from 192.168.1.9",
        ),
        ("10.1.2.3", {"X-Forwarded-User": "mallory"}, "the proxy names 'mallory', who is not a person of this store"),
    ]
    for address, headers, reason in attempts:
        before = len(refusals(store, sid))
        with client(app, address) as web:
            answer = web.post(f"/sessions/{sid[:8]}/decide", data={"decision": "accept"}, headers=headers)
        assert answer.status_code == 403 and answer.text.startswith("refused: ")
        new = refusals(store, sid)[before:]
        assert [(r.person, r.auth, r.via, r.action) for r in new] == [(None, None, "page", "accept")], reason
        assert new[0].detail.startswith(reason)
    row = store.get_session(sid)
    assert (row.status, store.reviews(sid), row.delivered_commit) == ("awaiting_review", [], None)

    with client(app) as web:  # not decisions: a page visit, an unknown session, a made-up decision word
        assert web.get(f"/sessions/{sid}").status_code == 303
        assert web.post("/sessions/no-such-session/decide", data={"decision": "accept"}).status_code == 403
    assert len(refusals(store, sid)) == len(attempts)


def test_a_flood_of_refused_decisions_stops_filling_the_audit_at_the_sign_in_limit(team):
    store, tokens, sid, _, app = team
    with client(app, "192.168.7.7") as web:
        for _ in range(10):
            assert web.post(f"/sessions/{sid}/decide", data={"decision": "rm -rf"}).status_code == 403
        assert [r.action for r in refusals(store, sid)] == [""] * 4, "four (the limit), no made-up decision word"
        csrf = web.get("/signin").text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        locked = web.post("/signin", data={"token": tokens["bob"].token, "csrf": csrf})
        assert locked.status_code == 429 and "too many sign-in attempts; try again in" in locked.text
        assert "set-cookie" not in locked.headers
    with client(app, "192.168.7.8") as web:  # another address: the person was never named, so bob signs in
        csrf = web.get("/signin").text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        assert web.post("/signin", data={"token": "x" * 500, "csrf": csrf}).status_code == 422, "not a crash"
        assert web.post("/signin", data={"token": tokens["bob"].token, "csrf": csrf}).status_code == 303


def test_behind_the_trusted_proxy_sign_ins_count_against_the_address_it_forwards_for(team):
    store, tokens, _, _, app = team
    signin = app.state.signin
    scope = {"client": ("10.0.0.2", 5555)}
    assert signin.client(scope, {"x-forwarded-for": "203.0.113.9, 10.0.0.5"}) == "203.0.113.9"
    assert signin.client(scope, {"x-forwarded-for": "198.51.100.1, 203.0.113.9"}) == "203.0.113.9"
    assert signin.client(scope, {}) == "10.0.0.2"
    assert signin.client({"client": ("192.168.1.9", 1)}, {"x-forwarded-for": "203.0.113.9"}) == "192.168.1.9", (
        "only the trusted proxy says who it forwards for"
    )

    def sign_in(web: TestClient, token: str, forwarded: str) -> int:
        csrf = web.get("/signin").text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        return web.post(
            "/signin", data={"token": token, "csrf": csrf}, headers={"x-forwarded-for": forwarded}
        ).status_code

    with client(app, "10.0.0.2") as web:
        assert [sign_in(web, "at_000000000000_" + "x" * 40, "203.0.113.9") for _ in range(4)] == [401] * 4
        assert sign_in(web, tokens["root"].token, "203.0.113.9") == 429
        assert sign_in(web, tokens["root"].token, "203.0.113.10") == 303, "another client behind the same proxy"
