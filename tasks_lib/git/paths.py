"""File names as git gives them and as people read them: any byte string a file system allows is a name, and it
is shown with the bytes that are not UTF-8 escaped (``caf\\xe9.txt``), the same in the diff, the tools and the page."""

from __future__ import annotations

import os

ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def shown_name(name: str | bytes) -> str:
    """A name (bytes, or text read with surrogateescape) as text any store, page or model can hold."""
    raw = name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace")


def unquote(line: str) -> bytes:
    """One path of git's output (C-quoted when it holds bytes outside printable ASCII, as with core.quotePath) as
    the bytes of the name."""
    if not (len(line) >= 2 and line[0] == line[-1] == '"'):
        return os.fsencode(line)
    body, out, i = line[1:-1], bytearray(), 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out += char.encode("utf-8", "surrogateescape")
            i += 1
        elif body[i + 1 : i + 4].isdigit() and len(body[i + 1 : i + 4]) == 3:
            out.append(int(body[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(ESCAPES.get(body[i + 1 : i + 2], ord(body[i + 1 : i + 2] or "\\")))
            i += 2
    return bytes(out)
