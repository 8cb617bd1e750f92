"""The review gate: the typed input form, its description, the awaiting-review event, and the wait."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from prefect.input import RunInput
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from tasks_lib.domain.people import Decider

DECISIONS = ("accept", "request_changes", "reject", "retry")
FORM_DIFF_LINES = 300  # lines of the unified diff shown in the review form


def diff_block(patch: str, session_id: str, max_lines: int = FORM_DIFF_LINES) -> list[str]:
    """The unified diff as a ```diff block for the form, cut after ``max_lines`` with a line saying where the rest is."""
    lines = patch.splitlines()
    if not lines:
        return []
    fence = "````" if any(line.startswith("```") for line in lines[:max_lines]) else "```"
    block = [f"{fence}diff", *lines[:max_lines], fence]
    if len(lines) > max_lines:
        block.append(
            f"{len(lines) - max_lines} more lines: see the review page, the *agent-diff* artifact of this "
            f"run, or `agent-tasks show {session_id[:8]} --diff`."
        )
    return block


class LineComment(BaseModel):
    """A reviewer's comment on one line of a file in the change (the line number in the changed file)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, description="File path in the repository, as the diff shows it.")
    line: int = Field(ge=1, description="Line number in the changed file (1 is the first line).")
    body: str = Field(min_length=1, pattern=r"\S", description="What to change there.")

    def where(self) -> str:
        """``path:line``."""
        return f"{self.path}:{self.line}"


class ReviewInput(RunInput):
    """A reviewer's decision on a session, as the Prefect UI's resume form shows it."""

    model_config: ClassVar[ConfigDict] = ConfigDict(
        extra="forbid",
        json_schema_extra={
            # Enforced by the Prefect server when the run is resumed, so a bad form keeps the run paused.
            "if": {"properties": {"decision": {"const": "retry"}}, "required": ["decision"]},
            "then": {"properties": {"instructions": {"minLength": 1, "pattern": r"\S"}}, "required": ["instructions"]},
        },
    )

    decision: Literal["accept", "request_changes", "reject", "retry"] = Field(
        description="accept: commit and deliver; request_changes: the agent continues with your feedback; "
        "reject: discard everything; retry: start again from the base with updated instructions."
    )
    feedback: str = Field(default="", description="What to change (request_changes), or notes for a retry.")
    instructions: str = Field(default="", description="Updated instructions (required for retry).")
    comments: list[LineComment] = Field(
        default_factory=list,
        description="Comments on lines of the change, sent to the agent together with request_changes.",
    )
    candidate: int | None = Field(
        default=None,
        ge=1,
        description="Best-of-N: the attempt to accept (default: the one ranked first).",
    )
    grant: str = Field(
        default="",
        max_length=64,
        description="Set by `agent-tasks review` for the person it checked; leave empty here.",
    )
    # Who decided, as the review gate found it from the grant (never from the input itself).
    _decider: Decider | None = PrivateAttr(default=None)

    @property
    def decider(self) -> Decider:
        """Who made this decision and how they were known (nobody, through the form, until the gate checks)."""
        return self._decider or Decider(auth="prefect-form")

    @decider.setter
    def decider(self, value: Decider) -> None:
        self._decider = value

    @model_validator(mode="after")
    def _retry_needs_instructions(self) -> ReviewInput:
        if self.decision == "retry" and not self.instructions.strip():
            raise ValueError("retry needs updated instructions")
        if self.candidate is not None and self.decision != "accept":
            raise ValueError("a candidate is chosen only with accept")
        return self


def review_payload(
    decision: str,
    feedback: str = "",
    instructions: str = "",
    comments: list[LineComment] | None = None,
    candidate: int | None = None,
    grant: str = "",
) -> dict[str, Any]:
    """The run_input body that resumes a paused session with a decision (validated here first)."""
    payload: dict[str, Any] = {
        "decision": decision.replace("-", "_"),
        "feedback": feedback,
        "instructions": instructions,
        "comments": [c.model_dump() for c in comments or []],
        "candidate": candidate,
    }
    if grant:
        payload["grant"] = grant
    ReviewInput.model_validate(payload)
    return payload


def review_description(
    session_id: str,
    iteration: int,
    summary_markdown: str,
    diffstat: str,
    files: list[dict[str, Any]],
    reviewer: str | None,
    work_branch: str,
    increment: str | None = None,
    check: str | None = None,
    notice: str | None = None,
    rounds_left: int | None = None,
    started_by: str | None = None,
    patch: str = "",
    candidates: list[str] | None = None,
    review_page: str | None = None,
) -> str:
    """The markdown shown above the resume form: who and what, the summary, the diff itself (capped), the
    best-of-N candidates ranked, and where the review page is."""
    lines = [f"## Review session `{session_id[:8]}` — iteration {iteration}", ""]
    if notice:
        lines += [f"> **{notice}**", ""]
    if started_by:
        lines += [f"**Started by:** {started_by}", ""]
    lines.append(f"**Reviewer:** {reviewer or 'anyone'} · **Work branch:** `{work_branch}`")
    lines.append(f"**Diff:** {diffstat}" + (f" · **since last review:** {increment}" if increment else ""))
    if check:
        lines.append(f"**Check:** {check}")
    lines.append("")
    for f in files[:30]:
        lines.append(f"- `{f['path']}` {f['kind']} +{f['added']} −{f['removed']}")
    if len(files) > 30:
        lines.append(f"- … {len(files) - 30} more files")
    lines += ["", summary_markdown.strip(), ""]
    if candidates:
        lines += [
            "### Attempts, ranked",
            "",
            *(f"{n}. {line}" for n, line in enumerate(candidates, 1)),
            "",
            "The first is in the workspace and shown below; to accept another, give its attempt number as *candidate*.",
            "",
        ]
    if patch:
        lines += ["### The change", "", *diff_block(patch, session_id), ""]
    if review_page:
        lines.append(f"**[Open the review page]({review_page})**: the diff side by side, line comments, every step.")
    lines.append(
        f"Full diff: the *agent-diff* artifact of this run, or `agent-tasks show {session_id[:8]} --diff` "
        f"(side by side: `--side-by-side`, as a page: `--html review.html`)."
    )
    if rounds_left is not None:
        lines.append(f"Change requests left: {rounds_left}.")
    lines.append(
        "Decide: **accept**, **request_changes** (with feedback), **reject**, or **retry** (with instructions)."
    )
    return "\n".join(lines)


def emit_awaiting_review(session_id: str, repository: str, reviewer: str | None, iteration: int, diffstat: str) -> None:
    """Tell automations a session waits for review (event agent-tasks.session.awaiting-review, see tasks_lib/session/events.py).

    The event is built from the store (the other arguments are kept for callers); it carries the summary line,
    the diffstat and the links to the review page and the Prefect run, like every session event.
    """
    from tasks_lib.domain.session import SessionStatus
    from tasks_lib.session.events import emit_quietly

    emit_quietly(session_id, SessionStatus.awaiting_review)
