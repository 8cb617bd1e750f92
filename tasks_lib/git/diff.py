"""Capture a workspace's full change against its base commit, as a re-appliable patch with stats, within limits.

The stats come first (``git diff --numstat``, ``--raw``), for every file. The patch is then read as a
stream, one file's section at a time, and keeps only what fits the limits (:class:`DiffLimits`): a
file whose patch is too big, or that no longer fits the whole patch, is shown as stats only. Such a
patch starts with one ``agent-tasks omitted: {json}`` line per file it leaves out (git apply and
unidiff skip lines before the first ``diff --git``), so whoever re-applies it knows it is incomplete.

Directories that hold what a setup installs or a run caches (:data:`DEFAULT_IGNORED_DIRS`) are not
part of the change when the base commit tracks nothing in them, even if no ``.gitignore`` says so.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, NamedTuple

from tasks_lib.config import DIFF_MAX_BYTES, DIFF_MAX_FILE_BYTES, DIFF_MAX_FILES, load_settings
from tasks_lib.domain.records import DiffResult, FileChange
from tasks_lib.errors import AgentTasksError
from tasks_lib.git.cli import GitError, git_command, run_git
from tasks_lib.git.paths import shown_name

DIFF_TIMEOUT_S = 300
DIFF_OPTIONS = ("--binary", "-M", "--no-color", "--no-ext-diff", "--no-textconv")
STAT_OPTIONS = ("-M", "--no-color", "--no-ext-diff", "--no-textconv", "-z")
# Directory names left out of the diff (and of an accept commit) when nothing in them is tracked at the base.
DEFAULT_IGNORED_DIRS = (
    "node_modules",
    ".venv",
    "venv",
    "__pycache__",
    ".tox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
)
OMITTED_PREFIX = b"agent-tasks omitted: "
SECTION_START = b"\ndiff --git "
CHUNK = 1 << 20


class DiffError(AgentTasksError, RuntimeError):
    """The diff could not be taken."""


class DiffLimits(NamedTuple):
    """How much of a patch is kept: files with a patch, bytes in all, bytes of one file's patch."""

    max_files: int = DIFF_MAX_FILES
    max_bytes: int = DIFF_MAX_BYTES
    max_file_bytes: int = DIFF_MAX_FILE_BYTES

    @classmethod
    def from_env(cls) -> DiffLimits:
        """The defaults, or AGENT_TASKS_DIFF_MAX_FILES / _MAX_BYTES / _MAX_FILE_BYTES when set."""
        settings = load_settings()
        return cls(settings.diff_max_files, settings.diff_max_bytes, settings.diff_max_file_bytes)

    def describe(self) -> str:
        """The limits in words."""
        return f"{size(self.max_file_bytes)} a file, {size(self.max_bytes)} and {self.max_files} files in all"


def size(n: int) -> str:
    """Bytes for people: '812 B', '4.2 kB', '50.0 MB'."""
    if n < 1000:
        return f"{n} B"
    if n < 1_000_000:
        return f"{n / 1000:.1f} kB"
    return f"{n / 1_000_000:.1f} MB"


def _git(workspace: str | Path, *args: str, env: dict[str, str] | None = None, input: bytes | None = None) -> bytes:
    try:
        return run_git(*args, cwd=workspace, env=env, input=input, timeout_s=DIFF_TIMEOUT_S).stdout
    except GitError as exc:
        raise DiffError(str(exc)) from None


def _index_env(tmp: str) -> dict[str, str]:
    """A throwaway index, so the workspace's own index is left alone."""
    return {"GIT_INDEX_FILE": str(Path(tmp) / "index")}


# --- what is part of the change ------------------------------------------------------------------


def left_out_dirs(workspace: str | Path, env: dict[str, str] | None = None) -> list[str]:
    """Untracked directories named like :data:`DEFAULT_IGNORED_DIRS` that hold nothing the index tracks.

    ``env`` selects the index (the base commit's, read into a throwaway index, or the workspace's own).
    """
    specs = [f":(glob)**/{name}/" for name in DEFAULT_IGNORED_DIRS]
    out = _git(workspace, "ls-files", "-z", "--others", "--exclude-standard", "--directory", "--", *specs, env=env)
    found = [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p.endswith("/")]
    return sorted(p for p in found if p.rstrip("/").rsplit("/", 1)[-1] in DEFAULT_IGNORED_DIRS)


def stage_all(workspace: str | Path, env: dict[str, str] | None = None) -> list[str]:
    """Stage every change of the workspace into the index ``env`` names, but the left-out directories.

    Returns the directories left out. Used for the diff and for the accept commit alike, so what is
    reviewed is what is delivered.
    """
    left_out = left_out_dirs(workspace, env)
    specs = ["."] + [f":(exclude,literal){d}" for d in left_out]
    listing = "\0".join(specs).encode("utf-8", "surrogateescape")
    _git(workspace, "add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul", env=env, input=listing)
    return left_out


# --- stats -----------------------------------------------------------------------------------------


def _raw_entries(out: bytes) -> list[tuple[str, str, str | None]]:
    """(status letter, path, old path of a rename) of each entry of ``git diff --raw -z``."""
    tokens = out.decode("utf-8", "surrogateescape").split("\0")
    entries, i = [], 0
    while i < len(tokens) and tokens[i].startswith(":"):
        status = tokens[i].split()[-1][0]
        if status in "RC":
            entries.append((status, tokens[i + 2], tokens[i + 1]))
            i += 3
        else:
            entries.append((status, tokens[i + 1], None))
            i += 2
    return entries


def _numstat_entries(out: bytes) -> list[tuple[int, int, bool]]:
    """(added, removed, binary) of each entry of ``git diff --numstat -z``."""
    tokens = out.decode("utf-8", "surrogateescape").split("\0")
    entries, i = [], 0
    while i < len(tokens) and tokens[i]:
        added, removed, path = tokens[i].split("\t", 2)
        binary = added == "-"
        entries.append((0 if binary else int(added), 0 if binary else int(removed), binary))
        i += 3 if path == "" else 1  # a rename: old and new path follow as their own tokens
    return entries


KINDS = {"A": "added", "D": "deleted", "R": "renamed"}


def file_stats(workspace: str | Path, diff_args: list[str], env: dict[str, str] | None = None) -> list[FileChange]:
    """Per-file statistics of ``git diff <diff_args>``, without reading any patch."""
    raw = _raw_entries(_git(workspace, "diff", "--raw", "--no-abbrev", *STAT_OPTIONS, *diff_args, env=env))
    nums = _numstat_entries(_git(workspace, "diff", "--numstat", *STAT_OPTIONS, *diff_args, env=env))
    if len(raw) != len(nums):
        raise DiffError(f"git diff listed {len(raw)} files but counted lines of {len(nums)}")
    return [
        FileChange(
            path=shown_name(path),
            old_path=shown_name(old) if old is not None else None,
            kind=KINDS.get(status, "modified"),
            added=added,
            removed=removed,
            binary=binary,
        )
        for (status, path, old), (added, removed, binary) in zip(raw, nums)
    ]


# --- the patch, as a bounded stream ----------------------------------------------------------------


def _chunks(workspace: str | Path, args: list[str], env: dict[str, str] | None) -> Iterator[bytes]:
    """stdout of a git call, as it comes; DiffError when it fails or outlives DIFF_TIMEOUT_S."""
    with tempfile.TemporaryFile() as err:
        command, environment = git_command(args, workspace, env)
        proc = subprocess.Popen(
            command, cwd=str(workspace), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=environment
        )
        timed_out = threading.Event()
        timer = threading.Timer(DIFF_TIMEOUT_S, lambda: (timed_out.set(), proc.kill()))
        timer.start()
        try:
            stream: IO[bytes] = proc.stdout  # type: ignore[assignment]
            while chunk := stream.read(CHUNK):
                yield chunk
            code = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:  # the reader stopped early
                proc.kill()
                proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]
        if timed_out.is_set():
            raise DiffError(f"git {args[0]} timed out after {DIFF_TIMEOUT_S} s")
        if code != 0:
            err.seek(0)
            raise DiffError(f"git {args[0]} failed: {err.read(2000).decode(errors='replace').strip()}")


def sections(chunks: Iterator[bytes], keep_up_to: int) -> Iterator[tuple[bytes | None, int]]:
    """Each file's part of a patch stream as (its bytes, or None when longer than ``keep_up_to``; its length).

    Holds at most ``keep_up_to`` bytes of a section plus one chunk, whatever the patch's size.
    """
    kept: bytearray | None = bytearray()
    length = 0
    pending = bytearray()
    hold = len(SECTION_START) - 1  # a section start may straddle two chunks
    for chunk in chunks:
        pending += chunk
        while (cut := pending.find(SECTION_START)) >= 0:
            yield _close(kept, pending[: cut + 1], length, keep_up_to)
            del pending[: cut + 1]
            kept, length = bytearray(), 0
        if len(pending) > hold:
            body = pending[:-hold]
            length += len(body)
            if kept is not None and length <= keep_up_to:
                kept += body
            else:
                kept = None
            del pending[:-hold]
    if length or pending:
        yield _close(kept, pending, length, keep_up_to)


def _close(kept: bytearray | None, tail: bytes | bytearray, length: int, keep_up_to: int) -> tuple[bytes | None, int]:
    length += len(tail)
    if kept is None or length > keep_up_to:
        return None, length
    return bytes(kept + tail), length


def omitted_line(change: FileChange) -> bytes:
    """The line a trimmed patch starts with for one file it leaves out."""
    record = {
        "path": change.path,
        "old_path": change.old_path,
        "kind": change.kind,
        "added": change.added,
        "removed": change.removed,
        "patch_bytes": change.patch_bytes,
    }
    return OMITTED_PREFIX + json.dumps(record).encode() + b"\n"


def omitted_files(patch: bytes) -> list[dict]:
    """The files a stored patch says it leaves out (empty for a complete patch)."""
    found = []
    for line in patch[: 1 << 20].split(b"\n"):  # the lines come first: stop at the first file's section
        if line.startswith(b"diff --git "):
            break
        if line.startswith(OMITTED_PREFIX):
            found.append(json.loads(line[len(OMITTED_PREFIX) :]))
    return found


def bounded_patch(
    workspace: str | Path,
    diff_args: list[str],
    files: list[FileChange],
    limits: DiffLimits,
    env: dict[str, str] | None = None,
) -> bytes:
    """The patch of ``git diff <diff_args>`` within ``limits``; marks each file left out as ``stats_only``."""
    parts: list[bytes] = []
    total = 0
    stream = sections(_chunks(workspace, ["diff", *DIFF_OPTIONS, *diff_args], env), limits.max_file_bytes)
    for index, (section, length) in enumerate(stream):
        if index >= len(files):
            raise DiffError("git diff printed more files than it listed")
        files[index].patch_bytes = length
        fits = section is not None and total + length <= limits.max_bytes and len(parts) < limits.max_files
        if fits:
            parts.append(section)  # type: ignore[arg-type]
            total += length
        else:
            files[index].stats_only = True
    header = b"".join(omitted_line(f) for f in files if f.stats_only)
    return header + b"".join(parts)


def trimmed_note(files: list[FileChange], limits: DiffLimits) -> str | None:
    """One line for people when the patch leaves files out, else None."""
    out = [f for f in files if f.stats_only]
    if not out:
        return None
    n = len(out)
    return (
        f"diff trimmed: {n} file{'s' if n != 1 else ''} ({size(sum(f.patch_bytes for f in out))} of patch) shown as "
        f"stats only (limits: {limits.describe()}); the workspace has the full change"
    )


def _result(
    workspace: str | Path, base_commit: str, diff_args: list[str], limits: DiffLimits, env: dict[str, str] | None
) -> DiffResult:
    files = file_stats(workspace, diff_args, env)
    patch = bounded_patch(workspace, diff_args, files, limits, env) if files else b""
    return DiffResult(
        base_commit=base_commit,
        files=files,
        added=sum(f.added for f in files),
        removed=sum(f.removed for f in files),
        patch=patch,
        trimmed=trimmed_note(files, limits),
    )


# --- the two diffs a session keeps -----------------------------------------------------------------


def capture_workspace_diff(workspace: str | Path, base_commit: str, limits: DiffLimits | None = None) -> DiffResult:
    """The workspace's change against the base commit: stats of every file, the patch within the limits.

    Uses a throwaway index, so the workspace's own index and files are left as they are.
    """
    limits = limits or DiffLimits.from_env()
    with tempfile.TemporaryDirectory(prefix="agent-diff-") as tmp:
        env = _index_env(tmp)
        _git(workspace, "read-tree", base_commit, env=env)
        left_out = stage_all(workspace, env)
        result = _result(workspace, base_commit, ["--cached", base_commit], limits, env)
    result.left_out = left_out
    return result


def _tree(workspace: str | Path, base_commit: str, env: dict[str, str], patch: bytes | None) -> str:
    _git(workspace, "read-tree", base_commit, env=env)
    if patch is None:
        stage_all(workspace, env)
    elif patch:
        _git(
            workspace, "apply", "--cached", "--binary", "--allow-empty", "-", env=env, input=patch
        )  # may name files only
    return _git(workspace, "write-tree", env=env).decode().strip()


def capture_increment(
    workspace: str | Path, base_commit: str, previous_patch: bytes, limits: DiffLimits | None = None
) -> DiffResult:
    """The change since the last reviewed state (base commit + its patch) to the workspace now.

    Files the previous patch left out cannot be compared with what the last review saw: they are
    left out of the increment too, and its ``trimmed`` line says so.
    """
    limits = limits or DiffLimits.from_env()
    unknown = sorted({p for f in omitted_files(previous_patch) for p in (f["path"], f.get("old_path")) if p})
    with tempfile.TemporaryDirectory(prefix="agent-diff-") as tmp:
        env = _index_env(tmp)
        before = _tree(workspace, base_commit, env, previous_patch)
        after = _tree(workspace, base_commit, env, None)
        specs = ["--", "."] + [f":(exclude,literal){p}" for p in unknown] if unknown else []
        result = _result(workspace, base_commit, [before, after, *specs], limits, None)
    if unknown:
        note = f"not compared with the last review (shown as stats only there): {', '.join(unknown[:10])}"
        note += f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        result.trimmed = f"{result.trimmed}; {note}" if result.trimmed else note
    return result
