"""A session's life around the flow: its context, statuses, preflight, sandbox, work, attempts, re-entry and events."""
