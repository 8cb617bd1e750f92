"""A session as plain data: the inbox line and the whole record, for JSON, pages and notifications."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any


def ui_url(flow_run_id: str | None) -> str:
    """The Prefect UI page of a flow run, when a Prefect server address is configured."""
    base = os.environ.get("PREFECT_UI_URL") or os.environ.get("PREFECT_API_URL", "").removesuffix("/").removesuffix(
        "/api"
    )
    return f"{base}/runs/flow-run/{flow_run_id}" if base and flow_run_id else "-"


def session_line(r) -> dict[str, Any]:
    """The inbox fields of one session."""
    return {
        "id": r.id,
        "status": r.status,
        "agent": r.agent,
        "repository": r.repository,
        "branch": r.branch,
        "reviewer": r.reviewer,
        "iteration": r.iteration,
        "lines_added": r.lines_added,
        "lines_removed": r.lines_removed,
        "cost_usd": r.cost_usd,
        "created_at": r.created_at.isoformat() if r.created_at else None,
        "reason": r.status_reason,
        "ui_url": ui_url(r.flow_run_id),
    }


def diff_data(d) -> dict[str, Any] | None:
    """A stored diff (a DiffRow) as data: base commit, files, counts and the patch as text."""
    if d is None:
        return None
    return {
        "base_commit": d.base_commit,
        "files": d.files,
        "added": d.added,
        "removed": d.removed,
        "patch": d.patch.decode("utf-8", errors="replace"),
    }


def session_json(store, row) -> dict[str, Any]:
    """Everything about a session as JSON-ready data."""
    columns = {c.name: getattr(row, c.name) for c in row.__table__.columns}
    data = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in columns.items()}
    d = store.latest_diff(row.id)
    s = store.latest_summary(row.id)
    data["diff"] = diff_data(d)
    data["summary"] = None if s is None else {"markdown": s.markdown, "facts": s.facts}
    data["steps"] = [step.model_dump(mode="json") for step in store.steps(row.id)]
    data["conversation"] = None  # the agent's messages; large, and already shown as steps
    data["history"] = [
        {
            "iteration": r.iteration,
            "decision": r.decision,
            "feedback": r.feedback,
            "instructions": r.instructions,
            "comments": r.comments or [],
            "outcome": r.outcome,
            "decided_at": r.decided_at.isoformat(),
        }
        for r in store.reviews(row.id)
    ]
    data["iterations"] = [
        {"iteration": d.iteration, "scope": d.scope, "files": d.files, "added": d.added, "removed": d.removed}
        for d in store.diffs(row.id)
    ]
    data["checks"] = [
        {
            "iteration": c.iteration,
            "fix_round": c.fix_round,
            "command": c.command,
            "passed": c.passed,
            "exit_code": c.exit_code,
            "duration_s": c.duration_s,
            "output_tail": c.output_tail,
        }
        for c in store.checks(row.id)
    ]
    data["transitions"] = [
        {"from": t.from_status, "to": t.to_status, "reason": t.reason, "by": t.by, "at": t.at.isoformat()}
        for t in store.transitions(row.id)
    ]
    data["ui_url"] = ui_url(row.flow_run_id)
    return data
