"""The gc flow: the scheduled form of `agent-tasks gc`, served beside the workflows on every machine that runs them."""

from __future__ import annotations

import tasks_lib  # noqa: F401  (sets quiet defaults before Prefect and litellm read their settings)

# isort: split
from datetime import timedelta

from prefect import flow, get_run_logger

from tasks_lib.config import load_settings
from tasks_lib.session.gc import collect
from tasks_lib.store import open_store


@flow(name="agent-tasks-gc")
def gc(older_than_days: float = 14, deliveries_days: float = 30) -> dict:
    """Remove workspaces of sessions ended more than ``older_than_days`` ago and tidy the mirrors; the report."""
    settings = load_settings()
    report = collect(open_store(settings.db_url), settings, older_than_days, deliveries_days)
    logger = get_run_logger()
    for line in report.lines():
        logger.info(line)
    return report.model_dump()


def gc_deployment():
    """gc as a deployment that runs every day."""
    return gc.to_deployment(name="daily", interval=timedelta(days=1), tags=["agent-tasks"])
