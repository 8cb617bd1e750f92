"""The agent's tools as the model sees them: their arguments, descriptions, signatures and function schemas."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class ListFilesArgs(BaseModel):
    path: str = Field(default=".", description="Directory relative to the repository root.")


class ReadFileArgs(BaseModel):
    path: str = Field(description="File path relative to the repository root.")
    start_line: int | None = Field(default=None, ge=1, description="First line to show (1-based).")
    end_line: int | None = Field(default=None, ge=1, description="Last line to show (inclusive).")


class SearchArgs(BaseModel):
    pattern: str = Field(min_length=1, description="Regular expression (Perl syntax).")
    path: str = Field(default=".", description="Directory or file to search in.")


class EditFileArgs(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    path: str = Field(description="File path relative to the repository root.")
    old: str = Field(
        description="Exact text to replace (unique in the file unless replace_all).",
        validation_alias=AliasChoices("old", "old_str", "old_string", "old_text"),
    )
    new: str = Field(
        description="Replacement text.", validation_alias=AliasChoices("new", "new_str", "new_string", "new_text")
    )
    replace_all: bool = Field(default=False, description="Replace every occurrence.")


class WriteFileArgs(BaseModel):
    path: str = Field(description="File path relative to the repository root.")
    content: str = Field(description="The whole new content of the file.")


class RunCommandArgs(BaseModel):
    command: str = Field(min_length=1, description="Shell command, run with bash in the repository root.")
    timeout: int | None = Field(default=None, ge=1, description="Seconds before the command is killed.")


class FinishArgs(BaseModel):
    summary: str = Field(description="What you did and why, for the reviewer.")


TOOL_DESCRIPTIONS = {
    "list_files": "List the files under a directory of the repository (git-ignored files are left out).",
    "read_file": "Read a text file, optionally a range of lines. Lines are prefixed with their numbers.",
    "search": "Search file contents with a regular expression; returns path:line:text matches.",
    "edit_file": "Replace the exact text `old` with `new` in a file.",
    "write_file": "Create or overwrite a file with the given content.",
    "run_command": "Run a shell command in the repository root (non-interactive, with a timeout). The repository's "
    ".git is read-only: read history with git log/diff/show, but do not stage or commit; your changes "
    "to the files are recorded for you.",
    "finish": "Call when the task is done, with a summary of what you did and why.",
}
TOOL_ARGS: dict[str, type[BaseModel]] = {
    "list_files": ListFilesArgs,
    "read_file": ReadFileArgs,
    "search": SearchArgs,
    "edit_file": EditFileArgs,
    "write_file": WriteFileArgs,
    "run_command": RunCommandArgs,
    "finish": FinishArgs,
}


def tool_signature(name: str) -> str:
    """How a tool is called, in one line: ``edit_file(path, old, new, replace_all?)``."""
    fields = TOOL_ARGS[name].model_fields
    return f"{name}(" + ", ".join(f + ("" if info.is_required() else "?") for f, info in fields.items()) + ")"


def tool_schema(name: str) -> dict[str, Any]:
    """The OpenAI-style function schema of one tool."""
    schema = TOOL_ARGS[name].model_json_schema(by_alias=False)
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
        # Optional[int] renders as anyOf [int, null]; plain types are friendlier to small models.
        if "anyOf" in prop:
            kinds = [k for k in prop.pop("anyOf") if k.get("type") != "null"]
            prop.update(kinds[0])
    return {
        "type": "function",
        "function": {"name": name, "description": TOOL_DESCRIPTIONS[name], "parameters": schema},
    }
