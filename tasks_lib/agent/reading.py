"""Reading a file for the agent in bounded pieces: only up to the lines shown, long lines cut, big files not counted."""

from __future__ import annotations

from typing import BinaryIO, NamedTuple

MAX_READ_LINES = 2000
MAX_READ_CHARS = 100_000  # characters of file content in one read_file answer
MAX_READ_LINE_CHARS = 2000  # a longer line is cut in a read_file answer
MAX_COUNT_BYTES = 16 * 1024 * 1024  # read_file counts a file's lines to its end only up to this size


class Page(NamedTuple):
    """Lines read from a file: the lines shown, how many lines were read, whether the file ended."""

    lines: list[str]
    seen: int  # lines read from the file (those before ``start`` and one that did not fit included)
    at_end: bool
    full: bool  # stopped because the answer reached MAX_READ_CHARS


def read_lines(handle: BinaryIO, start: int, last: int) -> Page:
    """Lines ``start``..``last`` (1-based) of an open file, at most MAX_READ_CHARS characters of them.

    Reads only up to the last line shown; no line is held longer than MAX_READ_LINE_CHARS (times 4 bytes).
    """
    cap = MAX_READ_LINE_CHARS * 4
    lines: list[str] = []
    chars = seen = 0
    while seen < last:
        raw = handle.readline(cap)
        if not raw:
            return Page(lines, seen, True, False)
        seen += 1
        long = not raw.endswith(b"\n") and len(raw) == cap
        while long:  # skip the rest of a long line without keeping it
            more = handle.readline(cap)
            long = bool(more) and not more.endswith(b"\n")
        if seen < start:
            continue
        text = raw.rstrip(b"\n").rstrip(b"\r").decode("utf-8", errors="replace")
        if len(text) > MAX_READ_LINE_CHARS or len(raw) == cap and not raw.endswith(b"\n"):
            text = text[:MAX_READ_LINE_CHARS] + f" [... line cut at {MAX_READ_LINE_CHARS} characters]"
        if lines and chars + len(text) > MAX_READ_CHARS:
            return Page(lines, seen, False, True)
        lines.append(text)
        chars += len(text)
    return Page(lines, seen, handle.peek(1) == b"", False)


def count_lines(handle: BinaryIO, seen: int, size: int) -> int | None:
    """The file's number of lines, reading on from line ``seen``; None for a file over MAX_COUNT_BYTES."""
    if size > MAX_COUNT_BYTES:
        return None
    total, last = seen, b"\n"
    while chunk := handle.read(1 << 20):
        total += chunk.count(b"\n")
        last = chunk[-1:]
    return total + (last != b"\n")


def read_note(start: int, end: int, total: int | None, size: int, full: bool) -> str:
    """The line under a read_file answer that says which part of the file it shows, when not all of it."""
    capped = (
        f"; the answer is capped at {MAX_READ_CHARS} characters, use start_line/end_line for the rest" if full else ""
    )
    if total is None:
        return (
            f"\n[the file is {size / 1_000_000:.1f} MB, too big to count its lines; showing lines {start}-{end}"
            f"{capped or '; use start_line/end_line to read on'}]"
        )
    if (start, end) == (1, total):
        return ""
    return f"\n[lines {start}-{end} of {total}{capped}]"
