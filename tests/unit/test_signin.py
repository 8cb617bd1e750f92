"""Sign-in on the review pages: the signed cookie (expiry, tampering, another secret, the token it was made with),
the server secret kept 0600, the starter's own accept under independent review, and the pages in team mode with a
store of the test's own (anonymous visitors, forged cookies and untrusted proxy headers get nowhere)."""

from __future__ import annotations

import base64
import json
import stat

import pytest
from starlette.testclient import TestClient

from tasks_lib.config import load_settings
from tasks_lib.domain.people import Person, refusal, starter_of
from tasks_lib.domain.request import TaskRequest, needs_independent_review
from tasks_lib.security.cookies import COOKIE_LIFETIME_S, read_cookie, server_secret, sign_cookie
from tasks_lib.store import Store
from tasks_lib.store.people import add_person, person_signed_in, remove_person, replace_token
from tasks_lib.web import create_app
from tasks_lib.web.signin import COOKIE, safe_next

SECRET = b"k" * 64
NOW = 1_800_000_000


def test_a_cookie_says_who_until_when_and_nothing_else_is_accepted():
    value = sign_cookie(SECRET, "bob", "0123456789ab", now=NOW)
    found = read_cookie(SECRET, value, now=NOW + 60)
    assert (found.person, found.token_id, found.expires) == ("bob", "0123456789ab", NOW + COOKIE_LIFETIME_S)
    assert read_cookie(SECRET, value, now=NOW + COOKIE_LIFETIME_S) is None, "expired after 12 h"
    assert read_cookie(b"x" * 64, value, now=NOW) is None, "another server's secret"
    version, payload, signature = value.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"p": "root", "t": "0123456789ab", "e": NOW + 99}).encode())
    assert read_cookie(SECRET, f"{version}.{forged.decode().rstrip('=')}.{signature}", now=NOW) is None
    assert read_cookie(SECRET, f"{version}.{payload}.{signature[:-2]}AA", now=NOW) is None
    for junk in ("", "v1", "v1.a.b", "v2." + value[3:], "a.b.c.d", value + "x"):
        assert read_cookie(SECRET, junk, now=NOW) is None, junk


def test_the_server_secret_is_made_once_and_kept_private(tmp_path):
    first = server_secret(tmp_path / "home")
    assert server_secret(tmp_path / "home") == first and len(first) >= 32
    assert stat.S_IMODE((tmp_path / "home" / "web-secret").stat().st_mode) == 0o600
    assert [p.name for p in (tmp_path / "home").iterdir()] == ["web-secret"]


def test_replacing_a_token_or_removing_the_person_ends_their_cookies(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'people.db'}")
    made = add_person(store, Person(name="bob"))
    assert person_signed_in(store, "bob", made.token_id)[0].name == "bob"
    replace_token(store, "bob")
    assert person_signed_in(store, "bob", made.token_id) is None
    remove_person(store, "bob")
    assert person_signed_in(store, "bob", made.token_id) is None


def test_only_paths_of_this_app_are_followed_after_sign_in():
    assert safe_next("/sessions/abc?view=split") == "/sessions/abc?view=split"
    for bad in ("https://evil.example/", "//evil.example/", "/\\evil.example", "", None, "sessions"):
        assert safe_next(bad) == "/sessions"


def test_the_starter_may_not_accept_under_independent_review_but_may_request_changes():
    people = [
        Person(name="root", role="admin"),
        Person(name="ada", groups=["team-a"]),
        Person(name="bob", groups=["team-a"]),
    ]
    ada = people[1]
    line = refusal(ada, "team-a", people, "0123456789abcdef", starter="ada", independent=True)
    assert line == (
        "ada started this session and it needs an independent review: someone else from team-a (bob) or an admin "
        "(root) must accept it"
    )
    assert (
        refusal(ada, "team-a", people, "0123456789abcdef", decision="request_changes", starter="ada", independent=True)
        is None
    )
    assert refusal(ada, "team-a", people, "0123456789abcdef", starter="ada", independent=False) is None
    assert refusal(people[2], "team-a", people, "0123456789abcdef", starter="ada", independent=True) is None


def test_independent_review_defaults_to_event_started_and_the_sender_maps_to_a_person():
    assert needs_independent_review({"trigger": {"event": "github.issues.opened"}})
    assert not needs_independent_review({"trigger": {"event": "schedule"}})
    assert not needs_independent_review({})
    assert needs_independent_review({"independent_review": True})
    assert not needs_independent_review({"trigger": {"event": "x"}, "independent_review": False})
    request = TaskRequest(repository="r", instructions="i", trigger={"event": "github.issues.opened"})
    assert request.needs_independent_review
    people = [Person(name="ada", email="Ada@Example.com"), Person(name="bob")]
    assert starter_of(None, {"sender": "ada@example.com"}, people) == "ada"
    assert starter_of(None, {"sender": "bob"}, people) == "bob"
    assert starter_of(None, {"sender": "octocat"}, people) is None
    assert starter_of("bob", {"sender": "ada"}, people) == "bob"


@pytest.fixture
def team(tmp_path):
    """A team-mode store of the test's own (root, bob) and the review app over it, called in process."""
    store = Store(f"sqlite:///{tmp_path / 'team.db'}")
    root = add_person(store, Person(name="root", role="admin")).token
    bob = add_person(store, Person(name="bob", email="bob@example.com")).token
    settings = load_settings({"AGENT_TASKS_HOME": str(tmp_path / "home"), "AGENT_TASKS_TRUSTED_PROXY": "10.0.0.0/8"})
    return store, {"root": root, "bob": bob}, settings


def client(app, address: str = "127.0.0.1") -> TestClient:
    """The app called in process, as from ``address``, redirects not followed."""
    return TestClient(app, base_url="http://127.0.0.1:8766", follow_redirects=False, client=(address, 5555))


def test_team_mode_pages_need_a_person_and_a_token_signs_one_in(team):
    store, tokens, settings = team
    app = create_app(store, "127.0.0.1", 8766, settings=settings)
    with client(app) as web:
        assert web.get("/healthz").text == "ok"
        gone = web.get("/sessions?status=awaiting_review")
        assert gone.status_code == 303 and gone.headers["location"].startswith("/signin?next=%2Fsessions%3Fstatus")
        refused = web.post(
            "/sessions/abc/decide", content=b"decision=accept", headers={"origin": "http://127.0.0.1:8766"}
        )
        assert refused.status_code == 403 and refused.text.startswith("refused: sign in first")
        forged = sign_cookie(b"z" * 64, "root", tokens["root"][3:15])
        assert web.get("/sessions", headers={"cookie": f"{COOKIE}={forged}"}).status_code == 303

        form = web.get("/signin").text
        csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        wrong = web.post("/signin", data={"token": tokens["bob"] + "x", "csrf": csrf})
        assert wrong.status_code == 401 and "no person" in wrong.text
        signed = web.post("/signin", data={"token": tokens["bob"], "csrf": csrf, "next": "/sessions"})
        assert signed.status_code == 303 and signed.headers["location"] == "/sessions"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=43200" in cookie
        assert "Secure" not in cookie, "plain http on loopback"
        value = cookie.split(";", 1)[0].split("=", 1)[1]
        web.cookies.clear()  # sent by hand below
        page = web.get("/sessions", headers={"cookie": f"{COOKIE}={value}"})
        assert page.status_code == 200 and 'data-person="bob"' in page.text and "Sign out" in page.text
        replace_token(store, "bob")
        assert web.get("/sessions", headers={"cookie": f"{COOKIE}={value}"}).status_code == 303, (
            "a replaced token ends the cookie"
        )


def test_a_proxy_header_names_a_person_only_from_the_trusted_proxy(team):
    store, _, settings = team
    app = create_app(store, "127.0.0.1", 8766, settings=settings)
    with client(app, "192.168.1.9") as web:
        spoofed = web.get("/sessions", headers={"X-Forwarded-User": "root"})
        assert spoofed.status_code == 403
        assert spoofed.text.strip() == (
            "refused: a X-Forwarded-User header is honoured only from the trusted proxy, AGENT_TASKS_TRUSTED_PROXY "
            "(10.0.0.0/8); not from 192.168.1.9"
        )
        assert web.get("/sessions", headers={"X-Forwarded-Email": "bob@example.com"}).status_code == 403
    with client(app, "10.1.2.3") as web:
        page = web.get("/sessions", headers={"X-Forwarded-Email": "bob@example.com"})
        assert page.status_code == 200 and 'data-person="bob"' in page.text and "Sign out" not in page.text
        unknown = web.get("/sessions", headers={"X-Forwarded-User": "mallory"})
        assert unknown.status_code == 403 and "not a person of this store" in unknown.text


def test_single_user_mode_pages_are_open_and_ignore_sign_in(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'solo.db'}")
    settings = load_settings({"AGENT_TASKS_HOME": str(tmp_path / "home")})
    with client(create_app(store, "127.0.0.1", 8766, settings=settings), "192.168.1.9") as web:
        page = web.get("/sessions", headers={"X-Forwarded-User": "root"})
        assert page.status_code == 200 and "data-person" not in page.text
        assert "single-user mode" in web.get("/signin").text
    assert not (tmp_path / "home" / "web-secret").exists(), "no secret is made when nobody signs in"


def test_the_audit_names_the_person_a_trigger_s_sender_is(tmp_path):
    from tasks_lib.store.queries import audit_events

    store = Store(f"sqlite:///{tmp_path / 'audit.db'}")
    add_person(store, Person(name="ada", email="ada@example.com"))
    trigger = {"event": "github.issues.opened", "title": "Fix it", "sender": "ADA@example.com"}
    sid = store.create_session(TaskRequest(repository="/r", instructions="i", trigger=trigger).model_dump())
    [event] = [e for e in audit_events(store) if e.session_id == sid]
    assert (event.person, event.auth) == ("ada", "trigger") and "by trigger (sent by ada)" in event.line()
