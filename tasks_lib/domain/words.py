"""Small pieces of wording shared by the CLI, the pages and the records: counts with the right plural, and a status
with its reason said once."""

from __future__ import annotations


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
