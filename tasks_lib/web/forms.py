"""What the review pages take in: the inbox's filters (query string) and a decision (posted form), validated."""

from __future__ import annotations

import json
from typing import Literal
from urllib.parse import parse_qs, urlencode

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tasks_lib.domain.session import SessionStatus
from tasks_lib.domain.words import plain
from tasks_lib.errors import AgentTasksError
from tasks_lib.review.form import LineComment

PAGE_SIZE = 50
MAX_FORM_BYTES = 1_000_000


class FormError(AgentTasksError, ValueError):
    """Input that cannot be used; the message says why, for the page."""


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "__root__")
    return f"{where}: {plain(error['msg'])}" if where else plain(error["msg"])


class InboxQuery(BaseModel):
    """The inbox's filters and page, from its query string (empty filters match everything)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    status: str = Field(default="", max_length=32)
    reviewer: str = Field(default="", max_length=200)
    repository: str = Field(default="", max_length=1000)
    workflow: str = Field(default="", max_length=200)
    page: int = Field(default=1, ge=1, le=1_000_000)

    @field_validator("status")
    @classmethod
    def _known_status(cls, value: str) -> str:
        if value and value not in {s.value for s in SessionStatus}:
            raise ValueError(f"unknown status {value!r}")
        return value

    @classmethod
    def parse(cls, params: dict[str, str]) -> InboxQuery:
        """The filters from query parameters; FormError when one cannot be used."""
        try:
            return cls.model_validate(params)
        except ValidationError as exc:
            raise FormError(_first_error(exc)) from None

    @property
    def offset(self) -> int:
        """Sessions skipped before this page."""
        return (self.page - 1) * PAGE_SIZE

    def href(self, **changes: str | int) -> str:
        """The inbox address with these filters, changed by ``changes`` (empty values left out)."""
        values = {**self.model_dump(), **changes}
        if values.get("page") == 1:
            values.pop("page")
        query = urlencode({k: v for k, v in values.items() if v not in ("", None)})
        return "/sessions" + (f"?{query}" if query else "")


class DecisionForm(BaseModel):
    """A reviewer's decision as the session page posts it: the decision, its texts, line comments, the token."""

    model_config = ConfigDict(extra="ignore")

    decision: Literal["accept", "request_changes", "reject", "retry"]
    feedback: str = Field(default="", max_length=100_000)
    instructions: str = Field(default="", max_length=100_000)
    comments: list[LineComment] = Field(default_factory=list, max_length=500)
    candidate: int | None = Field(default=None, ge=1, description="Best-of-N: the attempt to accept.")
    csrf: str = Field(default="", max_length=200)

    @classmethod
    def parse(cls, body: bytes) -> DecisionForm:
        """The form from an ``application/x-www-form-urlencoded`` body (``comments`` is a JSON list of
        ``{path, line, body}``); FormError says what is wrong."""
        if len(body) > MAX_FORM_BYTES:
            raise FormError("the form is too large")
        fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True).items()}
        if not fields.get("candidate", "").strip():
            fields.pop("candidate", None)
        try:
            fields["comments"] = json.loads(fields.get("comments") or "[]")
        except json.JSONDecodeError:
            raise FormError("comments: not a JSON list") from None
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise FormError(_first_error(exc)) from None

    def comments_json(self) -> str:
        """The line comments as the form's hidden field carries them."""
        return json.dumps([c.model_dump() for c in self.comments])


def raw_token(body: bytes) -> str:
    """The CSRF token of a posted form, read before anything else is parsed."""
    values = parse_qs(body[:MAX_FORM_BYTES].decode("utf-8", errors="replace")).get("csrf") or [""]
    return values[0]
