"""People who start and decide on sessions: names, roles, groups, who may decide, and how a decider was known.

A store with no people is in single-user mode (everything is allowed, as on a laptop); once one person is added it
is in team mode, where a decision counts only from a known person who may make it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tasks_lib.errors import AgentTasksError

Role = Literal["admin", "reviewer", "requester"]
ROLES: tuple[Role, ...] = ("admin", "reviewer", "requester")
# How the person behind a decision was known: their token (CLI), their signed-in cookie or a trusted proxy's header
# (review pages), the local user (single-user mode), or nobody (a decision that came through the Prefect UI's
# resume form or straight through the Prefect API).
AuthMethod = Literal["token", "cookie", "proxy", "local", "prefect-form"]
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
NAME_RULE = "lowercase letters, digits, '-', '_' and '.', starting with a letter or digit, at most 64"


class PeopleError(AgentTasksError, ValueError):
    """A person or group name that is not valid or not known, or a decision someone may not make."""


def check_name(name: str, what: str = "name") -> str:
    """``name`` if it is a valid person or group name, else PeopleError saying the rule."""
    if not NAME.match(name):
        raise PeopleError(f"{what} {name!r} is not valid: use {NAME_RULE} characters")
    return name


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the closest known name, or the known names when none is close ('' if none)."""
    names = sorted(set(known))
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]}?)"
    if names:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        return f" (known: {shown})"
    return ""


class Person(BaseModel):
    """Someone who starts tasks (requester), decides on them (reviewer) or both and manages people (admin)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME.pattern, description="Their name: " + NAME_RULE + " characters.")
    role: Role = Field(default="reviewer", description="admin, reviewer or requester.")
    email: str | None = Field(default=None, description="Their email address, for links and notifications.")
    groups: list[str] = Field(default_factory=list, description="Groups they belong to, e.g. team-a.")
    created_at: datetime | None = None

    def line(self) -> str:
        """One line: name, role, email and groups."""
        extra = f" <{self.email}>" if self.email else ""
        groups = f" groups: {', '.join(self.groups)}" if self.groups else ""
        return f"{self.name} ({self.role}){extra}{groups}"


class Decider(BaseModel):
    """Who made a decision and how they were known; ``person`` is None when no person was known."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    person: str | None = None
    auth: AuthMethod = "prefect-form"

    def label(self) -> str:
        """``ada (token)``, ``local user (local)`` or ``nobody (prefect-form)``."""
        who = self.person or ("local user" if self.auth == "local" else "nobody")
        return f"{who} ({self.auth})"


def members(group_or_name: str, people: Iterable[Person]) -> list[str]:
    """The names a reviewer entry stands for: the person of that name, else everyone in that group."""
    everyone = list(people)
    if any(p.name == group_or_name for p in everyone):
        return [group_or_name]
    return sorted(p.name for p in everyone if group_or_name in p.groups)


def may_decide(person: Person, reviewer: str | None, people: Iterable[Person]) -> bool:
    """Whether ``person`` may decide on a session assigned to ``reviewer`` (a person, a group, or nobody).

    Admins decide on anything; the assigned person, or any member of the assigned group, on theirs; with no
    reviewer assigned, any reviewer. Requesters decide only on sessions assigned to them (or their group).
    """
    if person.role == "admin":
        return True
    if reviewer:
        return person.name in members(reviewer, people)
    return person.role == "reviewer"


def who_may(reviewer: str | None, people: Iterable[Person]) -> str:
    """Who may decide on a session assigned to ``reviewer``, in words (for a refusal)."""
    everyone = list(people)
    admins = sorted(p.name for p in everyone if p.role == "admin")
    admin_words = f"an admin ({', '.join(admins)})" if admins else "an admin"
    if not reviewer:
        return f"a reviewer or {admin_words}"
    names = members(reviewer, everyone)
    if names == [reviewer]:
        return f"its reviewer {reviewer} or {admin_words}"
    listed = f" ({', '.join(names)})" if names else " (no members)"
    return f"a member of its reviewer group {reviewer}{listed} or {admin_words}"


def refusal(
    person: Person,
    reviewer: str | None,
    people: Iterable[Person],
    session: str,
    *,
    decision: str = "accept",
    starter: str | None = None,
    independent: bool = False,
) -> str | None:
    """The one line refusing ``person``'s ``decision`` on ``session``, or None when they may make it.

    Under independent review (``independent``) the person who started the session (``starter``) may not accept
    it; requesting changes or rejecting stays theirs to do when they may decide at all.
    """
    everyone = list(people)
    if not may_decide(person, reviewer, everyone):
        return f"{person.name} may not decide on session {session[:8]}: only {who_may(reviewer, everyone)} may"
    if independent and decision == "accept" and starter is not None and person.name == starter:
        return independent_refusal(starter, reviewer, everyone)
    return None


def independent_refusal(starter: str, reviewer: str | None, people: Iterable[Person]) -> str:
    """The line refusing the starter's own accept: who else may accept it."""
    others = [p for p in people if p.name != starter]
    admins = sorted(p.name for p in others if p.role == "admin")
    admin_words = f"an admin ({', '.join(admins)})" if admins else "an admin"
    if not reviewer or reviewer == starter:
        reviewers = sorted(p.name for p in others if p.role == "reviewer")
        listed = f" ({', '.join(reviewers)})" if reviewers else ""
        who = f"another reviewer{listed} or {admin_words}"
    else:
        names = [n for n in members(reviewer, others) if n != starter]
        if names == [reviewer]:
            who = f"its reviewer {reviewer} or {admin_words}"
        else:
            listed = f" ({', '.join(names)})" if names else " (no one else)"
            who = f"someone else from {reviewer}{listed} or {admin_words}"
    return f"{starter} started this session and it needs an independent review: {who} must accept it"


def starter_of(started_by: str | None, trigger: dict | None, people: Iterable[Person]) -> str | None:
    """Who started a session: the person recorded (CLI), else the person a trigger's sender names (their name or
    email, ignoring case), else None."""
    if started_by:
        return started_by
    sender = str((trigger or {}).get("sender") or "").strip().lower()
    if not sender or sender == "none":
        return None
    for p in people:
        if p.name == sender or (p.email or "").lower() == sender:
            return p.name
    return None


# How a refused decision was tried, by how its sender was known: the CLI (a token), the review pages (a cookie or the
# trusted proxy), or the Prefect form or API (no person, or a grant nobody issued for that pause and decision).
Via = Literal["cli", "page", "prefect-form"]
VIA: dict[str, Via] = {"token": "cli", "cookie": "page", "proxy": "page"}
VIA_WORDS = {"cli": "the CLI", "page": "the review page", "prefect-form": "the Prefect form or API"}


def via_of(auth: str | None) -> Via:
    """How a decision whose sender was known by ``auth`` was sent (no person: the Prefect form or API)."""
    return VIA.get(auth or "", "prefect-form")


class AuditEvent(BaseModel):
    """One line of the audit trail: a session started, a decision on one, a decision refused, or a change to the
    people (added, removed, a new token, a new role, other groups)."""

    at: datetime
    kind: Literal["started", "decided", "refused", "people"]
    session_id: str | None = Field(default=None, description="The session (none for a change to the people).")
    person: str | None = Field(
        default=None, description="Who started, decided, tried (refused: None when unknown) or changed the people."
    )
    auth: str = Field(
        description="started: cli, trigger or local; decided, refused and people: how the person was known (token, "
        "cookie, proxy, local, prefect-form; none or unrecorded when nobody was)."
    )
    decision: str | None = Field(default=None, description="decided and refused: the decision (sent or tried).")
    commit: str | None = None
    detail: str = Field(
        default="", description="started: the trigger; decided: the outcome; refused: the reason; people: the change."
    )
    refused: bool = Field(default=False, description="True for a decision that was refused and not honoured.")
    via: Via | None = Field(default=None, description="refused: how it was tried: cli, page or prefect-form.")
    action: str | None = Field(default=None, description="people: add, remove, token, role or groups.")
    subject: str | None = Field(default=None, description="people: the person whose record changed.")

    def line(self) -> str:
        """One line: when, what, who and how, the session, and for decisions the commit and outcome (for a refusal,
        the reason; for a change to the people, whose and what)."""
        when = self.at.strftime("%Y-%m-%d %H:%M:%S")
        sid = (self.session_id or "")[:8]
        if self.kind == "started":
            detail = f": {self.detail}" if self.detail else ""
            if self.auth == "trigger":
                sender = f" (sent by {self.person})" if self.person else ""
                return f"{when}  started  {sid}  by trigger{sender}{detail}"
            return f"{when}  started  {sid}  by {self.person or 'local user'} ({self.auth}){detail}"
        if self.kind == "refused":
            how = VIA_WORDS.get(self.via or "", self.via)
            return f"{when}  refused {self.decision or 'decision'}  {sid}  by {self.person or 'unknown'} via {how}: {self.detail}"
        who = self.person or ("local user" if self.auth == "local" else "nobody")
        if self.kind == "people":
            change = f": {self.detail}" if self.detail else ""
            return f"{when}  {self.action}  {self.subject}{change}  by {who} ({self.auth})"
        commit = f"  commit {self.commit[:10]}" if self.commit else ""
        outcome = f"  → {self.detail}" if self.detail else ""
        return f"{when}  {self.decision}  {sid}  by {who} ({self.auth}){commit}{outcome}"
