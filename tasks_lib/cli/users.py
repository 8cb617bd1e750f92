"""`agent-tasks users add|list|remove|token|role|groups` and `agent-tasks login|logout`: the people of a team and
who you are.

With no people the store is in single-user mode and nothing asks who you are. Once there are people, the CLI knows
its person by AGENT_TASKS_TOKEN or the token `agent-tasks login` keeps in the home (mode 0600), and managing
people takes an admin's token. A token is shown once, as the last line of `users add` and `users token`. Every change
to the people is recorded in the audit with who made it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from tasks_lib.cli.common import CliError, cli_store, out, wide
from tasks_lib.domain.people import ROLES, Decider, PeopleError, Person, check_name

if TYPE_CHECKING:
    from tasks_lib.store import Store

users_app = typer.Typer(help="People of a team: who starts tasks, who decides, with what token.", no_args_is_help=True)
TOKEN_FILE = "token"


def token_file() -> Path:
    """Where `agent-tasks login` keeps the token: ``token`` in the agent-tasks home."""
    from tasks_lib.config import load_settings

    return load_settings().home / TOKEN_FILE


def cli_token() -> tuple[str, str] | None:
    """(token, where it came from): AGENT_TASKS_TOKEN first, then the token `agent-tasks login` kept; else None."""
    from tasks_lib.config import load_settings

    given = load_settings().token
    if given:
        return given, "AGENT_TASKS_TOKEN"
    path = token_file()
    if path.exists():
        saved = path.read_text(encoding="utf-8").strip()
        if saved:
            return saved, str(path)
    return None


def cli_person(store: Store) -> Person | None:
    """The person this CLI acts for; None in single-user mode. In team mode a missing or invalid token is a
    CliError saying what to do."""
    from tasks_lib.store.people import person_for_token, team_mode

    if not team_mode(store):
        return None
    found = cli_token()
    if found is None:
        raise CliError(
            "this store has people: say who you are with `agent-tasks login` (or set AGENT_TASKS_TOKEN) first"
        )
    token, source = found
    person = person_for_token(store, token)
    if person is None:
        raise CliError(
            f"the token in {source} is not valid (replaced, or its person removed): "
            "ask an admin for a new one (agent-tasks users token NAME), then agent-tasks login"
        )
    return person


def cli_decider(store: Store) -> Decider:
    """Who a decision from this CLI comes from: the local user (single-user mode) or the token's person."""
    person = cli_person(store)
    return Decider(auth="local") if person is None else Decider(person=person.name, auth="token")


def _admin(store: Store, action: str, allow: str | None = None) -> Decider:
    """Who this CLI acts as (for the audit); CliError unless they are an admin (or are ``allow``). With no people
    there is nothing to check: the local user."""
    person = cli_person(store)
    if person is not None and person.role != "admin" and person.name != allow:
        raise CliError(f"{person.name} ({person.role}) may not {action}: only an admin may")
    return Decider(auth="local") if person is None else Decider(person=person.name, auth="token")


def _person(store: Store, name: str) -> Person:
    """The person called ``name``; CliError (with a "did you mean") when there is none."""
    from tasks_lib.store.people import find_person

    try:
        return find_person(store, name)
    except PeopleError as exc:
        raise CliError(str(exc)) from None


def _show_token(person: Person, token: str, as_json: bool, verb: str) -> None:
    """The person and the new token (shown once: the last line, or in the JSON)."""
    if as_json:
        print(json.dumps({**person.model_dump(mode="json", exclude={"created_at"}), "token": token}))
        return
    out.print(f"{verb} {person.line()}")
    out.print("the token below is shown once: keep it (agent-tasks login, or AGENT_TASKS_TOKEN)")
    out.print(token)


def _check(name: str, what: str = "name") -> str:
    try:
        return check_name(name, what)
    except PeopleError as exc:
        raise CliError(str(exc)) from None


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="Their name: lowercase letters, digits, - _ ."),
    role: str | None = typer.Option(None, "--role", help="admin | reviewer | requester (the first person: admin)."),
    email: str | None = typer.Option(None, "--email", help="Their email address."),
    group: list[str] = typer.Option([], "--group", help="A group they belong to, e.g. team-a (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the person and the token as JSON."),
) -> None:
    """Add a person with a new token (the first person is the admin who adds the others)."""
    from tasks_lib.store import open_store
    from tasks_lib.store.people import add_person, team_mode

    _check(name)
    for g in group:
        _check(g, "group")
    if role is not None and role not in ROLES:
        raise CliError(f"unknown role {role!r}; use admin, reviewer or requester")
    store = open_store()  # the first person may come before the first session
    first = not team_mode(store)
    if first and role not in (None, "admin"):
        raise CliError(
            f"the first person adds the others, so must be an admin: agent-tasks users add {name} --role admin"
        )
    by = _admin(store, "add people")
    person = Person(name=name, role=role or ("admin" if first else "reviewer"), email=email, groups=group)
    try:
        made = add_person(store, person, by)
    except PeopleError as exc:
        raise CliError(str(exc)) from None
    _show_token(person, made.token, as_json, "added")


@users_app.command("list")
def users_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Everyone, with their role, email and groups (never their tokens)."""
    from tasks_lib.cli.common import missing_store
    from tasks_lib.store.people import list_people

    people = [] if missing_store() else list_people(cli_store())
    if as_json:
        print(json.dumps([p.model_dump(mode="json") for p in people], indent=2))
        return
    if not people:
        out.print("no people: single-user mode (add the first, an admin: agent-tasks users add NAME)")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("name", "role", "email", "groups"):
        table.add_column(col)
    for p in people:
        table.add_row(p.name, p.role, p.email or "-", ", ".join(p.groups) or "-")
    wide.print(table)


@users_app.command("remove")
def users_remove(name: str = typer.Argument(..., help="Their name.")) -> None:
    """Remove a person: their token stops working; the decisions they made keep their name."""
    from tasks_lib.store.people import list_people, remove_person

    store = cli_store()
    person = _person(store, name)
    by = _admin(store, "remove people")
    people = list_people(store)
    if person.role == "admin" and [p.name for p in people if p.role == "admin"] == [name] and len(people) > 1:
        raise CliError(f"{name} is the last admin: add another admin first (agent-tasks users add NAME --role admin)")
    remove_person(store, name, by)
    left = "" if len(people) > 1 else "; no people left: single-user mode"
    out.print(f"removed {name}{left}")


@users_app.command("token")
def users_token(
    name: str = typer.Argument(..., help="Their name."),
    as_json: bool = typer.Option(False, "--json", help="Print the person and the token as JSON."),
) -> None:
    """A new token for a person (an admin, or the person themself); the old one stops working at once."""
    from tasks_lib.store.people import replace_token

    store = cli_store()
    person = _person(store, name)
    by = _admin(store, f"make a token for {name}", allow=name)
    made = replace_token(store, name, by)
    _show_token(person, made.token, as_json, "new token for")


@users_app.command("role")
def users_role(
    name: str = typer.Argument(..., help="Their name."),
    role: str = typer.Argument(..., help="admin | reviewer | requester"),
) -> None:
    """Give a person another role (an admin only; the last admin stays one). Their next decision is checked
    against it, one already sent included."""
    from tasks_lib.store.people import set_role

    if role not in ROLES:
        raise CliError(f"unknown role {role!r}; use admin, reviewer or requester")
    store = cli_store()
    _person(store, name)
    by = _admin(store, f"change the role of {name}")
    try:
        before = set_role(store, name, role, by)  # type: ignore[arg-type]
    except PeopleError as exc:
        raise CliError(str(exc)) from None
    out.print(f"{name} is {role} (was {before})" if before != role else f"{name} is already {role}: nothing changed")


@users_app.command("groups")
def users_groups(
    name: str = typer.Argument(..., help="Their name."),
    add: list[str] = typer.Option([], "--add", help="A group to put them in (repeatable)."),
    remove: list[str] = typer.Option([], "--remove", help="A group to take them out of (repeatable)."),
) -> None:
    """Put a person in groups or take them out (an admin only); with neither option, show their groups."""
    from tasks_lib.store.people import change_groups

    for g in (*add, *remove):
        _check(g, "group")
    both = sorted(set(add) & set(remove))
    if both:
        raise CliError(f"--add and --remove both name {', '.join(both)}: say one")
    store = cli_store()
    person = _person(store, name)
    if not add and not remove:
        out.print(f"{name}'s groups: {', '.join(person.groups) or 'none'}")
        return
    by = _admin(store, f"change the groups of {name}")
    try:
        groups = change_groups(store, name, add, remove, by)
    except PeopleError as exc:
        raise CliError(str(exc)) from None
    out.print(f"{name}'s groups: {', '.join(groups) or 'none'}")


def login(
    token: str | None = typer.Option(
        None, "--token", help="The token (default: read from stdin, or asked for without echo)."
    ),
) -> None:
    """Say who you are: check a token against the store and keep it in the home (mode 0600) for the CLI."""
    from tasks_lib.store.people import person_for_token, team_mode

    store = cli_store()
    if not team_mode(store):
        raise CliError("this store has no people (single-user mode): there is nobody to sign in as")
    if token is None:
        import getpass

        token = sys.stdin.readline() if not sys.stdin.isatty() else getpass.getpass("token: ")
    token = token.strip()
    person = person_for_token(store, token)
    if person is None:
        raise CliError("that token is not valid (replaced, or its person removed): ask an admin for a new one")
    path = token_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(token + "\n")
    out.print(f"signed in as {person.line()}; the token is kept in {path}")


def logout() -> None:
    """Forget the token `agent-tasks login` kept (AGENT_TASKS_TOKEN, if set, still counts)."""
    path = token_file()
    if path.exists():
        path.unlink()
        out.print(f"signed out: removed {path}")
    else:
        out.print("not signed in")
