"""One agent file read: Markdown with a YAML front matter (settings), whose body is the prompt.

Besides our own format, Continue's `.continue/agents/*.md` files load unchanged (their `name`,
`description`, `model`, `tools` and `rules` mean the same here), Claude Code subagents
(`.claude/agents/*.md`) and GitHub Copilot custom agents (`.github/agents/*.md`, `*.agent.md`) are
translated field by field (tasks_lib.agent.formats). Where agents are looked up by name: catalog.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tasks_lib.agent.formats import FOREIGN, FORMAT_DIRS, FormatError, FormatName, Translation, close_match, translate
from tasks_lib.agent.spec import LOADER_FIELDS, OPERATOR_FIELDS, AgentFileError, AgentSpec, settable_fields


def split_front_matter(text: str, source: str) -> tuple[dict[str, Any], str]:
    """The YAML front matter (a mapping) and the body of a Markdown file."""
    if not text.startswith("---"):
        return {}, text
    lines = text.split("\n")
    try:
        end = next(i for i, line in enumerate(lines[1:], start=1) if line.strip() == "---")
    except StopIteration:
        raise AgentFileError(f"{source}: front matter: no closing '---' line") from None
    try:
        front = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark else ""
        raise AgentFileError(
            f"{source}: front matter is not valid YAML{where}: {getattr(exc, 'problem', exc)}"
        ) from None
    if not isinstance(front, dict):
        raise AgentFileError(f"{source}: front matter must be a mapping of fields")
    return front, "\n".join(lines[end + 1 :])


def agent_stem(path: str) -> str:
    """The name a file gives its agent: `explainer.md` and Copilot's `explainer.agent.md` are both `explainer`."""
    name = Path(path).name
    return name.removesuffix(".md").removesuffix(".agent") if name.endswith(".agent.md") else name.removesuffix(".md")


def format_of(path: str) -> FormatName:
    """The format of an agent file, from the folder it is in (our own format outside the known folders)."""
    parent = Path(path.removeprefix("repository:")).parent.as_posix()
    for folder, fmt in FORMAT_DIRS:
        if parent == folder or parent.endswith(f"/{folder}"):
            return fmt
    return "agent-tasks"


def _translated(front: dict[str, Any], fmt: FormatName, source: str) -> tuple[dict[str, Any], Translation]:
    """The front matter in our field names (foreign formats translated; ours checked for loader fields)."""
    if fmt in FOREIGN:
        try:
            translation = translate(front, FOREIGN[fmt], settable_fields())
        except FormatError as exc:
            raise AgentFileError(f"{source}: {exc}") from None
        return translation.fields, translation
    for reserved in LOADER_FIELDS:
        if reserved in front:
            why = "the prompt is the file's body" if reserved == "prompt" else "set by the loader"
            raise AgentFileError(f"{source}: field '{reserved}': unknown field ({why})")
    return front, Translation(fields=front)


def _validation_message(exc: ValidationError, source: str, renamed: dict[str, str]) -> str:
    """One line naming the file, the field (as the file spells it) and the problem."""
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else "front matter"
    if err["type"] == "extra_forbidden":
        guess = close_match(field, settable_fields(), cutoff=0.6)
        problem = "unknown field" + (f"; did you mean {guess}?" if guess else "")
    else:
        problem = err["msg"].removeprefix("Value error, ")
    return f"{source}: field '{renamed.get(field, field)}': {problem}"


def parse_agent_file(text: str, source: str, trusted: bool = True, fmt: FormatName | None = None) -> AgentSpec:
    """Parse an agent file's text; raise AgentFileError naming the field and the problem.

    ``fmt`` defaults to the format of the folder ``source`` is in. Untrusted files (from a repository)
    may not set the operator's fields (OPERATOR_FIELDS).
    """
    fmt = fmt or format_of(source)
    raw, body = split_front_matter(text, source)
    front, translation = _translated(raw, fmt, source)
    if not trusted:
        for field, why in OPERATOR_FIELDS.items():
            if front.get(field) is not None:
                raise AgentFileError(
                    f"{source}: field '{field}': not allowed in a repository's agent file ({why}); "
                    "set it in your own agents (~/.agent-tasks/agents), the workflow or the run instead"
                )
    if front.get("model") and front.get("models"):
        raise AgentFileError(
            f"{source}: set 'model' (one model) or 'models' (the models used in turn, the first to start), not both"
        )
    front.setdefault("name", agent_stem(source))
    loaded = {
        "prompt": body.strip(),
        "source": source,
        "file_format": fmt,
        "ignored_fields": translation.ignored,
        "file_notes": translation.notes,
    }
    try:
        return AgentSpec.model_validate({**front, **loaded})
    except ValidationError as exc:
        renamed = {"max_steps": "maxTurns"} if "maxTurns" in raw else {}
        raise AgentFileError(_validation_message(exc, source, renamed)) from None


def read_agent_file(path: Path, fmt: FormatName | None = None) -> AgentSpec:
    """Load an agent file from disk (its format from its folder unless ``fmt`` is given)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AgentFileError(f"{path}: agent file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AgentFileError(f"{path}: cannot read agent file: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_agent_file(text, str(path), fmt=fmt)
