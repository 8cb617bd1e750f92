"""Walking a model ladder: the agent as it runs on each model of `models: [...]`, in turn."""

from __future__ import annotations

from tasks_lib.agent.spec import AgentSpec
from tasks_lib.domain.ladder import ModelRung


def filled_ladder(agent: AgentSpec, rungs: list[ModelRung]) -> list[ModelRung]:
    """The rungs with every setting they leave out taken from the agent (its temperature, reply cap, loop, format)."""
    return [
        rung.model_copy(
            update={
                "temperature": agent.temperature if rung.temperature is None else rung.temperature,
                "max_reply_tokens": rung.max_reply_tokens or agent.max_reply_tokens,
                "loop": rung.loop or agent.loop,
                "edit_format": rung.edit_format or agent.edit_format,
            }
        )
        for rung in rungs
    ]


def on_rung(agent: AgentSpec, rung: ModelRung, rest: list[ModelRung]) -> AgentSpec:
    """The agent as it runs on ``rung`` (a filled rung), with ``rest`` the models still to go after it."""
    return agent.model_copy(
        update={
            "model": rung.model,
            "models": rest or None,
            "temperature": rung.temperature,
            "max_reply_tokens": rung.max_reply_tokens,
            "loop": rung.loop or agent.loop,
            "edit_format": rung.edit_format or agent.edit_format,
        }
    )
