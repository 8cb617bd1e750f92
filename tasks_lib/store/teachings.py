"""What reviewers teach: the feedback kept on review decisions, per repository and agent, newest first.

Every decision is already a row of the store (``ReviewRow``: its feedback and line comments, who decided and when);
a change request, a rejection or a retry that came with words is feedback an agent could learn from. This module
reads it across sessions, with the repository and agent of each session, for `agent-tasks rules` and the review
page's *Propose rules from feedback*. Plain functions over a Store, like ``queries``.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from tasks_lib.store.store import Store
from tasks_lib.store.tables import ReviewRow, SessionRow

# Decisions whose feedback teaches: the reviewer wanted something else (a retry's notes are feedback too).
TEACHING_DECISIONS = ("request_changes", "reject", "retry")
REMOTE = re.compile(r"^[a-z][a-z0-9+.-]*://|^[\w.-]+@[\w.-]+:", re.IGNORECASE)  # a URL or scp-like user@host:path


class KeptFeedback(BaseModel):
    """One review decision with feedback: what the reviewer said (and the lines they commented on), where, on
    which agent's work, by whom and when."""

    session_id: str
    repository: str = Field(description="The repository as the session's request named it.")
    agent: str = Field(description="The agent the session ran (its name as resolved when the session started).")
    agent_source: str | None = Field(
        default=None,
        description="Where that agent came from: 'repository:<path>', 'built-in:<name>' or a file on the worker.",
    )
    iteration: int
    decision: str
    feedback: str = ""
    comments: list[dict[str, Any]] = Field(default_factory=list, description="Line comments: path, line, body.")
    decided_by: str | None = Field(default=None, description="The person, when one was known.")
    auth: str | None = None
    decided_at: datetime

    def who(self) -> str:
        """Who decided, in words: the person, else the local user or the Prefect form."""
        if self.decided_by:
            return self.decided_by
        return "the local user" if self.auth == "local" else "a reviewer"

    def decision_words(self) -> str:
        """``request changes``, ``reject`` or ``retry``."""
        return self.decision.replace("_", " ")

    @property
    def repository_key(self) -> str:
        """The repository as compared across sessions (see `repository_key`)."""
        return repository_key(self.repository)


def repository_key(address: str) -> str:
    """A repository address as it is compared: a local path (or file:// URL) made absolute with its links resolved,
    a remote URL without its credentials, a trailing slash or ``.git`` (``https://host/acme/app.git`` and
    ``https://user:token@host/acme/app/`` are one repository). A relative path is taken from the current directory,
    as `agent-tasks` itself takes it."""
    text = address.strip()
    if text.lower().startswith("file://"):
        text = text[len("file://") :]
    elif REMOTE.match(text):
        if "://" in text:
            parts = urlsplit(text)
            host = parts.hostname or ""
            netloc = host.lower() + (f":{parts.port}" if parts.port else "")
            text = urlunsplit((parts.scheme.lower(), netloc, parts.path, "", ""))
        else:  # user@host:path: the user is part of how it is reached, not of what it is
            text = text.split("@", 1)[1]
        return text.rstrip("/").removesuffix(".git").rstrip("/")
    if not text:
        return ""
    return os.path.realpath(os.path.expanduser(text))


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def kept_feedback(
    store: Store, repository: str | None = None, agent: str | None = None, limit: int | None = None
) -> list[KeptFeedback]:
    """The feedback reviewers gave — change requests, rejections and retries with words or line comments — newest
    first; only on ``repository`` (any address of it, see `repository_key`) and ``agent`` (its name, any case) when
    given, at most ``limit`` of them."""
    query = (
        select(
            ReviewRow,
            SessionRow.repository,
            SessionRow.agent,
            SessionRow.agent_spec["source"].as_string(),
        )
        .join(SessionRow, SessionRow.id == ReviewRow.session_id)
        .where(ReviewRow.decision.in_(TEACHING_DECISIONS))
        .order_by(ReviewRow.decided_at.desc(), ReviewRow.id.desc())
    )
    if agent:
        query = query.where(func.lower(SessionRow.agent) == agent.strip().lower())
    wanted = repository_key(repository) if repository else None
    found: list[KeptFeedback] = []
    keys: dict[str, str] = {}  # address → key: a local path's key asks the file system
    with store.transaction() as db:
        rows = db.execute(query).all()
    for review, address, agent_name, source in rows:
        comments = [c for c in review.comments or [] if isinstance(c, dict) and str(c.get("body") or "").strip()]
        if not (review.feedback or "").strip() and not comments:
            continue
        if wanted is not None:
            if address not in keys:
                keys[address] = repository_key(address)
            if keys[address] != wanted:
                continue
        found.append(
            KeptFeedback(
                session_id=review.session_id,
                repository=address,
                agent=agent_name,
                agent_source=source,
                iteration=review.iteration,
                decision=review.decision,
                feedback=(review.feedback or "").strip(),
                comments=comments,
                decided_by=review.decided_by,
                auth=review.auth,
                decided_at=_aware(review.decided_at),
            )
        )
        if limit is not None and len(found) >= limit:
            break
    return found


def repositories_with_feedback(store: Store) -> list[str]:
    """The repositories that have feedback kept, by their key, the one with the newest feedback first."""
    return list(dict.fromkeys(item.repository_key for item in kept_feedback(store)))
