"""People, their tokens and roles, decision grants, refused decisions and failed sign-ins: plain functions over a
Store (the audit trail that reads them all is ``queries.audit_events``).

A store with no people is in single-user mode; see tasks_lib/domain/people.py for what a person may do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tasks_lib.domain.people import Decider, PeopleError, Person, Role, check_name, did_you_mean, starter_of, via_of
from tasks_lib.domain.request import needs_independent_review
from tasks_lib.security.tokens import NewToken, new_grant_id, new_token, secret_matches, split_token
from tasks_lib.store.store import Store
from tasks_lib.store.tables import AuditRow, GrantRow, PersonRow, SigninFailureRow, utcnow

GRANT_FRESH_S = 15 * 60  # a grant must reach its paused run within this time


def _person(row: PersonRow) -> Person:
    created = _aware(row.created_at) if row.created_at else None
    return Person(name=row.name, role=row.role, email=row.email, groups=row.groups or [], created_at=created)


def list_people(store: Store) -> list[Person]:
    """Everyone, by name."""
    with store.transaction() as db:
        return [_person(r) for r in db.scalars(select(PersonRow).order_by(PersonRow.name)).all()]


def team_mode(store: Store) -> bool:
    """Whether the store has people (team mode); False means single-user mode, where everything is allowed."""
    with store.transaction() as db:
        return db.scalar(select(PersonRow.name).limit(1)) is not None


def groups_of(people: list[Person]) -> set[str]:
    """Every group anyone belongs to."""
    return {g for p in people for g in p.groups}


def find_person(store: Store, name: str) -> Person:
    """The person called ``name``; PeopleError with a "did you mean" when there is none."""
    with store.transaction() as db:
        row = db.get(PersonRow, name)
        if row is not None:
            return _person(row)
    raise PeopleError(f"no person {name!r}" + did_you_mean(name, [p.name for p in list_people(store)]))


def _changed(db: Session, by: Decider | None, action: str, subject: str, detail: str = "") -> None:
    """Record in the audit that ``by`` (None: the local user) made a change to the people."""
    by = by or Decider(auth="local")
    db.add(AuditRow(kind="people", person=by.person, auth=by.auth, action=action, subject=subject, detail=detail))


def add_person(store: Store, person: Person, by: Decider | None = None) -> NewToken:
    """Add ``person`` with a new token (returned: shown once, only its hash is kept), recorded in the audit as
    ``by``'s change; PeopleError if the name is taken."""
    for group in person.groups:
        check_name(group, "group")
    made = new_token()
    groups = f", groups {', '.join(sorted(set(person.groups)))}" if person.groups else ""
    try:
        with store.transaction() as db:
            _changed(db, by, "add", person.name, f"{person.role}{groups}")
            db.add(
                PersonRow(
                    name=person.name,
                    role=person.role,
                    email=person.email,
                    groups=sorted(set(person.groups)) or None,
                    token_id=made.token_id,
                    token_hash=made.token_hash,
                )
            )
    except IntegrityError:
        raise PeopleError(f"there is already a person called {person.name!r}") from None
    return made


def remove_person(store: Store, name: str, by: Decider | None = None) -> None:
    """Remove a person (their token stops working; decisions they made keep their name), recorded in the audit."""
    find_person(store, name)
    with store.transaction() as db:
        db.execute(delete(PersonRow).where(PersonRow.name == name))
        _changed(db, by, "remove", name)


def replace_token(store: Store, name: str, by: Decider | None = None) -> NewToken:
    """A new token for ``name``; the old one stops working at once (recorded in the audit)."""
    find_person(store, name)
    made = new_token()
    with store.transaction() as db:
        _changed(db, by, "token", name, "a new token; the old one stopped working")
        db.execute(
            update(PersonRow).where(PersonRow.name == name).values(token_id=made.token_id, token_hash=made.token_hash)
        )
    return made


def set_role(store: Store, name: str, role: Role, by: Decider | None = None) -> Role:
    """Give ``name`` the role ``role`` (recorded in the audit when it changes); the role they had. PeopleError when
    there is no such person, or they are the last admin and ``role`` is not admin."""
    find_person(store, name)
    with store.transaction() as db:
        admins = db.scalars(select(PersonRow.name).where(PersonRow.role == "admin").with_for_update()).all()
        row = db.get(PersonRow, name)
        before: Role = row.role  # type: ignore[assignment]
        if before == "admin" and role != "admin" and list(admins) == [name]:
            raise PeopleError(
                f"{name} is the last admin, so stays one: make another person admin first "
                "(agent-tasks users role NAME admin)"
            )
        if before != role:
            row.role = role
            _changed(db, by, "role", name, f"{before} → {role}")
    return before


def change_groups(
    store: Store, name: str, add: Iterable[str] = (), remove: Iterable[str] = (), by: Decider | None = None
) -> list[str]:
    """Put ``name`` in the groups ``add`` and take them out of ``remove`` (recorded in the audit when that changes
    anything); their groups now. PeopleError for an unknown person, an invalid group name, or a group to leave
    they are not in."""
    find_person(store, name)
    joining, leaving = {check_name(g, "group") for g in add}, {check_name(g, "group") for g in remove}
    with store.transaction() as db:
        row = db.get(PersonRow, name)
        before = set(row.groups or [])
        missing = sorted(leaving - before)
        if missing:
            have = ", ".join(sorted(before)) or "none"
            raise PeopleError(f"{name} is not in {', '.join(missing)} (their groups: {have})")
        after = (before | joining) - leaving
        if after != before:
            row.groups = sorted(after) or None
            words = [f"+{g}" for g in sorted(after - before)] + [f"-{g}" for g in sorted(before - after)]
            _changed(db, by, "groups", name, " ".join(words))
    return sorted(after)


def person_for_token(store: Store, token: str) -> Person | None:
    """The person this token belongs to, or None (malformed, replaced, or its person removed)."""
    parts = split_token(token)
    if parts is None:
        return None
    token_id, secret = parts
    with store.transaction() as db:
        row = db.scalar(select(PersonRow).where(PersonRow.token_id == token_id))
        if row is None or not row.token_hash or not secret_matches(secret, row.token_hash):
            return None
        return _person(row)


def person_signed_in(store: Store, name: str, token_id: str) -> tuple[Person, str] | None:
    """The person ``name`` and their token id while ``token_id`` is still their token (a sign-in cookie's check);
    None once their token was replaced or they were removed."""
    with store.transaction() as db:
        row = db.get(PersonRow, name)
        if row is None or not row.token_id or row.token_id != token_id:
            return None
        return _person(row), row.token_id


def token_id_for(store: Store, token: str) -> tuple[Person, str] | None:
    """The person a token belongs to and its id (for a sign-in cookie), or None."""
    person = person_for_token(store, token)
    parts = split_token(token)
    return (person, parts[0]) if person is not None and parts is not None else None


def person_by_name_or_email(store: Store, value: str) -> Person | None:
    """The person whose name is ``value``, else whose email is (ignoring case); None when nobody matches."""
    wanted = value.strip().lower()
    for person in list_people(store):
        if person.name == wanted or (person.email or "").lower() == wanted:
            return person
    return None


def session_starter(store: Store, session_id: str, people: list[Person] | None = None) -> tuple[str | None, bool]:
    """Who started the session (the CLI's person, else the person its trigger's sender names) and whether it
    needs an independent review (its request's independent_review, default true when an event started it)."""
    row = store.get_session(session_id)
    request = row.request or {}
    everyone = people if people is not None else list_people(store)
    return starter_of(row.started_by, request.get("trigger"), everyone), needs_independent_review(request)


def check_reviewer(store: Store, name: str | None) -> None:
    """Refuse (PeopleError, one line with a "did you mean") a reviewer that is neither a person nor a group.

    In single-user mode (no people) any text is taken, as before.
    """
    if not name or not team_mode(store):
        return
    people = list_people(store)
    known = {p.name for p in people} | groups_of(people)
    if name not in known:
        raise PeopleError(f"reviewer {name!r} is neither a person nor a group" + did_you_mean(name, known))


def set_started_by(store: Store, session_id: str, person: str) -> None:
    """Record who started a session from the CLI (shown by `agent-tasks audit`)."""
    store.update_session(session_id, started_by=person)


def issue_grant(store: Store, session_id: str, review_key: str, decision: str, decider: Decider) -> str:
    """Record that ``decider`` (already checked) sends ``decision`` to the pause ``review_key``; the grant's id."""
    grant_id = new_grant_id()
    with store.transaction() as db:
        db.add(
            GrantRow(
                id=grant_id,
                session_id=session_id,
                review_key=review_key,
                decision=decision,
                person=decider.person,
                auth=decider.auth,
            )
        )
    return grant_id


def take_grant(store: Store, grant_id: str, session_id: str, review_key: str, decision: str) -> Decider | None:
    """Who sent this decision, if ``grant_id`` was issued for exactly this session, pause and decision; else None.

    A grant is first used within GRANT_FRESH_S of being issued; after that only for the same pause (a run
    restarted while acting on the decision reads the same input again).
    """
    if not grant_id:
        return None
    with store.transaction() as db:
        row = db.get(GrantRow, grant_id)
        if row is None or (row.session_id, row.review_key, row.decision) != (session_id, review_key, decision):
            return None
        if row.used_at is None:
            made = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=timezone.utc)
            if utcnow() - made > timedelta(seconds=GRANT_FRESH_S):
                return None
            row.used_at = utcnow()
        return Decider(person=row.person, auth=row.auth)  # type: ignore[arg-type]


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def record_refusal(
    store: Store,
    session_id: str,
    decision: str | None,
    reason: str,
    decider: Decider | None = None,
    via: str | None = None,
) -> None:
    """Record in the audit that a decision on ``session_id`` was refused: who tried (``decider``; None: unknown),
    through what (``via``, else as ``decider`` was known: the CLI, the page, or the Prefect form or API) and why."""
    with store.transaction() as db:
        db.add(
            AuditRow(
                kind="refused",
                session_id=session_id,
                person=decider.person if decider else None,
                auth=decider.auth if decider and decider.person else None,
                via=via or via_of(decider.auth if decider else None),
                action=(decision or "")[:32],
                detail=reason.removeprefix("refused: ")[:2000],
            )
        )


def refusals(store: Store, session_id: str) -> list[AuditRow]:
    """The decisions on a session that were refused, oldest first."""
    query = select(AuditRow).where(AuditRow.kind == "refused", AuditRow.session_id == session_id)
    with store.transaction() as db:
        return list(db.scalars(query.order_by(AuditRow.id)).all())


def signin_keys(store: Store, address: str, token: str) -> list[str]:
    """What a sign-in with ``token`` from ``address`` counts against: the address, and the person whose token id
    the token carries (found without checking its secret), if anyone's."""
    keys = [f"address:{address}"[:200]]
    parts = split_token(token)
    if parts is not None:
        with store.transaction() as db:
            name = db.scalar(select(PersonRow.name).where(PersonRow.token_id == parts[0]))
        if name:
            keys.append(f"person:{name}")
    return keys


def signin_wait(store: Store, keys: list[str], limit: int, window_s: float, now: datetime | None = None) -> int | None:
    """Seconds until a sign-in under ``keys`` is taken again, when any of them had ``limit`` failures within the
    last ``window_s``: the cool-down ends as the oldest of those leaves the window. None: go ahead."""
    now = now or utcnow()
    window = timedelta(seconds=window_s)
    wait = 0.0
    with store.transaction() as db:
        for key in keys:
            query = select(SigninFailureRow.at).where(SigninFailureRow.key == key, SigninFailureRow.at > now - window)
            times = db.scalars(query.order_by(SigninFailureRow.at.desc()).limit(limit)).all()
            if len(times) >= limit:
                wait = max(wait, (_aware(times[-1]) + window - now).total_seconds())
    return max(1, math.ceil(wait)) if wait > 0 else None


def note_signin_failure(store: Store, keys: list[str], window_s: float, now: datetime | None = None) -> None:
    """Count a failed sign-in against ``keys`` (and forget the failures that left the window)."""
    now = now or utcnow()
    with store.transaction() as db:
        db.execute(delete(SigninFailureRow).where(SigninFailureRow.at <= now - timedelta(seconds=window_s)))
        db.add_all([SigninFailureRow(key=key, at=now) for key in keys])


def forget_signin_failures(store: Store, keys: list[str]) -> None:
    """Forget the failed sign-ins counted against ``keys`` (a person who just signed in)."""
    if keys:
        with store.transaction() as db:
            db.execute(delete(SigninFailureRow).where(SigninFailureRow.key.in_(keys)))
