"""Prefect artifacts of a session: summary and diff (markdown), per-file stats (table), progress."""

from __future__ import annotations

from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from tasks_lib.models import DiffResult
from tasks_lib.secrets import Redactor

DIFF_ARTIFACT_CAP = 200_000  # characters of the patch shown in the diff artifact


def artifact_key(session_id: str, what: str) -> str:
    """An artifact key (lowercase letters, digits, dashes) for one session."""
    return f"agent-{what}-{session_id.replace('-', '')[:12]}"


def publish_diff_artifacts(session_id: str, diff: DiffResult) -> None:
    """The diff as markdown and its per-file stats as a table."""
    redact = Redactor.from_env()
    patch = redact(diff.patch_text)
    if len(patch) > DIFF_ARTIFACT_CAP:
        patch = patch[:DIFF_ARTIFACT_CAP] + f"\n... diff cut here; full diff: agent-tasks show {session_id} --diff\n"
    body = f"```diff\n{patch}```" if patch else "_No changes._"
    create_markdown_artifact(
        markdown=f"# Diff\n\n{diff.diffstat()} against `{diff.base_commit[:10]}`\n\n{body}",
        key=artifact_key(session_id, "diff"),
        description=f"Diff of session {session_id}",
    )
    rows = [
        {"file": f.path, "change": f.kind + (f" from {f.old_path}" if f.old_path else ""), "added": f.added,
         "removed": f.removed, "binary": f.binary}
        for f in diff.files
    ]
    rows.append({"file": "TOTAL", "change": f"{len(diff.files)} files", "added": diff.added, "removed": diff.removed, "binary": False})
    create_table_artifact(table=rows, key=artifact_key(session_id, "files"), description="Files changed")


def publish_summary_artifact(session_id: str, markdown: str) -> None:
    """The session summary as markdown."""
    create_markdown_artifact(
        markdown=Redactor.from_env()(markdown), key=artifact_key(session_id, "summary"), description=f"Summary of session {session_id}"
    )


class ProgressArtifact:
    """Steps used out of the maximum, as a Prefect progress artifact."""

    def __init__(self, session_id: str, max_steps: int):
        self.max_steps = max_steps
        self.id: UUID = create_progress_artifact(
            progress=0.0, key=artifact_key(session_id, "progress"), description=f"0 of {max_steps} steps"
        )

    def update(self, steps: int) -> None:
        """Show ``steps`` used."""
        update_progress_artifact(
            artifact_id=self.id, progress=min(100.0, 100.0 * steps / self.max_steps), description=f"{steps} of {self.max_steps} steps"
        )
