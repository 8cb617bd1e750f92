"""Where agent-tasks keeps its files and how it finds its model: read from the environment."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel


class Settings(BaseModel):
    """Resolved configuration of one process."""

    home: Path
    db_url: str
    default_model: str | None
    model_retry_delay_s: float
    model_max_retries: int
    model_timeout_s: float
    review_timeout_s: int
    review_poll_s: int
    max_change_rounds: int
    max_retry_rounds: int = 3
    allow_sqlite_deployments: bool = False
    sandbox: str = "auto"
    sandbox_expose: list[str] = []
    review_url: str | None = None  # base URL of the review pages (`agent-tasks up` serves them), for links

    def review_page(self, session_id: str) -> str | None:
        """The address of one session's review page, when review pages are served."""
        return f"{self.review_url.rstrip('/')}/sessions/{session_id}" if self.review_url else None

    @property
    def mirrors_dir(self) -> Path:
        """Directory holding one bare mirror per repository."""
        return self.home / "mirrors"

    @property
    def workspaces_dir(self) -> Path:
        """Directory holding one workspace (a checkout with its own git directory) per session."""
        return self.home / "workspaces"

    @property
    def sandboxes_dir(self) -> Path:
        """Directory holding each session's private /tmp and home for its sandboxed commands."""
        return self.home / "sandboxes"


def deployment_store_problem(settings: Settings) -> str | None:
    """Why a deployment run must not use this store (a SQLite file only this machine sees), or None."""
    if not settings.db_url.startswith("sqlite") or settings.allow_sqlite_deployments:
        return None
    return ("this deployment run would record its session in a SQLite file only this machine sees "
            f"({settings.db_url.removeprefix('sqlite:///')}), so a review resumed on another worker would find nothing: "
            "set AGENT_TASKS_DB_URL to the team's PostgreSQL store, or AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS=1 when "
            "every run and review happens on this one machine")


class SettingsError(ValueError):
    """A setting in the environment that cannot be used; the message names it."""


def load_settings() -> Settings:
    """Read the settings from the environment (AGENT_TASKS_*), applying the defaults."""
    sandbox = (os.environ.get("AGENT_TASKS_SANDBOX") or "auto").strip().lower()
    if sandbox not in ("auto", "bwrap", "none"):
        raise SettingsError(f"AGENT_TASKS_SANDBOX={sandbox!r}: use auto, bwrap or none")
    expose = [p for p in (os.environ.get("AGENT_TASKS_SANDBOX_EXPOSE") or "").split(":") if p.strip()]
    home = Path(os.environ.get("AGENT_TASKS_HOME") or Path.home() / ".agent-tasks").expanduser()
    db_url = os.environ.get("AGENT_TASKS_DB_URL") or f"sqlite:///{home / 'agent-tasks.db'}"
    return Settings(
        home=home,
        db_url=db_url,
        default_model=os.environ.get("AGENT_TASKS_MODEL") or None,
        model_retry_delay_s=float(os.environ.get("AGENT_TASKS_MODEL_RETRY_DELAY", "2")),
        model_max_retries=int(os.environ.get("AGENT_TASKS_MODEL_MAX_RETRIES", "4")),
        model_timeout_s=float(os.environ.get("AGENT_TASKS_MODEL_TIMEOUT", "180")),
        review_timeout_s=int(os.environ.get("AGENT_TASKS_REVIEW_TIMEOUT", str(7 * 24 * 3600))),
        review_poll_s=int(os.environ.get("AGENT_TASKS_REVIEW_POLL", "5")),
        max_change_rounds=int(os.environ.get("AGENT_TASKS_MAX_CHANGE_ROUNDS", "5")),
        max_retry_rounds=int(os.environ.get("AGENT_TASKS_MAX_RETRY_ROUNDS", "3")),
        allow_sqlite_deployments=(os.environ.get("AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS") or "").lower() in ("1", "true", "yes"),
        sandbox=sandbox,
        sandbox_expose=[str(Path(p.strip()).expanduser()) for p in expose],
        review_url=os.environ.get("AGENT_TASKS_REVIEW_URL") or None,
    )
