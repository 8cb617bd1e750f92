"""Noticing an agent that goes round in circles: the same call with the same result, or two calls in turn."""

from __future__ import annotations

import hashlib
import json
from typing import Any

REPEATS = 3  # the same call with the same result this many times within the window
WINDOW = 6


def _signature(name: str, arguments: Any, output: str) -> str:
    try:
        args = json.dumps(json.loads(arguments) if isinstance(arguments, str) else arguments, sort_keys=True)
    except (TypeError, ValueError):
        args = str(arguments)
    return hashlib.sha256(f"{name}\0{args}\0{output}".encode()).hexdigest()


class StuckDetector:
    """Remembers the latest calls and their results; says when they repeat or alternate A-B-A-B."""

    def __init__(self, repeats: int = REPEATS, window: int = WINDOW):
        self.repeats, self.window = repeats, window
        self.history: list[tuple[str, str]] = []  # (signature, how the call reads)

    def see(self, name: str, arguments: Any, output: str) -> str | None:
        """Record one call; a description of the circle when the agent is going round in one, else None."""
        shown = f"{name}({str(arguments)[:80]})"
        self.history = (self.history + [(_signature(name, arguments, output), shown)])[-self.window :]
        signatures = [s for s, _ in self.history]
        if signatures.count(signatures[-1]) >= self.repeats:
            self.history.clear()
            return f"{shown} was called {self.repeats} times with the same result"
        if (
            len(signatures) >= 4
            and signatures[-1] == signatures[-3]
            and signatures[-2] == signatures[-4]
            and signatures[-1] != signatures[-2]
        ):
            first, second = self.history[-2][1], self.history[-1][1]
            self.history.clear()
            return f"{first} and {second} alternate with the same results"
        return None
