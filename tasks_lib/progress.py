"""In-process listeners for session progress, so a CLI in the same process can show each step live."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Listener = Callable[[str, dict[str, Any]], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> None:
    """Call ``listener(event, data)`` for every progress event in this process."""
    _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    """Stop calling a listener."""
    if listener in _listeners:
        _listeners.remove(listener)


def publish(event: str, **data: Any) -> None:
    """Tell every listener; a failing listener never breaks a run."""
    for listener in list(_listeners):
        try:
            listener(event, data)
        except Exception:
            pass
