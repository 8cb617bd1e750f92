"""People: token hashing, names, "did you mean", who may decide, and the store's people, grants and audit trail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tasks_lib.domain.people import Decider, PeopleError, Person, check_name, did_you_mean, may_decide, refusal
from tasks_lib.domain.request import TaskRequest
from tasks_lib.security.tokens import new_token, secret_matches, split_token
from tasks_lib.store import Store
from tasks_lib.store.people import (
    GRANT_FRESH_S,
    add_person,
    check_reviewer,
    find_person,
    issue_grant,
    list_people,
    person_for_token,
    remove_person,
    replace_token,
    set_started_by,
    take_grant,
    team_mode,
)
from tasks_lib.store.queries import audit_events
from tasks_lib.store.tables import GrantRow, PersonRow, utcnow


@pytest.fixture
def store(tmp_path) -> Store:
    """A new store of this test's own (people here must not turn other tests' store into team mode)."""
    return Store(f"sqlite:///{tmp_path / 'people.db'}")


def test_a_token_is_kept_only_as_a_salted_hash_and_checked_by_its_secret():
    made = new_token()
    token_id, secret = split_token(made.token)
    assert token_id == made.token_id and made.token.startswith(f"at_{token_id}_")
    assert secret not in made.token_hash and made.token_hash.startswith("scrypt$")
    assert secret_matches(secret, made.token_hash)
    assert not secret_matches(secret[:-1] + ("A" if secret[-1] != "A" else "B"), made.token_hash)
    again = new_token()
    assert again.token != made.token and again.token_hash.split("$")[4] != made.token_hash.split("$")[4]  # salts
    assert split_token("at_zz_short") is None and split_token("hunter2") is None
    assert not secret_matches(secret, "not$a$hash")


def test_names_are_lowercase_words_and_unknown_ones_get_a_did_you_mean():
    assert check_name("ada.l-o_v3") == "ada.l-o_v3"
    for bad in ("Ada", "ada lovelace", "-ada", "", "a" * 65, "ada/x"):
        with pytest.raises(PeopleError, match="is not valid"):
            check_name(bad)
    assert did_you_mean("bobb", ["bob", "ada"]) == " (did you mean bob?)"
    assert did_you_mean("zed", ["bob", "ada"]) == " (known: ada, bob)"
    assert did_you_mean("zed", []) == ""


def test_the_assigned_person_a_member_of_the_assigned_group_or_an_admin_may_decide():
    people = [
        Person(name="root", role="admin"),
        Person(name="bob", role="reviewer", groups=["team-a"]),
        Person(name="carol", role="reviewer"),
        Person(name="rita", role="requester"),
    ]
    root, bob, carol, rita = people
    assert may_decide(bob, "bob", people) and may_decide(bob, "team-a", people) and may_decide(root, "carol", people)
    assert not may_decide(carol, "team-a", people) and not may_decide(carol, "bob", people)
    assert may_decide(carol, None, people) and not may_decide(rita, None, people) and may_decide(rita, "rita", people)
    line = refusal(carol, "team-a", people, "0123456789abcdef")
    assert line == (
        "carol may not decide on session 01234567: only a member of its reviewer group team-a (bob) "
        "or an admin (root) may"
    )
    assert refusal(bob, "team-a", people, "0123456789abcdef") is None


def test_people_round_trip_through_the_store_and_tokens_find_their_person(store: Store):
    assert not team_mode(store) and list_people(store) == []
    made = add_person(store, Person(name="ada", role="admin", email="ada@example.com", groups=["team-a", "team-a"]))
    assert team_mode(store)
    [ada] = list_people(store)
    assert (ada.name, ada.role, ada.email, ada.groups) == ("ada", "admin", "ada@example.com", ["team-a"])
    assert person_for_token(store, made.token).name == "ada"
    with store.transaction() as db:
        row = db.scalar(select(PersonRow))
        assert made.token not in (row.token_hash or "") and row.token_id == made.token_id
    with pytest.raises(PeopleError, match="already a person called 'ada'"):
        add_person(store, Person(name="ada"))

    renewed = replace_token(store, "ada")
    assert person_for_token(store, made.token) is None, "the old token stops working"
    assert person_for_token(store, renewed.token).name == "ada"
    forged = renewed.token[:-4] + "abcd"
    assert person_for_token(store, forged) is None
    with pytest.raises(PeopleError, match=r"no person 'adda' \(did you mean ada\?\)"):
        find_person(store, "adda")

    remove_person(store, "ada")
    assert person_for_token(store, renewed.token) is None and not team_mode(store)


def test_a_reviewer_must_be_a_person_or_a_group_once_there_are_people(store: Store):
    check_reviewer(store, "anyone at all")  # single-user mode: free text as before
    add_person(store, Person(name="bob", role="reviewer", groups=["team-a"]))
    check_reviewer(store, "bob")
    check_reviewer(store, "team-a")
    with pytest.raises(
        PeopleError, match=r"reviewer 'team-b' is neither a person nor a group \(did you mean team-a\?\)"
    ):
        check_reviewer(store, "team-b")


def test_a_grant_names_its_decider_only_for_its_session_pause_and_decision_and_while_fresh(store: Store):
    sid = store.create_session(TaskRequest(repository="/r", instructions="x"))
    bob = Decider(person="bob", auth="token")
    grant = issue_grant(store, sid, "review-1-abc", "accept", bob)
    assert take_grant(store, grant, sid, "review-1-abc", "reject") is None
    assert take_grant(store, grant, sid, "review-2-def", "accept") is None
    assert take_grant(store, "made-up", sid, "review-1-abc", "accept") is None
    assert take_grant(store, "", sid, "review-1-abc", "accept") is None
    assert take_grant(store, grant, sid, "review-1-abc", "accept") == bob
    assert take_grant(store, grant, sid, "review-1-abc", "accept") == bob, "a restarted run reads it again"

    stale = issue_grant(store, sid, "review-1-abc", "accept", bob)
    with store.transaction() as db:
        db.execute(
            update(GrantRow)
            .where(GrantRow.id == stale)
            .values(created_at=utcnow() - timedelta(seconds=GRANT_FRESH_S + 5))
        )
    assert take_grant(store, stale, sid, "review-1-abc", "accept") is None


def test_the_audit_lists_starts_and_decisions_oldest_first_with_who_and_how(store: Store):
    by_cli = store.create_session(TaskRequest(repository="/r", instructions="from the cli"))
    set_started_by(store, by_cli, "ada")
    by_event = store.create_session(
        TaskRequest(repository="/r", instructions="from an issue", trigger={"event": "github.issue.labeled"})
    )
    store.add_review(by_cli, 1, "accept", outcome="branch x", decided_by="bob", auth="token", commit="c0ffee" * 6)
    store.add_review(by_event, 1, "reject", outcome="discarded", auth="prefect-form")
    events = audit_events(store)
    assert [(e.kind, e.session_id, e.person, e.auth) for e in events] == [
        ("started", by_cli, "ada", "cli"),
        ("started", by_event, None, "trigger"),
        ("decided", by_cli, "bob", "token"),
        ("decided", by_event, None, "prefect-form"),
    ]
    lines = [e.line() for e in events]
    assert "started" in lines[1] and "github.issue.labeled" in lines[1]
    assert f"accept  {by_cli[:8]}  by bob (token)  commit c0ffeec0ff" in lines[2]
    assert "by nobody (prefect-form)" in lines[3]
    assert audit_events(store, since=utcnow() + timedelta(minutes=1)) == []


def test_workflows_check_names_a_workflow_whose_reviewer_is_unknown_in_team_mode(store: Store):
    from deployments.workflows import Workflow
    from tasks_lib.cli.workflows import reviewer_problems

    flows = [
        Workflow(name="nightly", request={"repository": "/r", "instructions": "x", "reviewer": "team-b"}),
        Workflow(name="triage", request={"repository": "/r", "instructions": "x", "reviewer": "bob"}),
    ]
    assert reviewer_problems(flows, store) == []  # single-user mode: free text
    add_person(store, Person(name="bob", groups=["team-a"]))
    assert reviewer_problems(flows, store) == [
        "workflow nightly: reviewer 'team-b' is neither a person nor a group (did you mean team-a?)"
    ]
