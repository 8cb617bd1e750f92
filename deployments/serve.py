"""Serve every workflow from the workflows file in this process (schedules and triggers live).

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m deployments.serve
"""

from __future__ import annotations

import os

import tasks_lib  # noqa: F401  (quiet defaults)
from deployments.workflows import load_workflows, runner_deployments


def main() -> None:
    """Serve the workflows until interrupted; runs happen in subprocesses, at most AGENT_TASKS_SERVE_LIMIT at once."""
    from prefect import serve

    limit = int(os.environ.get("AGENT_TASKS_SERVE_LIMIT", "4"))
    serve(*runner_deployments(load_workflows()), limit=limit, print_starting_message=False)


if __name__ == "__main__":
    main()
