"""Text replacement for `edit_file`, forgiving where it is safe and precise where it is not.

An exact, unique match is replaced. When there is no exact match, lines that differ only in trailing
whitespace — then only in indentation — are matched, but only when that match is unique; a match by
indentation re-indents the new text to the file's. Last, text that differs only in ' against " is
matched when unique (small models write single quotes to avoid escaping double ones in JSON); the
tool's answer says which tolerance applied. A failure says why and shows where the file
holds something close, so the model can correct itself.
"""

from __future__ import annotations

import difflib

from pydantic import BaseModel

from tasks_lib.errors import AgentTasksError

CONTEXT_LINES = 3
MAX_SCAN_LINES = 5000
WHOLE_FILE_LINES = 60  # a file this short is shown whole when `old` is not found: the exact text to copy


class EditError(AgentTasksError, ValueError):
    """An edit that cannot be made as asked; the message says why and what the file holds instead."""


class Edit(BaseModel):
    """The file's new text and the lines (1-based, inclusive) the new text occupies."""

    text: str
    first_line: int
    last_line: int
    how: str = "exact"  # exact | whitespace | indentation | quotes | all


def apply_edit(text: str, old: str, new: str, replace_all: bool = False) -> Edit:
    """Replace ``old`` with ``new`` in ``text`` (EditError when that cannot be done unambiguously)."""
    if not old:
        raise EditError("`old` must not be empty (to create or rewrite a whole file, use write_file)")
    count = text.count(old)
    if count == 1 or (count > 1 and replace_all):
        at = text.index(old)
        first = text.count("\n", 0, at) + 1
        result = text.replace(old, new) if replace_all else text.replace(old, new, 1)
        return Edit(
            text=result, first_line=first, last_line=first + new.count("\n"), how="all" if count > 1 else "exact"
        )
    if count > 1:
        lines = _lines_of(text, old)
        raise EditError(
            f"`old` occurs {count} times (at lines {', '.join(map(str, lines))}); include more surrounding "
            "lines to make it unique, or set replace_all to replace every one"
        )
    return _tolerant(text, old, new)


def _lines_of(text: str, old: str) -> list[int]:
    lines, start = [], text.find(old)
    while start != -1 and len(lines) < 20:
        lines.append(text.count("\n", 0, start) + 1)
        start = text.find(old, start + 1)
    return lines


def _tolerant(text: str, old: str, new: str) -> Edit:
    lines = text.splitlines(keepends=True)
    wanted = old.strip("\n").splitlines()
    for how, norm in (("whitespace", str.rstrip), ("indentation", str.strip)):
        target = [norm(line) for line in wanted]
        hits = [
            i
            for i in range(len(lines) - len(target) + 1)
            if all(norm(lines[i + k].rstrip("\r\n")) == target[k] for k in range(len(target)))
        ]
        if len(hits) > 1:
            raise EditError(
                f"`old` is not in the file exactly; ignoring {how} it matches {len(hits)} places (lines "
                f"{', '.join(str(h + 1) for h in hits[:20])}); copy the text exactly, with more lines"
            )
        if len(hits) == 1:
            start = hits[0]
            replacement = new.strip("\n").splitlines()
            if how == "indentation":
                replacement = _reindent(replacement, wanted, lines[start : start + len(target)])
            ending = "\n" if lines[start + len(target) - 1].endswith("\n") else ""
            block = "\n".join(replacement) + ending if replacement else ""
            result = "".join(lines[:start]) + block + "".join(lines[start + len(target) :])
            return Edit(text=result, first_line=start + 1, last_line=start + max(len(replacement), 1), how=how)
    quoted = _other_quotes(text, old)
    if quoted is not None:
        first = text.count("\n", 0, quoted) + 1
        result = text[:quoted] + new + text[quoted + len(old) :]
        return Edit(text=result, first_line=first, last_line=first + new.count("\n"), how="quotes")
    raise EditError(
        "`old` was not found in the file (it must match exactly, whitespace included)." + closest(text, old)
    )


def _same_quotes(value: str) -> str:
    return value.replace("'", '"')


def _other_quotes(text: str, old: str) -> int | None:
    """Where ``old`` is in the file but for ' against " (small models avoid escaping quotes in JSON), if unique."""
    flat, wanted = _same_quotes(text), _same_quotes(old)
    if wanted == old and flat == text or flat.count(wanted) != 1:
        return None
    return flat.index(wanted)


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _reindent(replacement: list[str], wanted: list[str], found: list[str]) -> list[str]:
    """The new lines moved from the model's indentation to the file's, level by level as the matched lines show."""
    levels = {_indent(w): _indent(f) for w, f in zip(wanted, found) if w.strip()}
    out = []
    for line in replacement:
        if not line.strip():
            out.append("")
            continue
        indent = _indent(line)
        base = max((k for k in levels if indent.startswith(k)), key=len, default=None)
        out.append(line if base is None else levels[base] + indent[len(base) :] + line.lstrip())
    return out


def closest(text: str, old: str) -> str:
    """A note showing the lines of ``text`` most like ``old``, numbered (a short file whole), or advice to read it."""
    lines = text.splitlines()[:MAX_SCAN_LINES]
    if len(lines) <= WHOLE_FILE_LINES:
        shown = "\n".join(f"{n:6}\t{line}" for n, line in enumerate(lines, start=1))
        return f" The file holds (copy `old` from here exactly):\n{shown}"
    wanted = old.strip("\n").splitlines() or [old]
    size = len(wanted)
    best, best_at = 0.0, -1
    for i in range(max(len(lines) - size + 1, 1)):
        ratio = difflib.SequenceMatcher(
            None, "\n".join(lines[i : i + size]), "\n".join(wanted), autojunk=False
        ).quick_ratio()
        if ratio > best:
            ratio = difflib.SequenceMatcher(
                None, "\n".join(lines[i : i + size]), "\n".join(wanted), autojunk=False
            ).ratio()
            if ratio > best:
                best, best_at = ratio, i
    if best < 0.5 or best_at < 0:
        return " Read the file first."
    shown = "\n".join(f"{n + 1:6}\t{lines[n]}" for n in range(best_at, min(best_at + size, len(lines))))
    return f" The closest lines in the file:\n{shown}"


def around(text: str, first: int, last: int) -> str:
    """Numbered lines ``first``..``last`` of ``text`` with a few lines of context either side."""
    lines = text.splitlines()
    start, end = max(first - CONTEXT_LINES, 1), min(last + CONTEXT_LINES, len(lines))
    return "\n".join(f"{n:6}\t{lines[n - 1]}" for n in range(start, end + 1))
