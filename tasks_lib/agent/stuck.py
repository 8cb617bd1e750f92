"""Noticing an agent that goes round in circles: the same call with the same result, or a cycle of calls (two in
turn, or up to ten in the same order) with the same results, twice over."""

from __future__ import annotations

import hashlib
import json
from typing import Any

REPEATS = 3  # the same call with the same result this many times within the window
WINDOW = 6
MAX_PERIOD = 10  # the longest cycle noticed: its calls, in the same order with the same results, twice in a row


def _signature(name: str, arguments: Any, output: str) -> str:
    try:
        args = json.dumps(json.loads(arguments) if isinstance(arguments, str) else arguments, sort_keys=True)
    except (TypeError, ValueError):
        args = str(arguments)
    return hashlib.sha256(f"{name}\0{args}\0{output}".encode()).hexdigest()


class StuckDetector:
    """Remembers the latest calls and their results; says when one repeats or a cycle of them comes round again."""

    def __init__(self, repeats: int = REPEATS, window: int = WINDOW, max_period: int = MAX_PERIOD):
        self.repeats, self.window, self.max_period = repeats, window, max_period
        self.history: list[tuple[str, str]] = []  # (signature, how the call reads)

    def see(self, name: str, arguments: Any, output: str) -> str | None:
        """Record one call; a description of the circle when the agent is going round in one, else None."""
        shown = f"{name}({str(arguments)[:80]})"
        keep = max(self.window, 2 * self.max_period)
        self.history = (self.history + [(_signature(name, arguments, output), shown)])[-keep:]
        signatures = [s for s, _ in self.history]
        recent = signatures[-self.window :]
        if recent.count(signatures[-1]) >= self.repeats:
            self.history.clear()
            return f"{shown} was called {self.repeats} times with the same result"
        for period in range(2, self.max_period + 1):
            if len(signatures) < 2 * period:
                break
            cycle = signatures[-period:]
            if cycle == signatures[-2 * period : -period] and len(set(cycle)) > 1:
                calls = [shown for _, shown in self.history[-period:]]
                self.history.clear()
                if period == 2:
                    return f"{calls[0]} and {calls[1]} alternate with the same results"
                return f"the same {period} calls ({', '.join(calls[:3])}, …) came round twice with the same results"
        return None
