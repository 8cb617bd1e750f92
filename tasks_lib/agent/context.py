"""The conversation against the context window: its size in tokens, and cutting old tool outputs to fit."""

from __future__ import annotations

import json
from typing import Any

from tasks_lib.agent.model import ModelReply

MODEL_RESULT_CAP = 12_000  # characters of one tool result the model sees (head and tail kept)
CHARS_PER_TOKEN = 4  # for estimating a conversation's size against the context window
COMPACT_KEEP_RECENT = 2  # the latest tool outputs are never shortened
COMPACT_TO = 600  # characters an old tool output keeps when shortened
COMPACTED_MARK = "[... older tool output shortened to fit the context window:"
OBSERVATION_HEADER = "Results of your tool calls:"


def clip_middle(text: str, cap: int) -> str:
    """Keep the head and tail of a long text, with a note of what was cut."""
    if len(text) <= cap:
        return text
    half = cap // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """A rough token count of a conversation (characters / 4)."""
    return len(json.dumps(messages)) // CHARS_PER_TOKEN


def is_observation(message: dict[str, Any]) -> bool:
    """True for a message carrying tool results (a tool message, or the user message of text-protocol results)."""
    role, content = message.get("role"), str(message.get("content") or "")
    return role == "tool" or (role == "user" and content.startswith(OBSERVATION_HEADER))


def compact_messages(messages: list[dict[str, Any]], budget_tokens: int, tokens_now: int | None = None) -> int:
    """Make the conversation fit ``budget_tokens`` by cutting old tool outputs, oldest first.

    ``tokens_now`` is the conversation's size as the provider counted it (estimated when unknown); what
    a cut saves is converted to tokens at the conversation's own characters-per-token rate.
    Passes, each only while the conversation is still too big: shorten older outputs to their head
    and tail; then reduce them to a one-line note; then shorten all but the newest output. The
    newest output is kept whole. Returns how many outputs were changed.
    """
    chars = len(json.dumps(messages))
    tokens = tokens_now if tokens_now else chars // CHARS_PER_TOKEN
    per_token = chars / max(tokens, 1)
    changed = 0
    tool_indexes = [i for i, m in enumerate(messages) if is_observation(m)]
    older = tool_indexes[:-COMPACT_KEEP_RECENT] if len(tool_indexes) > COMPACT_KEEP_RECENT else []
    passes = [(older, COMPACT_TO), (older, 0), (tool_indexes[:-1], COMPACT_TO)]
    for indexes, keep in passes:
        for i in indexes:
            if tokens <= budget_tokens:
                return changed
            content = str(messages[i].get("content") or "")
            new = _shorten(content, keep)
            if new != content:
                messages[i] = {**messages[i], "content": new}
                tokens -= int((len(content) - len(new)) / per_token)
                changed += 1
    return changed


def _shorten(content: str, keep: int) -> str:
    """The content cut to ``keep`` characters (head and tail) with a note; 0 leaves only the note."""
    if keep == 0:
        return (
            content
            if content.startswith(COMPACTED_MARK)
            else f"{COMPACTED_MARK} all {len(content)} characters removed ...]"
        )
    if COMPACTED_MARK in content or len(content) <= keep + 200:
        return content
    half = keep // 2
    return (
        content[:half]
        + f"\n{COMPACTED_MARK} {len(content) - 2 * half} of {len(content)} characters cut ...]\n"
        + content[-half:]
    )


class ContextMeter:
    """The conversation's size in tokens, from the provider's count of the last prompt plus what came since."""

    def __init__(self) -> None:
        self.counted = 0  # prompt + completion tokens of the last reply, as the provider reported them
        self.mark = 0  # messages covered by that count

    def after_reply(self, reply: ModelReply, messages: list[dict[str, Any]]) -> None:
        """Take the provider's count once the reply is in the conversation."""
        if reply.prompt_tokens:
            self.counted, self.mark = reply.prompt_tokens + reply.completion_tokens, len(messages)

    def tokens(self, messages: list[dict[str, Any]]) -> int:
        """The size of the conversation now (estimated only for what the provider has not counted yet)."""
        if not self.counted or self.mark > len(messages):
            return estimate_tokens(messages)
        return self.counted + estimate_tokens(messages[self.mark :])
