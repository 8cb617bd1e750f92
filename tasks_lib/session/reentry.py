"""A run that picks its session up again: resumed for its review, restarted while the agent worked or while an accepted
change was delivered — on this worker or another. The store says where the session stood; the workspace is rebuilt
from the base commit and the last diff when it is not here."""

from __future__ import annotations

from tasks_lib.agent.spec import AgentSpec
from tasks_lib.domain.session import SessionStatus, Workspace
from tasks_lib.environments import SandboxRefused
from tasks_lib.git.delivery import DeliveryError
from tasks_lib.git.repo import RepositoryError, mirror_dir, normalize_repository
from tasks_lib.session.context import SessionContext
from tasks_lib.session.lifecycle import move
from tasks_lib.session.runner import current_runner
from tasks_lib.session.sandbox import resumed_sandbox
from tasks_lib.session.work import setup
from tasks_lib.steps.review_actions import restore_workspace


def restore(ctx: SessionContext) -> None:
    """Pick a suspended or restarted session up from the store, rebuilding its workspace if it is gone."""
    row = ctx.store.get_session(ctx.session_id)
    ctx.agent = AgentSpec.model_validate(row.agent_spec)
    try:
        ctx.sandbox = resumed_sandbox(
            row.sandbox,
            ctx.request,
            ctx.agent,
            ctx.settings.sandbox,  # type: ignore[arg-type]
            ctx.settings.limits,
            ctx.settings.docker_image,
        )
    except SandboxRefused as exc:
        raise ctx.fail(f"cannot continue on this worker: {exc}") from None
    ctx.announce_sandbox()
    ctx.model_name = row.model
    ctx.repository = normalize_repository(ctx.request.repository)
    mirror = mirror_dir(ctx.settings.mirrors_dir, ctx.repository)
    # in this worker's own home: the path recorded may be another machine's
    ctx.ws = Workspace(
        path=str(ctx.settings.workspaces_dir / ctx.session_id),
        work_branch=row.work_branch,
        base_branch=row.branch,
        base_commit=row.base_commit,
        mirror=str(mirror),
        mirror_action="fetched",
    )
    ctx.iteration, ctx.instructions = row.iteration, row.instructions
    ctx.messages = list(row.conversation or [])
    ctx.iteration_start = row.iteration_start
    ctx.store.update_session(ctx.session_id, runner=current_runner(), workspace=ctx.ws.path)
    latest = ctx.store.latest_diff(ctx.session_id)
    try:
        ctx.workspace_was = how = restore_workspace(
            ctx.repository,
            ctx.settings.mirrors_dir,
            ctx.ws.path,
            ctx.ws.work_branch,
            ctx.ws.base_commit,
            latest.patch if latest else b"",
        )
    except (DeliveryError, RepositoryError) as exc:  # e.g. the stored patch was trimmed: no honest rebuild
        raise ctx.fail(f"cannot rebuild the workspace on this worker: {exc}") from None
    ctx.environment = ctx.make_environment()
    if how == "rebuilt":  # what the setup installed outside the patch is gone with the old workspace
        setup(ctx)
    ctx.reuse_review_key = row.status == SessionStatus.awaiting_review.value


def continue_iteration(ctx: SessionContext) -> bool:
    """Ready a restarted run to go on with its iteration; True when it continues mid-conversation.

    With its workspace still here the agent continues from its last saved step; a workspace rebuilt
    elsewhere holds only what the last review saw, so the iteration starts over from there.
    """
    move(ctx.store, ctx.session_id, SessionStatus.running, f"iteration {ctx.iteration} continued after a restart")
    if ctx.workspace_was == "existing" and ctx.messages:
        ctx.messages.append(
            {
                "role": "user",
                "content": (
                    "(Your run was interrupted and has been restarted. The workspace is as you left it; "
                    "check the state of your last step, then continue the task.)"
                ),
            }
        )
        ctx.logger.warning("continuing iteration %d from its last saved step", ctx.iteration)
        return True
    start = ctx.iteration_start
    ctx.messages = ctx.messages[:start] if start and ctx.messages else ctx.fresh_conversation()
    ctx.logger.warning(
        "the workspace was rebuilt on this worker: iteration %d starts over from its beginning", ctx.iteration
    )
    return False
