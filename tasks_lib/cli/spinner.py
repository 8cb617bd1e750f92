"""A spinner line on the terminal for whatever a person waits on; silent when stderr is not a terminal."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status
    from rich.text import Text

# What each step of the card is doing, in the words the spinner shows.
PHASES = {
    "checkout": "checking out the repository",
    "setup": "running the setup command",
    "agent-loop": "the agent is working",
    "run-check": "running the check",
    "run-hidden-check": "running the hidden check",
    "capture-diff": "capturing the diff",
    "summarize": "writing the summary",
    "commit-changes": "committing the change",
    "deliver-changes": "delivering the change",
    "discard-changes": "discarding the change",
    "reset-workspace": "resetting the workspace",
    "restore-workspace": "restoring the workspace",
}


class Spinner:
    """One transient status line with the seconds it has shown the same thing; ``say`` changes it, ``stop`` clears
    it. Does nothing when the console is not a terminal (pipes and logs get the plain lines only)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.status: Status | None = None
        self.text = ""
        self.since = time.monotonic()

    def say(self, text: str) -> None:
        """Show ``text`` (with a running clock) until the next ``say`` or ``stop``."""
        if not self.console.is_terminal:
            return
        if text != self.text:
            self.text, self.since = text, time.monotonic()
        if self.status is None:
            self.status = self.console.status(self, spinner="dots")  # re-rendered on every refresh: the clock runs
            self.status.start()

    def phase(self, name: str) -> None:
        """Show the step of the card that just started."""
        self.say(PHASES.get(name, name.replace("-", " ")))

    def stop(self) -> None:
        """Clear the line (before a prompt, or at the end)."""
        if self.status is not None:
            self.status.stop()
            self.status = None
            self.text = ""

    def __rich__(self) -> Text:
        """The line as shown now: the text and, after two seconds, how long it has been shown."""
        from rich.text import Text

        seconds = int(time.monotonic() - self.since)
        return Text(f"{self.text}…" + (f" {seconds} s" if seconds >= 2 else ""))
