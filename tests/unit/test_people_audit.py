"""Roles and groups changed in the store (the last admin stays one), refused decisions and people changes in the
audit and on the session page's history, and the sign-in rate limit's arithmetic (a store of each test's own)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tasks_lib.domain.people import Decider, PeopleError, Person
from tasks_lib.store import Store
from tasks_lib.store.people import (
    add_person,
    change_groups,
    find_person,
    forget_signin_failures,
    note_signin_failure,
    record_refusal,
    refusals,
    remove_person,
    replace_token,
    set_role,
    signin_keys,
    signin_wait,
)
from tasks_lib.store.queries import audit_events
from tasks_lib.store.tables import utcnow
from tasks_lib.web.history import history_section, with_people
from tests.helpers import fake_session

ROOT = Decider(person="root", auth="token")


@pytest.fixture
def store(tmp_path) -> Store:
    """A new store of this test's own (people here must not turn other tests' store into team mode)."""
    return Store(f"sqlite:///{tmp_path / 'audit.db'}")


def test_the_last_admin_stays_one_and_nothing_changes_when_refused(store: Store):
    add_person(store, Person(name="root", role="admin"))
    add_person(store, Person(name="bob", groups=["team-a"]))
    before = [e.model_dump() for e in audit_events(store)]
    for role in ("reviewer", "requester"):
        with pytest.raises(PeopleError) as refused:
            set_role(store, "root", role, ROOT)
        assert str(refused.value) == (
            "root is the last admin, so stays one: make another person admin first (agent-tasks users role NAME admin)"
        )
    assert find_person(store, "root").role == "admin"
    assert [e.model_dump() for e in audit_events(store)] == before, "a refused change leaves no change in the audit"
    with pytest.raises(PeopleError, match=r"no person 'bobb' \(did you mean bob\?\)"):
        set_role(store, "bobb", "admin", ROOT)

    assert set_role(store, "bob", "admin", ROOT) == "reviewer"
    assert set_role(store, "bob", "admin", ROOT) == "admin", "the same role again changes nothing"
    assert set_role(store, "root", "requester", Decider(person="bob", auth="token")) == "admin"
    with pytest.raises(PeopleError, match="bob is the last admin"):
        set_role(store, "bob", "reviewer", ROOT)
    people = [(e.action, e.subject, e.detail, e.person, e.auth) for e in audit_events(store) if e.kind == "people"]
    assert people[2:] == [
        ("role", "bob", "reviewer → admin", "root", "token"),
        ("role", "root", "admin → requester", "bob", "token"),
    ]


def test_groups_are_joined_and_left_and_a_group_one_is_not_in_is_refused(store: Store):
    add_person(store, Person(name="bob", groups=["team-a"]))
    assert change_groups(store, "bob", add=["team-b", "team-c"], remove=["team-a"], by=ROOT) == ["team-b", "team-c"]
    with pytest.raises(PeopleError) as refused:
        change_groups(store, "bob", add=["team-d"], remove=["team-a"], by=ROOT)
    assert str(refused.value) == "bob is not in team-a (their groups: team-b, team-c)"
    with pytest.raises(PeopleError, match="group 'Team-X' is not valid"):
        change_groups(store, "bob", add=["Team-X"], by=ROOT)
    assert find_person(store, "bob").groups == ["team-b", "team-c"], "a refused change changes nothing"
    assert change_groups(store, "bob", remove=["team-b", "team-c"], by=ROOT) == []
    assert change_groups(store, "bob", by=ROOT) == [], "nothing asked: nothing recorded"
    [added, joined, left] = [e for e in audit_events(store) if e.kind == "people"]
    assert (added.action, added.person, added.auth, added.detail) == ("add", None, "local", "reviewer, groups team-a")
    assert (joined.detail, left.detail) == ("+team-b +team-c -team-a", "-team-b -team-c")
    assert left.line().endswith("  groups  bob: -team-b -team-c  by root (token)")


def test_every_change_to_the_people_is_in_the_audit_with_who_made_it(store: Store):
    add_person(store, Person(name="root", role="admin"))
    add_person(store, Person(name="rita", role="requester"), by=ROOT)
    replace_token(store, "rita", by=Decider(person="rita", auth="token"))
    remove_person(store, "rita", by=ROOT)
    events = [e for e in audit_events(store) if e.kind == "people"]
    assert [(e.action, e.subject, e.person, e.session_id, e.refused) for e in events] == [
        ("add", "root", None, None, False),
        ("add", "rita", "root", None, False),
        ("token", "rita", "rita", None, False),
        ("remove", "rita", "root", None, False),
    ]
    assert events[0].line().endswith("  add  root: admin  by local user (local)")


def test_a_refused_decision_is_one_audit_line_marked_refused_and_on_the_session_page(store: Store):
    add_person(store, Person(name="root", role="admin"))
    sid = fake_session(store, "refused", reviewer="team-a")
    record_refusal(store, sid, "accept", "refused: no person: sent through the Prefect form or API with no grant")
    carol = Decider(person="carol", auth="token")
    record_refusal(store, sid, "reject", "carol may not decide on session x: only ...", carol)
    record_refusal(store, sid, None, "a sign-in cookie this server did not sign, or altered (forged)", via="page")
    rows = refusals(store, sid)
    assert [(r.person, r.auth, r.via, r.action) for r in rows] == [
        (None, None, "prefect-form", "accept"),
        ("carol", "token", "cli", "reject"),
        (None, None, "page", ""),
    ]
    assert store.reviews(sid) == [] and store.get_session(sid).status == "awaiting_review"

    events = [e for e in audit_events(store) if e.refused]
    assert [e.kind for e in events] == ["refused"] * 3 and events[0].session_id == sid
    dumped = events[1].model_dump(mode="json")
    assert (dumped["refused"], dumped["via"], dumped["person"], dumped["decision"]) == (True, "cli", "carol", "reject")
    assert (
        events[0]
        .line()
        .endswith(
            f"  refused accept  {sid[:8]}  by unknown via the Prefect form or API: "
            "no person: sent through the Prefect form or API with no grant"
        )
    )
    assert "  refused decision  " in events[2].line() and "via the review page" in events[2].line()
    assert not any(e.refused for e in audit_events(store) if e.kind != "refused")

    html = history_section(with_people(store, store.get_session(sid), {"history": [], "iterations": []}))
    assert 'id="refused"' in html and html.count('class="refusal"') == 3
    assert 'data-person="carol" data-via="cli"' in html and "by unknown, through the Prefect form or API" in html
    assert "altered (forged)" in html


def test_a_person_s_sign_ins_count_by_their_token_id_and_the_cool_down_ends_with_the_window(store: Store):
    bob = add_person(store, Person(name="bob"))
    wrong = bob.token[:-4] + "zzzz"
    assert signin_keys(store, "10.0.0.1", wrong) == ["address:10.0.0.1", "person:bob"]
    assert signin_keys(store, "10.0.0.1", "hunter2") == ["address:10.0.0.1"], "no token id: the address only"
    start = utcnow()
    keys = signin_keys(store, "10.0.0.1", wrong)
    for second in range(3):
        assert signin_wait(store, keys, 3, 60, now=start + timedelta(seconds=second)) is None
        note_signin_failure(store, keys, 60, now=start + timedelta(seconds=second))
    assert signin_wait(store, keys, 3, 60, now=start + timedelta(seconds=10)) == 50
    assert signin_wait(store, ["person:bob"], 3, 60, now=start + timedelta(seconds=10)) == 50, "from any address"
    assert signin_wait(store, ["address:10.0.0.2"], 3, 60, now=start + timedelta(seconds=10)) is None
    assert signin_wait(store, keys, 3, 60, now=start + timedelta(seconds=60, milliseconds=1)) is None
    forget_signin_failures(store, ["person:bob"])
    assert signin_wait(store, ["person:bob"], 3, 60, now=start + timedelta(seconds=10)) is None
    assert signin_wait(store, ["address:10.0.0.1"], 3, 60, now=start + timedelta(seconds=10)) == 50


def test_a_decision_the_cli_or_page_refuses_before_sending_it_is_in_the_audit(store: Store):
    from tasks_lib.review.resume import ResumeRefused, check_decider

    add_person(store, Person(name="root", role="admin"))
    add_person(store, Person(name="ada"))
    add_person(store, Person(name="bob"))
    session = fake_session(store, "early", reviewer="ada")
    for decider in (None, Decider(person="bob", auth="token"), Decider(person="nobody", auth="token")):
        with pytest.raises(ResumeRefused):
            check_decider(store, session, "ada", decider, "accept")
    rows = refusals(store, session)
    assert [(r.person, r.action) for r in rows] == [(None, "accept"), ("bob", "accept"), ("nobody", "accept")]
    assert "needs one of them" in rows[0].detail and "bob" in rows[1].detail
    assert check_decider(store, session, "ada", Decider(person="ada", auth="token"), "accept").person == "ada"
    assert len(refusals(store, session)) == 3, "an allowed decider adds no refusal"
    assert store.get_session(session).status == "awaiting_review"
