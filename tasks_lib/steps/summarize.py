"""Prefect task: the session summary — the model's "what / why / key changes" plus facts from code."""

from __future__ import annotations

import json
import re
from typing import Any

from prefect import get_run_logger

from tasks_lib.agent.context import clip_middle
from tasks_lib.agent.loop import LoopResult
from tasks_lib.agent.model import Model, ModelError, ModelReply
from tasks_lib.domain.records import CheckResult, DiffResult, StepRecord
from tasks_lib.domain.words import counted
from tasks_lib.environments import SandboxSpec
from tasks_lib.environments.base import BLOCKED, KILLED
from tasks_lib.git.placeholders import placeholder_files
from tasks_lib.security.secrets import Redactor
from tasks_lib.steps import step
from tasks_lib.steps.artifacts import diff_notes, publish_summary_artifact
from tasks_lib.store import Store

SUMMARY_SYSTEM = (
    "You write the review summary of a coding agent's session for the person who must review it. "
    "Answer in Markdown with exactly these three sections: '### What was done', '### Why', "
    "'### Key changes' (a bullet per important change, naming files). Be factual and brief; "
    "do not invent changes that are not in the diff; do not restate token counts or costs."
)
STEP_LOG_CAP = 12_000
PATCH_CAP = 12_000
# File names as summaries write them: `src/app.py`, app.py, docs/usage.md.
FILE_MENTION = re.compile(
    r"`([^`\s]+\.[A-Za-z0-9]{1,8})`|(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.(?:py|js|ts|tsx|jsx|md|txt|json|"
    r"ya?ml|toml|cfg|ini|go|rs|java|kt|c|h|cc|cpp|hpp|rb|php|sh|html|css|sql|lock))(?![\w/])"
)


def files_not_in_diff(narrative: str, diff: DiffResult | None) -> list[str]:
    """Files a summary names that the diff does not touch (so the reviewer does not take them on trust)."""
    changed = {f.path for f in diff.files} | {f.old_path for f in diff.files if f.old_path} if diff else set()
    named = {a or b for a, b in FILE_MENTION.findall(narrative)}
    return sorted(n for n in named if not any(c == n or c.endswith("/" + n) for c in changed))


def nothing_changed(loop: LoopResult) -> str:
    """The narrative of a session whose diff is empty: it says so, whatever the agent claimed."""
    own = (loop.finish_summary or "").strip()
    said = (
        "\n\nThe agent's own account, which the diff does not bear out as a change:\n> " + own.replace("\n", "\n> ")
        if own
        else ""
    )
    return f"### What was done\nNothing was changed: the session's diff is empty.{said}"


def models_used(steps: list[StepRecord]) -> list[dict[str, Any]]:
    """Each model that took steps, in the order they came in, with its steps, tokens and cost."""
    used: dict[str, dict[str, Any]] = {}
    for taken in steps:
        row = used.setdefault(
            taken.model or "?",
            {"model": taken.model or "?", "steps": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": None},
        )
        row["steps"] += 1
        row["prompt_tokens"] += taken.prompt_tokens
        row["completion_tokens"] += taken.completion_tokens
        if taken.cost_usd is not None:
            row["cost_usd"] = (row["cost_usd"] or 0.0) + taken.cost_usd
    return list(used.values())


def session_facts(
    loop: LoopResult,
    diff: DiffResult | None,
    max_steps: int,
    check: CheckResult | None = None,
    sandbox: SandboxSpec | None = None,
) -> dict[str, Any]:
    """Deterministic facts of a session, computed from the step log and the diff."""
    commands = [
        c.arguments.get("command", "") if isinstance(c.arguments, dict) else str(c.arguments)
        for s in loop.steps
        for c in s.tool_calls
        if c.name == "run_command"
    ]
    usage = loop.usage
    return {
        "end_reason": loop.end_reason.value,
        "end_detail": loop.detail,
        "steps": usage.steps,
        "max_steps": max_steps,
        "model_calls": usage.model_calls,
        "files_changed": len(diff.files) if diff else 0,
        "lines_added": diff.added if diff else 0,
        "lines_removed": diff.removed if diff else 0,
        "files": [f.model_dump() for f in diff.files] if diff else [],
        "diff_notes": diff_notes(diff) if diff else [],
        "commands": commands,
        "tool_errors": sum(1 for s in loop.steps for c in s.tool_calls if not c.ok),
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens,
        "cost_usd": usage.cost_usd,
        "duration_s": round(loop.duration_s, 2),
        "check": check.model_dump() if check else None,
        "sandbox": sandbox.describe() if sandbox else None,
        "unconfined": bool(sandbox and sandbox.kind == "none"),
        "limits": sandbox.describe_limits() if sandbox else None,
        "limits_hit": [
            c.result.split("]", 1)[0].removeprefix(KILLED).split(";")[0]
            for s in loop.steps
            for c in s.tool_calls
            if c.name == "run_command" and c.result.startswith(KILLED)
        ],
        "network_blocked": [
            line.removeprefix(BLOCKED).removesuffix("]")
            for s in loop.steps
            for c in s.tool_calls
            if c.name == "run_command"
            for line in c.result.splitlines()
            if line.startswith(BLOCKED)
        ][:50],
        "stuck_events": loop.stuck_events,
        "malformed_replies": loop.malformed_replies,
        "edit_failures": sum(
            1 for s in loop.steps for c in s.tool_calls if c.name == "edit_file" and not c.ok and not c.skipped
        ),
        "calls_from_text": sum(1 for s in loop.steps if s.calls_from_text),
        "models": models_used(loop.steps),
    }


def _models_line(models: list[dict[str, Any]]) -> list[str]:
    """One line naming each model's share of the work, when more than one model worked (escalation)."""
    if len(models) < 2:
        return []
    shares = [
        f"{m['model']}: {m['steps']} steps, {m['prompt_tokens'] + m['completion_tokens']:,} tokens"
        + (f", ${m['cost_usd']:.4f}" if m["cost_usd"] is not None else "")
        for m in models
    ]
    return [f"- **Models, in turn:** {'; '.join(shares)}"]


def render_facts(facts: dict[str, Any]) -> str:
    """The facts as a Markdown section."""
    cost = f"${facts['cost_usd']:.4f}" if facts["cost_usd"] is not None else "unknown (no price for this model)"
    lines = [
        "### Facts",
        f"- **Ended:** {facts['end_reason']} — {facts['end_detail']}",
        f"- **Files changed:** {facts['files_changed']} (+{facts['lines_added']} −{facts['lines_removed']})",
    ]
    for f in facts["files"]:
        rename = f" (from `{f['old_path']}`)" if f.get("old_path") else ""
        binary = ", binary" if f["binary"] else ""
        stats_only = ", stats only" if f.get("stats_only") else ""
        lines.append(f"  - `{f['path']}` {f['kind']}{rename}: +{f['added']} −{f['removed']}{binary}{stats_only}")
    lines += [f"- **⚠ {note[0].upper()}{note[1:]}**" for note in facts.get("diff_notes", [])]
    lines.append(f"- **Commands run:** {len(facts['commands'])}")
    lines += [f"  - `{c[:200]}`" for c in facts["commands"][:20]]
    if len(facts["commands"]) > 20:
        lines.append(f"  - … and {len(facts['commands']) - 20} more")
    lines += [
        f"- **Steps:** {facts['steps']} of {facts['max_steps']} ({counted(facts['model_calls'], 'model call')}, "
        f"{counted(facts['tool_errors'], 'tool error')})",
        f"- **Tokens:** {facts['prompt_tokens']:,} prompt, {facts['completion_tokens']:,} completion, "
        f"{facts['cached_tokens']:,} cached (the whole session so far, this summary's call included)",
        f"- **Cost:** {cost}",
        f"- **Duration:** {facts['duration_s']:.1f} s",
        *_models_line(facts.get("models") or []),
    ]
    if facts.get("stuck_events") or facts.get("malformed_replies"):
        lines.append(
            f"- **Going nowhere:** {facts.get('stuck_events', 0)} times in circles, "
            f"{facts.get('malformed_replies', 0)} replies without a usable tool call"
        )
    if facts.get("sandbox"):
        warning = "⚠ commands ran unconfined — " if facts.get("unconfined") else ""
        lines.append(f"- **Sandbox:** {warning}{facts['sandbox']}")
    if facts.get("network_blocked"):
        blocked = facts["network_blocked"]
        lines.append(f"- **⚠ Network requests blocked:** {len(blocked)}")
        lines += [f"  - `{line[:200]}`" for line in blocked[:10]]
    if facts.get("limits_hit"):
        lines.append(f"- **⚠ Commands stopped by a limit:** {'; '.join(facts['limits_hit'])}")
    if facts.get("placeholder_only"):
        named = ", ".join(f"`{n}`" for n in facts["placeholder_only"])
        lines.append(
            f"- **⚠ Only placeholders were added to** {named} (`pass`, `...`, TODO): whatever the summary says was "
            "written there is not in the diff"
        )
    if facts.get("summary_files_not_in_diff"):
        named = ", ".join(f"`{n}`" for n in facts["summary_files_not_in_diff"])
        lines.append(f"- **⚠ The summary names files the diff does not touch:** {named}")
    check = facts.get("check")
    if check:
        result = CheckResult.model_validate(check)
        lines.append(f"- **Check:** {result.headline()}")
        if not result.passed and result.output_tail:
            lines.append("\n```\n" + result.output_tail[-1500:].strip() + "\n```")
    return "\n".join(lines)


def step_log_text(loop: LoopResult) -> str:
    """A compact text of the step log, for the summary model."""
    out = []
    for s in loop.steps:
        if s.text:
            out.append(f"[{s.index}] said: {s.text[:600]}")
        for c in s.tool_calls:
            args = json.dumps(c.arguments)[:300] if not isinstance(c.arguments, str) else c.arguments[:300]
            out.append(f"[{s.index}] {c.name} {args} -> {'ok' if c.ok else 'ERROR'}: {c.result[:300]}")
        if s.error:
            out.append(f"[{s.index}] error: {s.error[:300]}")
    return clip_middle("\n".join(out), STEP_LOG_CAP)


def ask_model_for_summary(model: Model, instructions: str, loop: LoopResult, diff: DiffResult | None) -> ModelReply:
    """The model's narrative summary (raises ModelError when the call fails)."""
    diff_part = "(no diff)" if diff is None else f"{diff.diffstat()}\n\n{clip_middle(diff.patch_text, PATCH_CAP)}"
    user = (
        f"## Task\n{instructions}\n\n## How the session ended\n{loop.end_reason.value}: {loop.detail}\n\n"
        f"## Agent's own summary\n{loop.finish_summary or '(none)'}\n\n## Step log\n{step_log_text(loop)}\n\n## Diff\n{diff_part}"
    )
    reply = model.query([{"role": "system", "content": SUMMARY_SYSTEM}, {"role": "user", "content": user}])
    if not reply.text.strip():
        raise ModelError("the model returned an empty summary", permanent=True)
    return reply


@step("summarize")
def summarize(
    store: Store,
    session_id: str,
    model: Model | None,
    instructions: str,
    loop: LoopResult,
    diff: DiffResult | None,
    max_steps: int,
    iteration: int = 1,
    check: CheckResult | None = None,
    sandbox: SandboxSpec | None = None,
) -> str:
    """Write, store and publish the session summary; falls back to the facts alone if the model fails.

    The summary call's tokens and cost count towards the session's usage.
    """
    logger = get_run_logger()
    redact = Redactor.from_env()
    facts = session_facts(loop, diff, max_steps, check, sandbox)
    narrative = None
    if diff is None or diff.empty:  # no model call: it could only invent changes
        narrative = nothing_changed(loop)
    elif model is not None and loop.end_reason.value != "model_error":
        try:
            reply = ask_model_for_summary(model, instructions, loop, diff)
            store.add_usage(
                session_id, reply.prompt_tokens, reply.completion_tokens, reply.cached_tokens, reply.cost_usd
            )
            narrative = reply.text.strip()
        except Exception as exc:  # the deterministic summary below still stands
            logger.warning("summary model call failed, using the deterministic summary: %s", redact(str(exc)))
    if narrative is None:
        own = loop.finish_summary or "(the agent left no summary)"
        narrative = f"### What was done\n{own}\n\n_The summary model call was not available; facts below are exact._"
    row = store.get_session(session_id)  # the session's own totals, so the facts and every header agree
    facts.update(
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cached_tokens=row.cached_tokens,
        cost_usd=row.cost_usd,
    )
    facts["summary_files_not_in_diff"] = files_not_in_diff(narrative, diff) if diff and not diff.empty else []
    facts["placeholder_only"] = placeholder_files(diff.patch) if diff and not diff.empty else []
    markdown = redact(f"## Summary\n\n{narrative}\n\n{render_facts(facts)}")
    store.save_summary(session_id, markdown, facts, iteration)
    publish_summary_artifact(session_id, markdown)
    return markdown
