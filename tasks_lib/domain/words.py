"""Small pieces of wording shared by the CLI, the pages and the records: counts with the right plural, and a status
with its reason said once."""

from __future__ import annotations

import re


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun, singular or plural: '1 file', '3 files', '2 change rounds'."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def status_line(status: str, reason: str | None) -> str:
    """A status and its reason, without saying the status twice when the reason starts with it ('accepted: …')."""
    reason = (reason or "").strip()
    if not reason:
        return status
    return reason if reason.startswith(f"{status}:") or reason.startswith(f"{status} ") else f"{status}: {reason}"


def plain(message: str) -> str:
    """A validation message in the user's words: without pydantic's 'Value error, ' / 'Assertion failed, ' prefix."""
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
_DUNDER_WORD = re.compile(r"[^\s`]*__[^\s`]*")


def _escape_outside(text: str, pattern: re.Pattern[str], inner) -> str:
    """``inner`` applied to the parts of ``text`` that ``pattern`` does not match; matches kept as they are."""
    parts, last = [], 0
    for found in pattern.finditer(text):
        parts += [inner(text[last : found.start()]), found.group(0)]
        last = found.end()
    return "".join([*parts, inner(text[last:])])


def literal_names(markdown: str) -> str:
    """Markdown in which names with double underscores (``__pycache__``, ``__init__.py``) written outside code show
    as written, not as bold text; code spans, fenced blocks and ordinary emphasis are left alone."""

    def names(text: str) -> str:
        return _DUNDER_WORD.sub(lambda m: re.sub(r"(?<!\\)_", r"\\_", m.group(0)), text)

    return _escape_outside(markdown, _FENCE, lambda prose: _escape_outside(prose, _CODE_SPAN, names))
