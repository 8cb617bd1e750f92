"""Prefect task: capture the workspace's diff, store it, and publish it as artifacts."""

from __future__ import annotations

from prefect import get_run_logger

from tasks_lib.domain.records import DiffResult
from tasks_lib.git.diff import capture_increment, capture_workspace_diff
from tasks_lib.steps import step
from tasks_lib.steps.artifacts import diff_notes, publish_diff_artifacts
from tasks_lib.store import Store


@step("capture-diff")
def capture_diff(
    store: Store,
    session_id: str,
    workspace: str,
    base_commit: str,
    iteration: int = 1,
    previous_patch: bytes | None = None,
) -> tuple[DiffResult, DiffResult | None]:
    """The workspace's full change against the base commit and, after a review, the increment since it.

    Both are kept in the store; the cumulative diff is also shown in Prefect. Each holds every file's
    stats, but its patch only what fits the limits (tasks_lib/git/diff.py: DiffLimits); the log says what was left out.
    """
    logger = get_run_logger()
    diff = capture_workspace_diff(workspace, base_commit)
    store.save_diff(session_id, diff, iteration)
    logger.info("diff: %s", diff.diffstat())
    for note in diff_notes(diff):
        logger.warning("%s", note)
    increment = None
    if previous_patch is not None:
        increment = capture_increment(workspace, base_commit, previous_patch)
        store.save_diff(session_id, increment, iteration, scope="increment")
        logger.info("since the last review: %s", increment.diffstat())
    publish_diff_artifacts(session_id, diff)
    return diff, increment
