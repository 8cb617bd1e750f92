"""The agent's tools, confined to one workspace. Tool names and arguments are part of the interface."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from tasks_lib.agent.edits import EditError, apply_edit, around
from tasks_lib.agent.policy import ALL_TOOLS, PATH_TOOLS, ToolPolicy
from tasks_lib.agent.reading import MAX_READ_LINES, count_lines, read_lines, read_note
from tasks_lib.agent.tool_specs import (
    TOOL_ARGS,
    EditFileArgs,
    ListFilesArgs,
    ReadFileArgs,
    RunCommandArgs,
    SearchArgs,
    WriteFileArgs,
    tool_schema,
    tool_signature,
)
from tasks_lib.environments import DEFAULT_OUTPUT_CAP, CommandResult, Environment
from tasks_lib.errors import AgentTasksError
from tasks_lib.git.cli import HARDENING
from tasks_lib.git.paths import shown_name, unquote
from tasks_lib.security.confine import PathRefused, relative, resolve_inside

MAX_LIST_ENTRIES = 1000
MAX_SEARCH_MATCHES = 200
MAX_LINE_CHARS = 400
SEARCH_OUTPUT_CAP = 2 * MAX_SEARCH_MATCHES * (MAX_LINE_CHARS + 200)  # bytes of `git grep` output read (head kept)
MAX_COMMAND_TIMEOUT_S = 1800
GIT_OUTPUT_CAP = 8 * 1024 * 1024  # bytes of `git ls-files` output read
GIT_TIMEOUT_S = 60


class ToolError(AgentTasksError):
    """A tool call that cannot be carried out; the message goes back to the model."""


class ToolOutcome(BaseModel):
    """The text a tool returns to the model, whether the call succeeded, and whether a rule refused it.

    ``invalid`` marks a call that could not even be understood (unknown tool, unreadable arguments).
    """

    output: str
    ok: bool = True
    finished: bool = False
    denied: bool = False
    invalid: bool = False


class Toolbox:
    """The tools of one workspace: schemas for the model, and execution of its calls.

    File tools work on the workspace directly, confined to it; every process a tool starts (the
    shell, git for search and listing) runs in the session's environment.
    """

    def __init__(
        self,
        root: str | Path,
        tools: tuple[str, ...] | ToolPolicy = ALL_TOOLS,
        command_timeout_s: int = 120,
        output_cap: int = DEFAULT_OUTPUT_CAP,
        environment: Environment | None = None,
    ):
        self.root = Path(root).resolve()
        if environment is None:
            from tasks_lib.environments.local import LocalEnvironment

            environment = LocalEnvironment(self.root)
        self.environment = environment
        self.policy = tools if isinstance(tools, ToolPolicy) else ToolPolicy(allowed={t: None for t in tools})
        self.tools = self.policy.tools
        self.command_timeout_s = command_timeout_s
        self.output_cap = output_cap
        self.deadline: float | None = None  # time.monotonic() by which the loop's wall-time budget runs out
        self._impl: dict[str, Callable[[Any], ToolOutcome]] = {
            "list_files": self._list_files,
            "read_file": self._read_file,
            "search": self._search,
            "edit_file": self._edit_file,
            "write_file": self._write_file,
            "run_command": self._run_command,
            "finish": lambda a: ToolOutcome(output=a.summary, finished=True),
        }

    def schemas(self) -> list[dict[str, Any]]:
        """Function schemas of the tools offered to the model."""
        return [tool_schema(name) for name in self.tools]

    def signatures(self) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
        """For each offered tool: its required argument names, and every argument name it accepts."""
        out = {}
        for name in self.tools:
            fields = TOOL_ARGS[name].model_fields
            required = frozenset(f for f, info in fields.items() if info.is_required())
            accepted = set(fields)
            for info in fields.values():
                accepted.update(getattr(info.validation_alias, "choices", []) or [])
            out[name] = (required, frozenset(accepted))
        return out

    def execute(self, name: str, arguments: str | dict[str, Any]) -> ToolOutcome:
        """Run one tool call; every failure becomes an error message for the model, never an exception."""
        if name not in self.tools:
            offered = ", ".join(tool_signature(t) for t in self.tools)
            return ToolOutcome(
                output=f"error: there is no tool {name!r}; the tools are: {offered}", ok=False, invalid=True
            )
        expects = f"{name} expects {tool_signature(name)}"
        try:
            raw = json.loads(arguments or "{}") if isinstance(arguments, str) else arguments
            if not isinstance(raw, dict):
                raise ValueError("the arguments must be a JSON object")
            args = TOOL_ARGS[name].model_validate(raw)
        except ValueError as exc:  # JSONDecodeError and ValidationError are ValueErrors
            if isinstance(exc, ValidationError):
                problem = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
            else:
                problem = f"arguments are not valid JSON: {exc}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            return ToolOutcome(output=f"error: invalid call of {name}: {problem}. {expects}", ok=False, invalid=True)
        try:
            checked = args.model_dump()
            if name in PATH_TOOLS:  # rules apply to where the path really leads, not to how it is written
                checked["path"] = self._rel(
                    self.resolve(checked["path"], for_write=name in ("write_file", "edit_file"))
                )
            refusal = self.policy.check(name, checked)
            if refusal:
                return ToolOutcome(output=f"error: {refusal}", ok=False, denied=True)
            return self._impl[name](args)
        except ToolError as exc:
            return ToolOutcome(output=f"error: {exc}", ok=False)
        except OSError as exc:
            return ToolOutcome(output=f"error: {exc.strerror or exc}", ok=False)
        except Exception as exc:  # any other failure inside a tool is still only an observation for the model
            return ToolOutcome(output=f"error: {name} failed: {type(exc).__name__}: {exc}", ok=False)

    def has_changes(self) -> bool:
        """True when the workspace differs from the commit it started from (new, changed or deleted files)."""
        from tasks_lib.git.cli import GitError, run_git

        try:
            status = run_git("status", "--porcelain", "--untracked-files=all", cwd=self.root, timeout_s=GIT_TIMEOUT_S)
        except GitError:
            return True  # cannot tell: do not hold the agent back
        return bool(status.text)

    # --- paths -----------------------------------------------------------------------------------

    def resolve(self, path: str, for_write: bool = False) -> Path:
        """The absolute path of ``path`` inside the workspace; refuses anything that leaves it or enters `.git`."""
        try:
            return resolve_inside(self.root, path, for_write)
        except PathRefused as exc:
            raise ToolError(str(exc)) from None

    def _rel(self, path: Path) -> str:
        return relative(self.root, path)

    # --- tools -----------------------------------------------------------------------------------

    def _git(self, *args: str, check: bool = True, output_cap: int = GIT_OUTPUT_CAP) -> CommandResult:
        """git, run in the session's environment like any other process the agent causes."""
        result = self.environment.execute(
            ["git", "--no-pager", *HARDENING, *args], timeout_s=GIT_TIMEOUT_S, output_cap=output_cap
        )
        if result.timed_out:
            raise ToolError(f"git {args[0]} timed out after {GIT_TIMEOUT_S} s")
        if check and result.exit_code != 0:
            raise ToolError(result.output.strip() or f"git {args[0]} failed")
        return result

    def _list_files(self, args: ListFilesArgs) -> ToolOutcome:
        target = self.resolve(args.path)
        if not target.exists():
            raise ToolError(f"{args.path}: no such directory")
        if target.is_file():
            return ToolOutcome(output=self._rel(target))
        proc = self._git(
            "-c",
            "core.quotePath=true",
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            self._rel(target),
        )
        # An entry is listed when it is there, whatever a link points to (the host's files are not the sandbox's).
        names = {unquote(line) for line in proc.output.splitlines() if line}
        files = sorted(shown_name(n) for n in names if os.path.lexists(os.fsencode(self.root) + b"/" + n))
        if not files:
            return ToolOutcome(output="(no files)")
        shown = files[:MAX_LIST_ENTRIES]
        more = f"\n[... {len(files) - len(shown)} more files; list a subdirectory]" if len(files) > len(shown) else ""
        return ToolOutcome(output="\n".join(shown) + more)

    def _read_file(self, args: ReadFileArgs) -> ToolOutcome:
        target = self.resolve(args.path)
        if not target.is_file():
            raise ToolError(f"{args.path}: no such file" if not target.exists() else f"{args.path}: is a directory")
        size = target.stat().st_size
        start = args.start_line or 1
        if args.end_line is not None and args.end_line < start:
            raise ToolError(f"{args.path}: end_line {args.end_line} is before start_line {start}")
        last = start + MAX_READ_LINES - 1 if args.end_line is None else min(args.end_line, start + MAX_READ_LINES - 1)
        with open(target, "rb") as handle:
            if b"\0" in handle.read(8192):
                raise ToolError(f"{args.path}: binary file ({size} bytes), not shown")
            handle.seek(0)
            page = read_lines(handle, start, last)
            total = page.seen if page.at_end else count_lines(handle, page.seen, size)
        if page.seen and start > page.seen and page.at_end:
            raise ToolError(f"{args.path}: start_line {start} is past the end ({page.seen} lines)")
        end = start + len(page.lines) - 1
        body = "\n".join(f"{n:6}\t{line}" for n, line in enumerate(page.lines, start))
        return ToolOutcome(output=(body or "(empty file)") + read_note(start, end, total, size, page.full))

    def _search(self, args: SearchArgs) -> ToolOutcome:
        try:
            re.compile(args.pattern)
        except re.error as exc:
            raise ToolError(f"invalid regular expression {args.pattern!r}: {exc}") from None
        target = self.resolve(args.path)
        proc = self._git(
            "grep",
            "-n",
            "-I",
            "--untracked",
            "--no-color",
            "-P",
            "-e",
            args.pattern,
            "--",
            self._rel(target),
            check=False,
            output_cap=SEARCH_OUTPUT_CAP,
        )
        if proc.exit_code == 1:
            return ToolOutcome(output="no matches")
        if proc.exit_code != 0:
            raise ToolError(proc.output.strip() or "search failed")
        output = proc.output
        if proc.truncated_bytes:  # only the head is of use: the matches after the cut are not counted
            output = output.split(f"\n[... {proc.truncated_bytes} bytes of output omitted ...]\n", 1)[0]
            output = output.rsplit("\n", 1)[0]  # its last line may be cut
        lines = output.splitlines()
        shown = [
            ln if len(ln) <= MAX_LINE_CHARS else ln[:MAX_LINE_CHARS] + " [...]" for ln in lines[:MAX_SEARCH_MATCHES]
        ]
        if proc.truncated_bytes:
            more = (
                f"\n[... more matches: the search printed {proc.truncated_bytes + len(proc.output)} bytes, more than "
                "is read; narrow the pattern or path]"
            )
        else:
            more = (
                f"\n[... {len(lines) - len(shown)} more matches; narrow the pattern or path]"
                if len(lines) > len(shown)
                else ""
            )
        return ToolOutcome(output="\n".join(shown) + more)

    def _edit_file(self, args: EditFileArgs) -> ToolOutcome:
        target = self.resolve(args.path, for_write=True)
        if not target.is_file():
            raise ToolError(f"{args.path}: no such file (use write_file to create it)")
        text = target.read_text(encoding="utf-8", errors="surrogateescape")
        try:
            edit = apply_edit(text, args.old, args.new, args.replace_all)
        except EditError as exc:
            raise ToolError(f"{args.path}: {exc}") from None
        if edit.text == text:
            raise ToolError(
                f"{args.path}: no change — the new text is the same as the old, so the file is as it was. "
                "Write the text the task needs as new."
            )
        target.write_text(edit.text, encoding="utf-8", errors="surrogateescape")
        note = {
            "whitespace": " (matched ignoring trailing whitespace)",
            "indentation": " (matched ignoring indentation; the new text was indented like the file)",
            "quotes": " (matched ignoring ' against \" quote marks)",
            "all": " (every occurrence)",
        }.get(edit.how, "")
        return ToolOutcome(
            output=f"edited {self._rel(target)}{note}, now lines {edit.first_line}-{edit.last_line}:\n"
            + around(edit.text, edit.first_line, edit.last_line)
        )

    def _write_file(self, args: WriteFileArgs) -> ToolOutcome:
        target = self.resolve(args.path, for_write=True)
        if target.is_dir():
            raise ToolError(f"{args.path}: is a directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        existed = target.exists()
        if existed and target.read_bytes() == args.content.encode("utf-8"):
            raise ToolError(f"{args.path}: no change — the file already holds exactly this content")
        target.write_text(args.content, encoding="utf-8")
        return ToolOutcome(
            output=f"{'overwrote' if existed else 'created'} {self._rel(target)} ({len(args.content)} characters)"
        )

    def _run_command(self, args: RunCommandArgs) -> ToolOutcome:
        timeout = min(args.timeout or self.command_timeout_s, MAX_COMMAND_TIMEOUT_S)
        if self.deadline is not None:  # a command never runs past the session's time budget
            timeout = max(min(timeout, self.deadline - time.monotonic()), 1)
        result = self.environment.execute(args.command, timeout_s=timeout, output_cap=self.output_cap)
        return ToolOutcome(output=result.render(), ok=result.exit_code == 0)
