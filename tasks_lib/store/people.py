"""People, their tokens, decision grants and the audit trail: plain functions over a Store.

A store with no people is in single-user mode; see tasks_lib/domain/people.py for what a person may do.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from tasks_lib.domain.people import (
    AuditEvent,
    Decider,
    PeopleError,
    Person,
    check_name,
    did_you_mean,
    starter_of,
)
from tasks_lib.domain.request import needs_independent_review, trigger_line
from tasks_lib.security.tokens import NewToken, new_grant_id, new_token, secret_matches, split_token
from tasks_lib.store.store import Store
from tasks_lib.store.tables import GrantRow, PersonRow, ReviewRow, SessionRow, utcnow

GRANT_FRESH_S = 15 * 60  # a grant must reach its paused run within this time


def _person(row: PersonRow) -> Person:
    created = _aware(row.created_at) if row.created_at else None
    return Person(name=row.name, role=row.role, email=row.email, groups=row.groups or [], created_at=created)


def list_people(store: Store) -> list[Person]:
    """Everyone, by name."""
    with store._db() as db:
        return [_person(r) for r in db.scalars(select(PersonRow).order_by(PersonRow.name)).all()]


def team_mode(store: Store) -> bool:
    """Whether the store has people (team mode); False means single-user mode, where everything is allowed."""
    with store._db() as db:
        return db.scalar(select(PersonRow.name).limit(1)) is not None


def groups_of(people: list[Person]) -> set[str]:
    """Every group anyone belongs to."""
    return {g for p in people for g in p.groups}


def find_person(store: Store, name: str) -> Person:
    """The person called ``name``; PeopleError with a "did you mean" when there is none."""
    with store._db() as db:
        row = db.get(PersonRow, name)
        if row is not None:
            return _person(row)
    raise PeopleError(f"no person {name!r}" + did_you_mean(name, [p.name for p in list_people(store)]))


def add_person(store: Store, person: Person) -> NewToken:
    """Add ``person`` with a new token (returned: shown once, only its hash is kept); PeopleError if the name is
    taken."""
    for group in person.groups:
        check_name(group, "group")
    made = new_token()
    try:
        with store._db() as db:
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


def remove_person(store: Store, name: str) -> None:
    """Remove a person (their token stops working; decisions they made keep their name)."""
    find_person(store, name)
    with store._db() as db:
        db.execute(delete(PersonRow).where(PersonRow.name == name))


def replace_token(store: Store, name: str) -> NewToken:
    """A new token for ``name``; the old one stops working at once."""
    find_person(store, name)
    made = new_token()
    with store._db() as db:
        db.execute(
            update(PersonRow).where(PersonRow.name == name).values(token_id=made.token_id, token_hash=made.token_hash)
        )
    return made


def person_for_token(store: Store, token: str) -> Person | None:
    """The person this token belongs to, or None (malformed, replaced, or its person removed)."""
    parts = split_token(token)
    if parts is None:
        return None
    token_id, secret = parts
    with store._db() as db:
        row = db.scalar(select(PersonRow).where(PersonRow.token_id == token_id))
        if row is None or not row.token_hash or not secret_matches(secret, row.token_hash):
            return None
        return _person(row)


def person_signed_in(store: Store, name: str, token_id: str) -> tuple[Person, str] | None:
    """The person ``name`` and their token id while ``token_id`` is still their token (a sign-in cookie's check);
    None once their token was replaced or they were removed."""
    with store._db() as db:
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
    with store._db() as db:
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
    with store._db() as db:
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


def audit_events(store: Store, since: datetime | None = None) -> list[AuditEvent]:
    """Sessions started (by whom) and decisions (who, how known, what, the commit), oldest first."""
    started = select(
        SessionRow.id, SessionRow.created_at, SessionRow.started_by, SessionRow.request, SessionRow.workflow
    )
    decided = select(ReviewRow).order_by(ReviewRow.id)
    if since is not None:
        started = started.where(SessionRow.created_at >= since)
        decided = decided.where(ReviewRow.decided_at >= since)
    events: list[AuditEvent] = []
    people = list_people(store)
    with store._db() as db:
        for sid, created, by, request, workflow in db.execute(started).all():
            trigger = (request or {}).get("trigger")
            how = "cli" if by else "trigger" if trigger else "local"
            events.append(
                AuditEvent(
                    at=_aware(created),
                    kind="started",
                    session_id=sid,
                    person=starter_of(by, trigger, people),  # for a trigger: the sender, when they are a person
                    auth=how,
                    detail=trigger_line(trigger) if trigger else (f"workflow {workflow}" if workflow else ""),
                )
            )
        for r in db.scalars(decided).all():
            events.append(
                AuditEvent(
                    at=_aware(r.decided_at),
                    kind="decided",
                    session_id=r.session_id,
                    person=r.decided_by,
                    auth=r.auth or "unrecorded",
                    decision=r.decision,
                    commit=r.commit,
                    detail=r.outcome,
                )
            )
    return sorted(events, key=lambda e: e.at)
