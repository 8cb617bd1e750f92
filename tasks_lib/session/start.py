"""A session's start: what its request resolves to (agent, model, repository, sandbox), recorded as it begins to run.

Apart from preflight.py (whose checks the CLI runs before it picks a Prefect server, so they must not import Prefect).
"""

from __future__ import annotations

from tasks_lib.domain.request import BadRequest
from tasks_lib.domain.session import SessionStatus
from tasks_lib.session.context import SessionContext
from tasks_lib.session.lifecycle import move
from tasks_lib.session.preflight import prepare
from tasks_lib.session.runner import current_runner


def begin_session(ctx: SessionContext) -> None:
    """Resolve what the session's request asks for (agent, model, repository, sandbox) and mark it running; the
    session fails with one clear line when the request cannot run."""
    try:
        ctx.agent, ctx.model_name, ctx.repository, ctx.sandbox = prepare(ctx.request, ctx.settings)
    except BadRequest as exc:
        raise ctx.fail(str(exc)) from None
    for note in ctx.agent.file_notes:  # how another tool's agent file was read (a model alias, tools left out)
        ctx.logger.info("agent file: %s", note)
    if ctx.agent.ignored_fields:
        ctx.logger.info(
            "agent file (%s format): ignored fields with no meaning here: %s",
            ctx.agent.file_format,
            ", ".join(ctx.agent.ignored_fields),
        )
    ctx.announce_sandbox()
    move(
        ctx.store,
        ctx.session_id,
        SessionStatus.running,
        "checking out the repository",
        model=ctx.model_name,
        agent=ctx.agent.name,
        agent_spec=ctx.redact.deep(ctx.agent.model_dump(mode="json")),
        runner=current_runner(),
        sandbox=ctx.sandbox.model_dump(),
    )
