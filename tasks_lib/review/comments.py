"""Line comments of a review: read from the command line, checked against the change, shown to the agent."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING

from tasks_lib.errors import AgentTasksError
from tasks_lib.review.form import LineComment
from tasks_lib.review.render import file_head, file_view, patch_chunks

if TYPE_CHECKING:
    from tasks_lib.store import Store

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


def comment_problems(
    comments: list[LineComment], changed_files: list[str], patch: bytes | str | None = None
) -> list[str]:
    """Why each comment cannot be placed (empty when all can): a file outside the change, or — given the
    change's ``patch`` — a line its diff view does not show (see `commentable_lines`)."""
    problems = []
    for comment in comments:
        if comment.path in changed_files:
            continue
        close = difflib.get_close_matches(comment.path, changed_files, n=1)
        hint = f"did you mean {close[0]}?" if close else f"the changed files: {', '.join(changed_files[:10]) or 'none'}"
        problems.append(f"{comment.where()}: {comment.path} is not part of this change ({hint})")
    if patch is not None:
        shown = commentable_lines(patch, {c.path for c in comments})
        for comment in comments:
            lines = shown.get(comment.path)
            if lines is not None and comment.line not in lines:
                problems.append(f"line {comment.line} is not in {comment.path}'s diff (it shows {line_ranges(lines)})")
    return problems


def commentable_lines(patch: bytes | str, paths: set[str]) -> dict[str, set[int]]:
    """The lines a comment on each of ``paths`` can name, as the review page shows the file's diff: the new
    side's numbers (context and added lines), or the old side's for a deleted file. A path the patch does not
    hold (a file shown as stats only) is left out: its lines cannot be checked."""
    found: dict[str, set[int]] = {}
    for chunk in patch_chunks(patch):
        head = file_head(chunk)
        if head is None or head.target not in paths or head.target in found:
            continue
        view = file_view(chunk)
        if view is None:
            continue
        old_side = view.kind == "deleted"
        found[view.target] = {
            number for row in view.unified if (number := row.left_no if old_side else row.right_no) is not None
        }
    return found


def line_ranges(lines: set[int], most: int = 6) -> str:
    """Line numbers as a reader says them: 'lines 1–20', 'lines 3–8, 40–52', 'line 7', 'no lines'."""
    if not lines:
        return "no lines"
    numbers = sorted(lines)
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    parts = [f"{a}–{b}" if a != b else str(a) for a, b in runs[:most]]
    more = ", …" if len(runs) > most else ""
    return f"line {numbers[0]}" if len(numbers) == 1 else f"lines {', '.join(parts)}{more}"


def check_comments(store: Store, session_id: str, comments: list[LineComment]) -> None:
    """Refuse (CommentError, one line per problem) comments that name a file outside the session's latest
    diff or a line that diff does not show; the one check the review page and `agent-tasks review` share."""
    if not comments:
        return
    diff = store.latest_diff(store.get_session(session_id).id)
    files = [f["path"] for f in (diff.files if diff else [])]
    problems = comment_problems(comments, files, diff.patch if diff else None)
    if problems:
        raise CommentError("; ".join(problems))


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
