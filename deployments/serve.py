"""Serve every workflow from the workflows file in this process (schedules and triggers live).

PREFECT_API_URL=http://127.0.0.1:4200/api python -m deployments.serve
"""

from __future__ import annotations

import tasks_lib  # noqa: F401  (sets quiet defaults before Prefect and litellm read their settings)

# isort: split
from deployments.workflows import Workflow, load_global_notify, load_workflows, runner_deployments
from tasks_lib.config import load_settings


def take_over(workflows: list[Workflow]) -> list[str]:
    """Remove deployments of the same names that `prefect deploy` made for a work pool; returns their names.

    serve() updates deployments in place but keeps a work pool's pull steps, which a served run
    cannot follow, so those deployments are replaced instead.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.logging import get_logger

    replaced = []
    with get_client(sync_client=True) as client:
        for workflow in workflows:
            try:
                deployment = client.read_deployment_by_name(f"agent-task/{workflow.name}")
            except ObjectNotFound:
                continue
            if deployment.work_pool_name or deployment.pull_steps:
                get_logger("agent-tasks").warning(
                    "replacing deployment agent-task/%s (made by `prefect deploy` for work pool %s) with a served one",
                    workflow.name,
                    deployment.work_pool_name,
                )
                client.delete_deployment(deployment.id)
                replaced.append(workflow.name)
    return replaced


def set_up_notifications(workflows: list[Workflow]) -> None:
    """Make the notify automations match the workflows file; a failure is logged, and serving goes on without them."""
    from prefect.logging import get_logger

    from deployments.notify import notify_targets, sync_notifications
    from tasks_lib.security.secrets import Redactor

    try:
        sync_notifications(notify_targets(load_global_notify(), workflows))
    except Exception as exc:  # notifications must not keep the workflows from being served
        get_logger("agent-tasks").error(
            "notifications not set up: %s", Redactor.from_env()(f"{type(exc).__name__}: {exc}")
        )


def main() -> None:
    """Serve the workflows and settle-sessions until interrupted; runs happen in subprocesses, at most
    AGENT_TASKS_SERVE_LIMIT at once. Also makes sure the zombie-run automation and the notify automations exist."""
    from prefect import serve

    from flows.gc import gc_deployment
    from flows.settle import ensure_zombie_automation, settle_deployment

    workflows = load_workflows()
    take_over(workflows)
    ensure_zombie_automation()
    set_up_notifications(workflows)
    limit = load_settings().serve_limit
    serve(
        *runner_deployments(workflows), settle_deployment(), gc_deployment(), limit=limit, print_starting_message=False
    )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # `up` stopping (Ctrl-C), even while the deployments are still being registered
        raise SystemExit(130) from None
