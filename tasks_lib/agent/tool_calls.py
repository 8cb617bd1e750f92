"""Tool calls from any model: native `tool_calls`, or calls written into the reply's text.

Models served by llama.cpp, Ollama or vLLM often write their calls into the message content instead
of the API's `tool_calls` field: as fenced ```json blocks, as `<tool_call>…</tool_call>` tags, or as
bare `{"name": …, "arguments": …}` objects. They are read here into the same ToolCall the native path
gives, so the same validation applies. Text that tries to be a call but cannot be read becomes a
problem the model is told about.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from tasks_lib.agent.model import ModelReply, ToolCall

ToolProtocol = Literal["auto", "native", "text"]
Signatures = dict[str, tuple[frozenset[str], frozenset[str]]]  # tool → (required arguments, every accepted name)
TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
FENCED = re.compile(r"```[ \t]*([A-Za-z_]*)[ \t]*\n(.*?)```", re.DOTALL)
CALL_LANGUAGES = {"", "json", "tool_call", "tool", "tool_code", "javascript", "js"}
ARGUMENT_KEYS = ("arguments", "parameters", "args", "input")
CALL_FORMAT = 'one tool call as a fenced block, e.g. ```json\n{"name": "list_files", "arguments": {"path": "."}}\n```'


class ReadCalls(BaseModel):
    """The calls found in a reply, where they came from, and what could not be read."""

    calls: list[ToolCall] = Field(default_factory=list)
    from_text: bool = False
    problems: list[str] = Field(default_factory=list)


def read_calls(reply: ModelReply, protocol: ToolProtocol = "auto", tools: Signatures | None = None) -> ReadCalls:
    """The reply's tool calls: native ones (unless ``text``), else those written in its text (unless ``native``).

    With ``tools``, an object in the text that has no tool name but whose keys fit exactly one tool's
    arguments is read as a call of that tool (small models often drop the name).
    """
    if protocol != "text" and reply.tool_calls:
        return ReadCalls(calls=reply.tool_calls)
    if protocol == "native":
        return ReadCalls()
    calls, problems = calls_in_text(reply.text, tools)
    return ReadCalls(calls=calls, from_text=True, problems=problems)


def calls_in_text(text: str, tools: Signatures | None = None) -> tuple[list[ToolCall], list[str]]:
    """Tool calls written in a reply's text, and a note for each block that looked like a call but was unreadable."""
    segments = [m.group(1) for m in TAGGED.finditer(text)]
    segments += [m.group(2) for m in FENCED.finditer(text) if m.group(1).lower() in CALL_LANGUAGES]
    strict = bool(segments)
    if not strict:  # bare objects in the prose, not inside code blocks of other languages
        segments = [FENCED.sub("", text)]
    calls: list[ToolCall] = []
    problems: list[str] = []
    unnamed: list[dict[str, Any]] = []
    for segment in segments:
        found, unreadable = _objects(segment)
        for value in found:
            call = _as_call(value) if strict or _has_arguments(value) else None
            if call is not None and call not in [(c.name, c.arguments) for c in calls]:  # a call both tagged and fenced
                calls.append(ToolCall(id=f"text_call_{len(calls) + 1}", name=call[0], arguments=call[1]))
            elif call is None and isinstance(value, dict) and strict:
                unnamed.append(value)
        if strict and unreadable and not found and '"name"' in segment.replace("'", '"'):
            problems.append(f"could not read this as a tool call ({unreadable}): {segment.strip()[:200]}")
    if not calls and tools:
        for value in unnamed:
            fits = [
                name for name, (required, accepted) in tools.items() if value and required <= set(value) <= accepted
            ]
            if len(fits) == 1:
                calls.append(ToolCall(id=f"text_call_{len(calls) + 1}", name=fits[0], arguments=json.dumps(value)))
    return calls, problems


def _objects(text: str) -> tuple[list[Any], str]:
    """JSON values found one after another in ``text`` (objects or lists of them), and the first parse error."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    error = ""
    i = 0
    while True:
        start = min((p for p in (text.find("{", i), text.find("[", i)) if p != -1), default=-1)
        if start == -1:
            return found, error
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            value, end = _loose(text, start)
            if value is None:
                error = error or f"{exc.msg} at character {exc.pos - start}"
                i = start + 1
                continue
        found.extend(value if isinstance(value, list) else [value])
        i = end


def _loose(text: str, start: int) -> tuple[Any, int]:
    """A Python-style literal (single quotes, True/None) that JSON rejects, when one closes at a brace."""
    closing = "}" if text[start] == "{" else "]"
    end = text.find(closing, start)
    while end != -1:
        try:
            return ast.literal_eval(text[start : end + 1]), end + 1
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            end = text.find(closing, end + 1)
    return None, start


def _has_arguments(value: Any) -> bool:
    """True for an object that carries arguments (in prose, a bare {"name": …} alone is not taken as a call)."""
    inner = value.get("function", value) if isinstance(value, dict) else None
    return isinstance(inner, dict) and any(k in inner for k in ARGUMENT_KEYS)


def _as_call(value: Any) -> tuple[str, str] | None:
    """(name, arguments as JSON text) when ``value`` is shaped like a tool call."""
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):
        value = value["function"]
    name = value.get("name") or value.get("tool")
    if not isinstance(name, str) or not name.strip():
        return None
    arguments = next((value[k] for k in ARGUMENT_KEYS if k in value), {})
    if isinstance(arguments, str):
        return name.strip(), arguments
    return name.strip(), json.dumps(arguments if arguments is not None else {})
