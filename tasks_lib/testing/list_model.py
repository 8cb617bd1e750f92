"""A model that answers from a list: deterministic replies for tests, with no HTTP and no litellm."""

from __future__ import annotations

import json
from typing import Any

from tasks_lib.agent.model import ModelReply, ToolCall


class ListModel:
    """Answers from a list of replies (text, (text, native calls), a ModelReply, or an exception to raise), recording
    what it was asked. Once the list is used up it says so in words, with no tool call."""

    name = "list-model"

    def __init__(self, replies: list[Any]):
        self.replies = list(replies)
        self.asked: list[list[dict[str, Any]]] = []

    def facts(self) -> tuple[int | None, bool]:
        """No context window known and no price."""
        return None, False

    def query(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> ModelReply:
        """The next reply of the list."""
        self.asked.append(json.loads(json.dumps(messages)))
        reply = self.replies.pop(0) if self.replies else "(nothing more to say)"
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, ModelReply):
            return reply
        if isinstance(reply, tuple):
            text, calls = reply
            return ModelReply(
                text=text,
                tool_calls=[ToolCall(id=f"n{i}", name=n, arguments=json.dumps(a)) for i, (n, a) in enumerate(calls)],
                prompt_tokens=100,
            )
        return ModelReply(text=reply, prompt_tokens=100)
