"""Prefect artifacts of a session: summary and diff (markdown), per-file stats (table), progress."""

from __future__ import annotations

import time
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from tasks_lib.domain.records import DiffResult
from tasks_lib.domain.words import literal_names
from tasks_lib.security.secrets import Redactor

DIFF_ARTIFACT_CAP = 200_000  # characters of the patch shown in the diff artifact


def artifact_key(session_id: str, what: str) -> str:
    """An artifact key (lowercase letters, digits, dashes) for one session."""
    return f"agent-{what}-{session_id.replace('-', '')[:12]}"


def diff_notes(diff: DiffResult) -> list[str]:
    """What the stored diff does not show in full, one line each (trimmed patch, directories left out)."""
    notes = [diff.trimmed] if diff.trimmed else []
    if diff.left_out:
        shown = ", ".join(diff.left_out[:10]) + (
            f" and {len(diff.left_out) - 10} more" if len(diff.left_out) > 10 else ""
        )
        notes.append(f"left out of the diff (untracked, ignored by default): {shown}")
    return notes


def publish_diff_artifacts(session_id: str, diff: DiffResult) -> None:
    """The diff as markdown and its per-file stats as a table."""
    patch, cut = Redactor.from_env().head(diff.patch, DIFF_ARTIFACT_CAP)  # masks only what is shown
    if cut:
        patch += f"\n... diff cut here; full diff: agent-tasks show {session_id} --diff\n"
    body = f"```diff\n{patch}```" if patch else "_No changes._"
    notes = "".join(f"\n\n**{line}**" for line in diff_notes(diff))
    create_markdown_artifact(
        markdown=f"# Diff\n\n{diff.diffstat()} against `{diff.base_commit[:10]}`{notes}\n\n{body}",
        key=artifact_key(session_id, "diff"),
        description=f"Diff of session {session_id}",
    )
    rows = [
        {
            "file": f.path,
            "change": f.kind + (f" from {f.old_path}" if f.old_path else ""),
            "added": f.added,
            "removed": f.removed,
            "binary": f.binary,
            "patch": "stats only" if f.stats_only else "shown",
        }
        for f in diff.files
    ]
    rows.append(
        {
            "file": "TOTAL",
            "change": f"{len(diff.files)} files",
            "added": diff.added,
            "removed": diff.removed,
            "binary": False,
            "patch": f"{sum(f.stats_only for f in diff.files)} stats only",
        }
    )
    create_table_artifact(table=rows, key=artifact_key(session_id, "files"), description="Files changed")


def publish_summary_artifact(session_id: str, markdown: str) -> None:
    """The session summary as markdown."""
    create_markdown_artifact(
        markdown=literal_names(Redactor.from_env()(markdown)),
        key=artifact_key(session_id, "summary"),
        description=f"Summary of session {session_id}",
    )


def publish_usage_artifact(session_id: str, steps: list) -> None:
    """Tokens, cost and model latency per step, as a table."""
    if not steps:
        return
    rows = [
        {
            "step": s.index,
            "tools": ", ".join(c.name for c in s.tool_calls) or "-",
            "prompt_tokens": s.prompt_tokens,
            "completion_tokens": s.completion_tokens,
            "cached_tokens": s.cached_tokens,
            "cost_usd": round(s.cost_usd, 6) if s.cost_usd is not None else None,
            "model_latency_s": round(s.model_latency_s, 3),
        }
        for s in steps
    ]
    known = [s.cost_usd for s in steps if s.cost_usd is not None]
    rows.append(
        {
            "step": "TOTAL",
            "tools": f"{len(steps)} steps",
            "prompt_tokens": sum(s.prompt_tokens for s in steps),
            "completion_tokens": sum(s.completion_tokens for s in steps),
            "cached_tokens": sum(s.cached_tokens for s in steps),
            "cost_usd": round(sum(known), 6) if known else None,
            "model_latency_s": round(sum(s.model_latency_s for s in steps), 3),
        }
    )
    create_table_artifact(table=rows, key=artifact_key(session_id, "usage"), description="Usage per step")


class ProgressArtifact:
    """Steps used out of the maximum, as a Prefect progress artifact."""

    EVERY_S = 1.0  # at most one update a second: each is a request to the Prefect API (~15 ms a step otherwise)

    def __init__(self, session_id: str, max_steps: int):
        self.max_steps = max_steps
        self.id: UUID = create_progress_artifact(
            progress=0.0, key=artifact_key(session_id, "progress"), description=f"0 of {max_steps} steps"
        )
        self.shown, self.at = 0, 0.0

    def update(self, steps: int, final: bool = False) -> None:
        """Show ``steps`` used (skipped when the last update is under a second old, unless ``final``)."""
        now = time.monotonic()
        if steps == self.shown or (not final and now - self.at < self.EVERY_S):
            return
        self.shown, self.at = steps, now
        update_progress_artifact(
            artifact_id=self.id,
            progress=min(100.0, 100.0 * steps / self.max_steps),
            description=f"{steps} of {self.max_steps} steps",
        )
