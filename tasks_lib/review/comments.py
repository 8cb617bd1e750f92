"""Line comments of a review: read from the command line, checked against the change, shown to the agent."""

from __future__ import annotations

import difflib
from pathlib import Path

from tasks_lib.errors import AgentTasksError
from tasks_lib.review.form import LineComment

CONTEXT_LINES = 2  # lines shown above and below a commented line
MAX_CONTEXT_FILE = 1_000_000  # bytes; larger files are named, not quoted


class CommentError(AgentTasksError, ValueError):
    """A line comment that cannot be used; the message says why and how to write it."""


def parse_comment(text: str) -> LineComment:
    """A comment written as ``path:line=text`` (as ``--comment`` takes it)."""
    where, sep, body = text.partition("=")
    path, colon, line = where.strip().rpartition(":")
    if not sep or not colon or not path or not line.strip().isdigit() or int(line) < 1:
        raise CommentError(f'--comment {text!r}: write it as FILE:LINE=TEXT, for example calc.py:2="use +"')
    if not body.strip():
        raise CommentError(f"--comment {text!r}: the comment after '=' is empty")
    return LineComment(path=path, line=int(line), body=body.strip())


def comment_problems(comments: list[LineComment], changed_files: list[str]) -> list[str]:
    """Why each comment that names a file outside the change cannot be placed (empty when all can)."""
    problems = []
    for comment in comments:
        if comment.path in changed_files:
            continue
        close = difflib.get_close_matches(comment.path, changed_files, n=1)
        hint = f"did you mean {close[0]}?" if close else f"the changed files: {', '.join(changed_files[:10]) or 'none'}"
        problems.append(f"{comment.where()}: {comment.path} is not part of this change ({hint})")
    return problems


def excerpt(workspace: Path, comment: LineComment, radius: int = CONTEXT_LINES) -> str:
    """The commented line with ``radius`` lines around it, numbered, the line itself marked with '>'."""
    path = (workspace / comment.path).resolve()
    if not path.is_relative_to(workspace.resolve()) or not path.is_file():
        return f"({comment.path} does not exist in the workspace now)"
    if path.stat().st_size > MAX_CONTEXT_FILE:
        return f"({comment.path} is too large to quote)"
    lines = path.read_text(errors="replace").splitlines()
    if comment.line > len(lines):
        return f"(line {comment.line} is past the end of {comment.path}, which has {len(lines)} lines)"
    first, last = max(1, comment.line - radius), min(len(lines), comment.line + radius)
    width = len(str(last))
    return "\n".join(
        f"{'>' if n == comment.line else ' '} {n:>{width}} | {lines[n - 1]}" for n in range(first, last + 1)
    )


def comments_for_agent(comments: list[LineComment], workspace: Path) -> str:
    """The comments as the agent reads them: file and line, the reviewer's words, and the code around it."""
    parts = [f"The reviewer commented on {len(comments)} line{'s' if len(comments) != 1 else ''}:"]
    for comment in comments:
        parts.append(f"\n{comment.where()}: {comment.body}\n```\n{excerpt(workspace, comment)}\n```")
    return "\n".join(parts)


def change_request(feedback: str, comments: list[LineComment], workspace: Path) -> str:
    """The message that hands a change request to the agent: the feedback, then each line comment in place."""
    parts = ["The reviewer asked for changes:"]
    if feedback.strip() or not comments:
        parts.append(feedback.strip() or "(no details given)")
    if comments:
        parts.append(comments_for_agent(comments, workspace))
    parts.append("Address this feedback in the same workspace, then call finish with a summary.")
    return "\n\n".join(parts)
