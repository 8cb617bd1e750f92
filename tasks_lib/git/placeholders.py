"""Whether a change holds code or only stands in for it: files whose added lines are all placeholders (`pass`,
`...`, `raise NotImplementedError`, `TODO`), so a summary that says a feature was written is not taken on trust."""

from __future__ import annotations

import re

PLACEHOLDER = re.compile(
    r"^\s*(pass|\.\.\.|raise NotImplementedError(\(.*\))?|(#|//)\s*(TODO|FIXME)\b.*|"
    r"throw new Error\(['\"]?(not implemented|todo)['\"]?\);?)\s*$",
    re.IGNORECASE,
)


def placeholder_files(patch: bytes) -> list[str]:
    """The files (as the patch names them) whose change adds lines, every one of them blank or a placeholder."""
    found: list[str] = []
    current, added, real = None, 0, 0

    def close() -> None:
        if current and added and not real:
            found.append(current)

    for raw in patch.split(b"\n"):
        line = raw.decode("utf-8", "replace")
        if line.startswith("diff --git "):
            close()
            current, added, real = None, 0, 0
        elif line.startswith("+++ "):
            current = line[4:].removeprefix("b/") if line[4:] != "/dev/null" else None
        elif line.startswith("+") and current:
            body = line[1:]
            if body.strip():
                added += 1
                real += 0 if PLACEHOLDER.match(body) else 1
    close()
    return found
