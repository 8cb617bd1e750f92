"""The direct-edit loop (`loop: edit` in agent files), for small models: no tools. The model sees the task and the
files it names, and answers with the whole new content of each file it changes; the files are written (confined to
the workspace like the tools' writes) and the loop ends. A check's failures come back as the next user message, and
the model answers with whole files again — the shape of Aider's benchmark loop, inside the same session, flow, diff
and review as the tool loop."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tasks_lib.agent.loop import Limits, LoopResult, limit_reached, record_step, take_reply
from tasks_lib.agent.model import Model, ModelReply, label
from tasks_lib.domain.records import EndReason, StepRecord, ToolCallRecord, Usage
from tasks_lib.domain.words import counted
from tasks_lib.security.confine import PathRefused, relative, resolve_inside

EDIT_FORMAT = (
    "## How to answer\nYou have no tools. Answer with the complete new content of every file you change: the file's "
    "path on a line of its own, then a fenced code block holding the whole file, for example:\n\n"
    "calc.py\n```python\ndef add(a, b):\n    return a + b\n```\n\nWrite every line of the file, not only the "
    "changed ones, and nothing after the last block."
)
CLOSING = "Answer with the whole new content of each file you change, as described."
MAX_MALFORMED = 2
NO_CHANGE = "no change — the file already holds exactly this content"
# A path on its own line (in backticks, bold or after "File:"), then a fenced block.
PATH_THEN_FENCE = re.compile(
    r"(?:^|\n)[ \t]*(?:#+\s*)?(?:File:\s*)?(?:\*\*|`)?(?:File:\s*)?(?P<path>[\w./-]+\.[A-Za-z0-9]{1,8})(?:\*\*|`)?:?[ \t]*\n"
    r"```[^\n]*\n(?P<body>.*?)\n```",
    re.DOTALL,
)
FENCE_WITH_PATH = re.compile(
    r"```[\w+-]*[ \t]+(?P<path>[\w./-]+\.[A-Za-z0-9]{1,8})[ \t]*\n(?P<body>.*?)\n```", re.DOTALL
)
ANY_FENCE = re.compile(r"```[^\n]*\n(?P<body>.*?)\n```", re.DOTALL)
SHOWN_FILE = re.compile(r"^## (?P<path>\S+) \(as it is now\)$", re.MULTILINE)


def file_blocks(text: str, known: list[str]) -> list[tuple[str, str]]:
    """The (path, whole content) pairs a reply holds; a lone unnamed block is the only file the task showed."""
    found = [(m["path"], m["body"]) for m in PATH_THEN_FENCE.finditer(text)]
    found += [(m["path"], m["body"]) for m in FENCE_WITH_PATH.finditer(text) if m["path"] not in dict(found)]
    if not found and len(known) == 1:
        blocks = ANY_FENCE.findall(text)
        if len(blocks) == 1:
            found = [(known[0], blocks[0])]
    return [(path.strip("./") if path.startswith("./") else path, body + "\n") for path, body in found]


def shown_files(messages: list[dict[str, Any]]) -> list[str]:
    """The files the task showed the model (their paths)."""
    first = next((m for m in messages if m["role"] == "user"), None)
    return SHOWN_FILE.findall(str(first["content"])) if first else []


def write_blocks(root: Path, blocks: list[tuple[str, str]], step: StepRecord) -> int:
    """Write each file inside the workspace; each write is recorded like a write_file call. Returns files changed."""
    changed = 0
    for number, (path, content) in enumerate(blocks):
        started = time.monotonic()
        record = ToolCallRecord(id=f"edit-{step.index}-{number}", name="write_file", arguments={"path": path})
        try:
            target = resolve_inside(root, path, for_write=True)
            if target.is_dir():
                raise PathRefused(f"{path}: is a directory")
            if target.exists() and target.read_text(encoding="utf-8", errors="surrogateescape") == content:
                record.ok, record.result = False, f"{path}: {NO_CHANGE}"
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content, encoding="utf-8")
                record.result = f"wrote {relative(root, target)} ({len(content)} characters)"
                changed += 1
        except (PathRefused, OSError, UnicodeError) as exc:
            record.ok, record.result = False, f"error: {exc}"
        record.duration_s = time.monotonic() - started
        step.tool_calls.append(record)
    return changed


def run_edit_loop(
    model: Model,
    workspace: str | Path,
    messages: list[dict[str, Any]],
    limits: Limits,
    on_step: Callable[[StepRecord, Usage], None] | None = None,
    redact: Callable[[str], str] = lambda s: s,
    first_index: int = 1,
) -> LoopResult:
    """Ask for whole files until a reply changes some (finished), holds none twice in a row (malformed), repeats
    the files as they are (gave_up), fails to write twice (gave_up), or a budget ends it.

    A reply that repeats the files as the workspace holds them ends the loop at once: measured on the local model
    (exercism-python-edit, 34 exercises), no reply after such a repeat ever changed anything — asking again only
    spent tokens."""
    root = Path(workspace).resolve()
    known = shown_files(messages)
    started = time.monotonic()
    usage, steps = Usage(), []
    malformed = unchanged = malformed_total = 0

    def done(reason: EndReason, detail: str, summary: str | None = None) -> LoopResult:
        return LoopResult(
            end_reason=reason,
            detail=redact(detail),
            finish_summary=redact(summary) if summary is not None else None,
            steps=steps,
            usage=usage,
            messages=messages,
            duration_s=time.monotonic() - started,
            malformed_replies=malformed_total,
        )

    while True:
        limit = limit_reached(limits, usage, time.monotonic() - started)
        if limit:
            return done(*limit)
        step = StepRecord(index=first_index + usage.steps, started_at=datetime.now(timezone.utc), model=label(model))
        step_started = time.monotonic()
        tokens_now = sum(len(str(m.get("content") or "")) for m in messages) // 4
        reply = take_reply(model, messages, None, step, tokens_now, usage, redact)
        if not isinstance(reply, ModelReply):
            record_step(step, step_started, steps, usage, on_step)
            return done(*reply)
        messages.append({"role": "assistant", "content": reply.text})
        blocks = file_blocks(reply.text, known)
        changed = write_blocks(root, blocks, step) if blocks else 0
        summary = _summary(reply.text, step)
        if changed:
            record_step(step, step_started, steps, usage, on_step)
            return done(EndReason.finished, f"the model rewrote {counted(changed, 'file')}", summary)
        if blocks:
            if all(c.result.endswith(NO_CHANGE) for c in step.tool_calls):
                record_step(step, step_started, steps, usage, on_step)
                return done(EndReason.gave_up, "the model repeated the files as they are", summary)
            unchanged += 1
            malformed = 0
            problems = "; ".join(c.result for c in step.tool_calls if not c.ok)
            note = f"Nothing was changed: {problems}. Write the files as the task needs them."
            if unchanged >= 2:
                record_step(step, step_started, steps, usage, on_step)
                return done(EndReason.gave_up, "the model's files changed nothing, twice", summary)
        else:
            malformed += 1
            malformed_total += 1
            if malformed >= MAX_MALFORMED:
                record_step(step, step_started, steps, usage, on_step)
                return done(EndReason.malformed, f"the model's last {MAX_MALFORMED} replies held no file")
            example = known[0] if known else "path/to/file.py"
            note = (
                "Your reply held no file I could read. Answer with the file's path on a line of its own, then a "
                f"fenced code block with the whole file:\n\n{example}\n```\n...every line of the new file...\n```"
            )
        step.notes.append(note)
        messages.append({"role": "user", "content": note})
        record_step(step, step_started, steps, usage, on_step)


def _summary(text: str, step: StepRecord) -> str:
    """What the model said outside its file blocks, else which files it wrote."""
    said = ANY_FENCE.sub("", text).strip()
    written = ", ".join(str(c.arguments["path"]) for c in step.tool_calls if c.ok and isinstance(c.arguments, dict))
    return said[:2000] if said else f"Rewrote {written}." if written else ""
