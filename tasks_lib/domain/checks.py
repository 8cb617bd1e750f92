"""A hidden check: acceptance tests an agent must pass but may not read or change — a command, and a folder of
files the orchestrator lays over a copy of the workspace before running it there."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator


class HiddenCheck(BaseModel):
    """The check's command, the folder of its files (kept from the agent) and the fix rounds it gets."""

    model_config = ConfigDict(extra="forbid")

    command: str = Field(description="Run in a copy of the workspace with the files laid over it, e.g. pytest -q.")
    files: str = Field(
        description="A folder on the worker whose files are laid over the copy (the agent never sees it)."
    )
    fix_rounds: int = Field(default=1, ge=0, le=20, description="Times a failing check goes back to the agent.")
    timeout_minutes: float = Field(default=10, gt=0)

    @field_validator("command")
    @classmethod
    def _command(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the hidden check needs a command")
        return value.strip()

    @field_validator("files")
    @classmethod
    def _folder(cls, value: str) -> str:
        path = Path(value).expanduser()
        if not path.is_dir():
            raise ValueError(f"{value}: the hidden check's files must be a folder on this worker")
        return str(path.resolve())
