"""Prefect task: run the agent loop in a workspace, recording and logging every step."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks_lib import progress
from tasks_lib.agent_loop import Limits, LoopResult, run_agent_loop
from tasks_lib.agents import AgentSpec
from tasks_lib.artifacts import ProgressArtifact
from tasks_lib.llm import LitellmModel
from tasks_lib.models import StepRecord, Usage
from tasks_lib.secrets import Redactor
from tasks_lib.settings import Settings
from tasks_lib.store import Store
from tasks_lib.tools import Toolbox


def describe_step(step: StepRecord, max_steps: int) -> str:
    """One log line for a step: its tool calls and how they went."""
    calls = ", ".join(
        f"{c.name}({_short_args(c.arguments)}){'' if c.ok else ' -> error'}" for c in step.tool_calls
    ) or "no tool call"
    tokens = f"{step.prompt_tokens}+{step.completion_tokens} tok"
    retried = f", {step.retries} retries" if step.retries else ""
    return f"step {step.index}/{max_steps}: {calls} [{tokens}, {step.duration_s:.2f}s{retried}]"


def _short_args(arguments) -> str:
    if isinstance(arguments, dict):
        text = ", ".join(f"{k}={v!r}" for k, v in arguments.items() if k not in ("content", "new", "old"))
    else:
        text = str(arguments)
    return text if len(text) <= 80 else text[:77] + "..."


def model_for(agent: AgentSpec, model_name: str, settings: Settings) -> LitellmModel:
    """The litellm model a session uses."""
    return LitellmModel(
        model_name,
        api_base=agent.api_base,
        temperature=agent.temperature,
        timeout_s=settings.model_timeout_s,
        max_retries=settings.model_max_retries,
        retry_delay_s=settings.model_retry_delay_s,
    )


@task(name="agent-loop", cache_policy=NO_CACHE)
def run_agent(
    store: Store,
    session_id: str,
    workspace: str,
    agent: AgentSpec,
    model_name: str,
    messages: list[dict[str, Any]],
    settings: Settings,
    iteration: int = 1,
    prior_usage: Usage | None = None,
) -> LoopResult:
    """Let the agent work on the conversation until it finishes or a limit ends it; each step is stored and logged.

    ``prior_usage`` (earlier iterations) is added to the session's stored totals.
    """
    logger = get_run_logger()
    redact = Redactor.from_env()
    limits = Limits(
        max_steps=agent.max_steps,
        wall_time_s=agent.timeout_minutes * 60,
        max_cost_usd=agent.max_cost_usd,
        max_tokens=agent.max_tokens,
    )
    bar = ProgressArtifact(session_id, limits.max_steps)

    def on_step(step: StepRecord, usage: Usage) -> None:
        store.add_step(session_id, step, (prior_usage or Usage()).plus(usage), iteration)
        if step.text:
            logger.info("step %d reasoning: %s", step.index, step.text[:2000])
        logger.info(describe_step(step, limits.max_steps))
        for call in step.tool_calls:
            if not call.ok:
                logger.warning("step %d: %s failed: %s", step.index, call.name, call.result[:500])
        if step.error:
            logger.error("step %d: %s", step.index, step.error)
        bar.update(usage.steps)
        progress.publish("step", session_id=session_id, step=step, usage=usage, max_steps=limits.max_steps)

    toolbox = Toolbox(workspace, tools=agent.tool_names)
    result = run_agent_loop(model_for(agent, model_name, settings), toolbox, messages, limits, on_step, redact)
    log = logger.warning if result.end_reason.is_limit else logger.error if result.end_reason in ("model_error", "crashed") else logger.info
    log("agent loop ended: %s (%s)", result.end_reason.value, result.detail)
    return result
