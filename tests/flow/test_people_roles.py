"""`agent-tasks users role` and `users groups` as real CLI processes over a store of the test's own: only an admin
changes them (by their token), the last admin stays one, every refusal is one line and changes nothing, and every
change is in the audit with who made it."""

from __future__ import annotations

import json

from tasks_lib.store.people import find_person, list_people
from tests.flow import test_people
from tests.flow.test_people import add, cli

own_store = test_people.own_store  # the fixture: a store of the test's own


def refused(result, line: str) -> None:
    """The command failed with exactly ``line``."""
    assert result.returncode == 1 and result.stderr.strip() == f"error: {line}", result.stderr


def test_only_an_admin_changes_roles_and_groups_the_last_admin_stays_and_the_audit_says_who(own_store):
    store = own_store
    root = add("root")
    bob = add("bob", "--group", "team-a", token=root)
    people = [p.model_dump() for p in list_people(store)]

    # Refusals: not an admin, no token, the last admin, an unknown role or name, a group bob is not in.
    refused(
        cli("users", "role", "bob", "admin", token=bob),
        "bob (reviewer) may not change the role of bob: only an admin may",
    )
    nobody = cli("users", "role", "bob", "admin")
    assert nobody.returncode == 1 and "agent-tasks login" in nobody.stderr
    last = "root is the last admin, so stays one: make another person admin first (agent-tasks users role NAME admin)"
    refused(cli("users", "role", "root", "reviewer", token=root), last)
    refused(cli("users", "role", "bob", "owner", token=root), "unknown role 'owner'; use admin, reviewer or requester")
    refused(cli("users", "role", "bobb", "admin", token=root), "no person 'bobb' (did you mean bob?)")
    refused(
        cli("users", "groups", "bob", "--add", "team-b", token=bob),
        "bob (reviewer) may not change the groups of bob: only an admin may",
    )
    refused(
        cli("users", "groups", "bob", "--remove", "team-c", token=root), "bob is not in team-c (their groups: team-a)"
    )
    refused(
        cli("users", "groups", "bob", "--add", "Team-X", token=root),
        "group 'Team-X' is not valid: use lowercase letters, digits, '-', '_' and '.', starting with a letter or "
        "digit, at most 64 characters",
    )
    assert [p.model_dump() for p in list_people(store)] == people, "nothing changed"
    before = [e for e in json.loads(cli("audit", "--json").stdout) if e["kind"] == "people"]
    assert [(e["action"], e["subject"]) for e in before] == [("add", "root"), ("add", "bob")]

    # root makes bob an admin, and may then step down; as a requester root manages nobody.
    promoted = cli("users", "role", "bob", "admin", token=root)
    assert promoted.returncode == 0 and promoted.stdout.strip() == "bob is admin (was reviewer)", promoted.stderr
    assert cli("users", "role", "bob", "admin", token=root).stdout.strip() == "bob is already admin: nothing changed"
    stepped = cli("users", "role", "root", "requester", token=bob)
    assert stepped.returncode == 0 and stepped.stdout.strip() == "root is requester (was admin)", stepped.stderr
    refused(
        cli("users", "role", "bob", "reviewer", token=root),
        "root (requester) may not change the role of bob: only an admin may",
    )
    refused(cli("users", "role", "bob", "reviewer", token=bob), last.replace("root", "bob", 1))
    assert (find_person(store, "bob").role, find_person(store, "root").role) == ("admin", "requester")

    moved = cli("users", "groups", "bob", "--add", "team-b", "--remove", "team-a", token=bob)
    assert moved.returncode == 0 and moved.stdout.strip() == "bob's groups: team-b", moved.stderr
    assert cli("users", "groups", "bob").stdout.strip() == "bob's groups: team-b"
    assert find_person(store, "bob").groups == ["team-b"]

    listed = json.loads(cli("audit", "--json").stdout)
    changes = [
        (e["action"], e["subject"], e["detail"], e["person"], e["auth"]) for e in listed if e["kind"] == "people"
    ]
    assert changes[2:] == [
        ("role", "bob", "reviewer → admin", "root", "token"),
        ("role", "root", "admin → requester", "bob", "token"),
        ("groups", "bob", "+team-b -team-a", "bob", "token"),
    ]
    text = cli("audit").stdout
    assert "  role  bob: reviewer → admin  by root (token)" in text
    assert "  groups  bob: +team-b -team-a  by bob (token)" in text
