"""Prefect task: run the agent loop in a workspace, recording and logging every step."""

from __future__ import annotations

import json
from typing import Any

from prefect import get_run_logger

from tasks_lib import progress
from tasks_lib.agent.budget import SharedBudget, agent_limits
from tasks_lib.agent.edit_loop import run_edit_loop
from tasks_lib.agent.loop import Limits, LoopResult, run_agent_loop
from tasks_lib.agent.model import Model
from tasks_lib.agent.spec import AgentSpec
from tasks_lib.agent.tools import Toolbox
from tasks_lib.agent.turn import LoopOptions
from tasks_lib.config import load_settings
from tasks_lib.domain.records import StepRecord, Usage
from tasks_lib.environments import Environment
from tasks_lib.environments.base import BLOCKED
from tasks_lib.security.secrets import Redactor
from tasks_lib.steps import step
from tasks_lib.steps.artifacts import ProgressArtifact, publish_usage_artifact
from tasks_lib.store import Store


def describe_step(step: StepRecord, max_steps: int) -> str:
    """One log line for a step: its tool calls and how they went."""
    calls = (
        ", ".join(
            f"{c.name}({_short_args(c.arguments)}){' -> skipped' if c.skipped else '' if c.ok else ' -> error'}"
            for c in step.tool_calls
        )
        or "no tool call"
    )
    if step.calls_from_text:
        calls += " (read from the reply's text)"
    tokens = f"{step.prompt_tokens}+{step.completion_tokens} tok"
    retried = f", {step.retries} retries" if step.retries else ""
    return f"step {step.index}/{max_steps}: {calls} [{tokens}, {step.duration_s:.2f}s{retried}]"


def _short_args(arguments) -> str:
    if isinstance(arguments, dict):
        text = ", ".join(f"{k}={v!r}" for k, v in arguments.items() if k not in ("content", "new", "old"))
    else:
        text = str(arguments)
    return text if len(text) <= 80 else text[:77] + "..."


CONTEXT_FILL = 0.75  # share of the window a prompt may fill before old tool outputs are shortened


@step("agent-loop")
def run_agent(
    store: Store,
    session_id: str,
    workspace: str,
    environment: Environment,
    agent: AgentSpec,
    model: Model,
    messages: list[dict[str, Any]],
    iteration: int = 1,
    prior_usage: Usage | None = None,
    limits: Limits | None = None,
    first_index: int = 1,
    shared: SharedBudget | None = None,
    attempt: int | None = None,
) -> LoopResult:
    """Let the agent work on the conversation until it finishes or a limit ends it; each step is stored and logged.

    Its commands run in ``environment`` (the session's sandbox).

    ``prior_usage`` (earlier work of the session) is added to the session's stored totals; ``limits``
    defaults to the agent's budgets (a fix round passes what is left of them). Best-of-N: ``attempt``
    numbers this loop's steps, and ``shared`` is the budget all attempts draw on (and may stop this one).
    """
    logger = get_run_logger()
    redact = Redactor.from_env()
    window, priced = model.facts()
    limits = limits or agent_limits(agent)
    window = agent.context_window or window or load_settings().default_context_window
    limits = limits.model_copy(update={"context_tokens": int(window * CONTEXT_FILL)})
    if agent.max_cost_usd is not None and not priced:
        logger.warning(
            "litellm has no price for %s: max_cost_usd cannot be enforced; tokens are counted (set max_tokens to cap them)",
            model.name,
        )
    profile = getattr(model, "profile", None)
    if profile is not None and first_index == 1:
        too_small = profile.too_small(len(json.dumps(messages)) // 4)
        if too_small:
            logger.warning(too_small)
    total_steps = first_index - 1 + limits.max_steps
    bar = ProgressArtifact(session_id, total_steps)

    def on_step(step: StepRecord, usage: Usage) -> None:
        step.attempt = attempt
        if shared is not None:  # the session's totals are every attempt's usage together
            with shared.lock:  # attempt 1 works in the session's workspace: a restarted run continues it alone
                total = shared.report(attempt or 1, usage)
                store.add_step(
                    session_id,
                    step,
                    (prior_usage or Usage()).plus(total),
                    iteration,
                    conversation=redact.deep(messages) if attempt == 1 else None,
                )
        else:  # the conversation is saved with every step, so a restarted run can go on from here
            store.add_step(
                session_id, step, (prior_usage or Usage()).plus(usage), iteration, conversation=redact.deep(messages)
            )
        if step.text:
            logger.info("step %d reasoning: %s", step.index, step.text[:2000])
        logger.info(f"attempt {attempt}: " * bool(attempt) + describe_step(step, total_steps))
        if step.compacted:
            logger.warning(
                "step %d: shortened %d old tool outputs to stay within the context window", step.index, step.compacted
            )
        for note in step.notes:
            logger.warning("step %d: %s", step.index, note[:500])
        for call in step.tool_calls:
            if call.skipped:
                continue
            if call.name == "finish" and not call.ok:
                logger.warning("step %d: finish not accepted: %s", step.index, call.result[:500])
            elif call.denied:
                logger.warning(
                    "step %d: %s refused by the agent's tool rules: %s", step.index, call.name, call.result[:500]
                )
            elif not call.ok:
                logger.warning("step %d: %s failed: %s", step.index, call.name, call.result[:500])
            for line in call.result.splitlines()[-20:] if call.name == "run_command" else []:
                if line.startswith(BLOCKED):
                    logger.warning("step %d: %s", step.index, line.strip("[]"))
        if step.error:
            logger.error("step %d: %s", step.index, step.error)
        bar.update(first_index - 1 + usage.steps)
        progress.publish("step", session_id=session_id, step=step, usage=usage, max_steps=total_steps)

    if agent.loop == "edit":
        result = run_edit_loop(model, workspace, messages, limits, on_step, redact, first_index)
    else:
        toolbox = Toolbox(workspace, tools=agent.policy, environment=environment)
        options = LoopOptions(protocol=agent.tool_protocol, expects_changes=not agent.read_only_workspace)
        stop = (lambda: shared.stop_reason(attempt or 1)) if shared is not None else None
        result = run_agent_loop(model, toolbox, messages, limits, on_step, redact, first_index, options, stop)
    bar.update(first_index - 1 + result.usage.steps, final=True)
    publish_usage_artifact(session_id, result.steps)
    failed = result.end_reason in ("model_error", "crashed")
    log = logger.error if failed else logger.warning if result.end_reason.ended_early else logger.info
    log("agent loop ended: %s (%s)", result.end_reason.value, result.detail)
    return result
