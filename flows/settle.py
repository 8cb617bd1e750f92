"""The settle-sessions flow: end sessions whose flow runs ended outside the flow, without anyone running the CLI.

Served next to the workflows (`agent-tasks up`, or a worker of the team's pool) with a schedule and
a trigger on agent-task runs turning Crashed, Cancelled or Failed; the zombie automation marks runs
whose heartbeats stopped as Crashed, which triggers it in turn.
"""

from __future__ import annotations

import tasks_lib  # noqa: F401  (sets quiet defaults before Prefect and litellm read their settings)

# isort: split
from datetime import timedelta

from prefect import flow, get_run_logger

from tasks_lib.config import load_settings
from tasks_lib.session.reconcile import end_orphans, expire_overdue, reschedule_lost_starts, settle_from_prefect
from tasks_lib.store import open_store

ENDED_RUN_EVENTS = {"prefect.flow-run.Crashed", "prefect.flow-run.Cancelled", "prefect.flow-run.Failed"}
ZOMBIE_AUTOMATION = "agent-tasks: crash runs whose heartbeats stopped"
HEARTBEAT_GRACE = timedelta(minutes=5)  # heartbeats come every PREFECT_FLOWS_HEARTBEAT_FREQUENCY (60 s under `up`)


@flow(name="settle-sessions", log_prints=False)
def settle_sessions() -> dict[str, list[str]]:
    """Expire overdue reviews, end the sessions whose flow runs Prefect reports as ended, and reschedule runs lost
    while starting; returns their ids."""
    store = open_store(load_settings().db_url)
    settled = {
        "expired": expire_overdue(store),
        "ended": settle_from_prefect(store),
        "orphaned": end_orphans(store),
        "rescheduled": reschedule_lost_starts(store),
    }
    logger = get_run_logger()
    for what, ids in settled.items():
        if ids:
            logger.info("%s: %s", what, ", ".join(i[:8] for i in ids))
    return settled


def settle_deployment():
    """settle-sessions as a deployment: every 5 minutes, and whenever an agent-task run crashes, is cancelled or fails."""
    from prefect.events import DeploymentEventTrigger

    trigger = DeploymentEventTrigger(
        name="settle-on-ended-agent-task-runs",
        expect=ENDED_RUN_EVENTS,
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related={"prefect.resource.role": "flow", "prefect.resource.name": "agent-task"},
    )
    return settle_sessions.to_deployment(
        name="settle-sessions", interval=timedelta(minutes=5), triggers=[trigger], tags=["agent-tasks"]
    )


def ensure_zombie_automation() -> bool:
    """Create, once, the automation that marks Running flow runs whose heartbeats stopped as Crashed; True if created.

    Follows Prefect's "detect zombie flows" recipe; needs PREFECT_FLOWS_HEARTBEAT_FREQUENCY set where runs execute.
    """
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    try:
        Automation.read(name=ZOMBIE_AUTOMATION)
        return False
    except ValueError:
        pass
    Automation(
        name=ZOMBIE_AUTOMATION,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
                "prefect.flow-run.Suspended",
                "prefect.flow-run.Paused",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=HEARTBEAT_GRACE,
        ),
        actions=[
            ChangeFlowRunState(state=StateType.CRASHED, message="no heartbeat for 5 minutes: its process is gone")
        ],
    ).create()
    return True
