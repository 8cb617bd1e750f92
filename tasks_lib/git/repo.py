"""Git plumbing for sessions: repository addresses, bare mirrors, branches and session workspaces.

Each repository has one bare mirror (fetched by the orchestrator, never writable from a sandbox).
Each session gets its own workspace with its own git directory — config, hooks, refs, index — that
borrows the mirror's objects through `objects/info/alternates`, so nothing is copied and nothing one
session does to its git directory reaches the mirror or another session.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks_lib.config import load_settings
from tasks_lib.errors import AgentTasksError
from tasks_lib.git.cli import GitError, git_text, run_git
from tasks_lib.security.secrets import strip_credentials

REMOTE_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[^/\s]+@[^/\s:]+:)", re.IGNORECASE)
FETCH_TIMEOUT_S = 600
SET_HEAD_TIMEOUT_S = 60


class RepositoryError(AgentTasksError, ValueError):
    """A repository or branch that cannot be used, with a message for a person."""


def normalize_repository(repository: str) -> str:
    """The repository as a git can fetch it: a URL unchanged, a local path made absolute and checked."""
    repository = repository.strip()
    if REMOTE_URL.match(repository):
        if repository.lower().startswith("file://"):
            local = Path(repository[len("file://") :])
            if not local.exists():
                raise RepositoryError(f"repository not found: {repository}")
        return repository
    path = Path(repository).expanduser()
    if not path.exists():
        raise RepositoryError(f"repository not found: {repository} (no such directory)")
    path = path.resolve()
    if not (path / ".git").exists() and not (path / "HEAD").is_file():
        raise RepositoryError(f"not a git repository: {path}")
    return str(path)


def is_local(repository: str) -> bool:
    """True when the repository is a path or file:// URL on this machine."""
    return not REMOTE_URL.match(repository) or repository.lower().startswith("file://")


def slugify(text: str, max_len: int = 40) -> str:
    """A lowercase, dash-separated slug of ``text`` for branch names."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if len(slug) > max_len:
        slug = slug[:max_len].rsplit("-", 1)[0] if "-" in slug[:max_len] else slug[:max_len]
    return slug or "task"


def mirror_dir(mirrors: Path, repository: str) -> Path:
    """Where the bare mirror of a repository lives in the cache."""
    name = slugify(Path(repository.rstrip("/")).name.removesuffix(".git"), 30)
    digest = hashlib.sha256(repository.encode()).hexdigest()[:12]
    return mirrors / f"{name}-{digest}.git"


def lock_timeout_s() -> float:
    """Seconds to wait for a mirror's lock (AGENT_TASKS_MIRROR_LOCK_TIMEOUT: longer than one holder's fetch can take)."""
    return load_settings().mirror_lock_timeout_s


@contextmanager
def locked(path: Path, timeout_s: float | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path``.lock while the block runs (one fetch per mirror at a time).

    RepositoryError when another process holds it for longer than ``timeout_s`` (default: lock_timeout_s()).
    """
    timeout_s = lock_timeout_s() if timeout_s is None else timeout_s
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as handle:
        _acquire(handle, path, timeout_s)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _acquire(handle, path: Path, timeout_s: float) -> None:
    started = time.monotonic()
    pause = 0.05
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            waited = time.monotonic() - started
            if waited >= timeout_s:
                raise RepositoryError(
                    f"the mirror {path.name} is busy: another process has held its lock for the {waited:.0f} s "
                    f"this one waited (a fetch that hangs?); try again later, or raise AGENT_TASKS_MIRROR_LOCK_TIMEOUT"
                ) from None
            time.sleep(min(pause, max(0.0, timeout_s - waited)))
            pause = min(pause * 2, 1.0)


_fetched_by_run: dict[str, str] = {}  # mirror -> the flow run that last fetched it, in this process


def current_run_id() -> str | None:
    """The id of the Prefect flow run this code runs in, if any."""
    try:
        from prefect.runtime import flow_run

        return str(flow_run.id) if flow_run.id else None
    except Exception:  # no Prefect context to ask
        return None


def _has_head(path: Path) -> bool:
    """True when the mirror knows the origin's default branch and that branch is still there."""
    return (
        run_git("rev-parse", "--verify", "--quiet", "refs/remotes/origin/HEAD", cwd=path, check=False).returncode == 0
    )


def fetch_mirror(path: Path) -> None:
    """Fetch the origin's branches into an existing mirror (the caller holds its lock); GitError on failure.

    The origin's default branch is asked for again only when the mirror does not know it (a clone, or
    a default branch that is gone), so a fetch is one round trip to the origin.
    """
    run_git("fetch", "origin", "--prune", "--no-tags", cwd=path, remote=True, timeout_s=FETCH_TIMEOUT_S)
    if not _has_head(path):
        run_git("remote", "set-head", "origin", "--auto", cwd=path, remote=True, timeout_s=SET_HEAD_TIMEOUT_S)


def update_mirror(repository: str, mirrors: Path) -> tuple[Path, str]:
    """Clone the repository into a bare mirror the first time, fetch it afterwards; returns (mirror, action).

    Within one flow run the mirror is fetched once: a later call of the same run (the agent-file
    lookup, then the checkout) finds it ``fresh`` and does not fetch again.
    """
    path = mirror_dir(mirrors, repository)
    run_id = current_run_id()
    with locked(path):
        action = "fetched" if (path / "HEAD").is_file() else "cloned"
        if action == "fetched" and run_id is not None and _fetched_by_run.get(str(path)) == run_id:
            return path, "fresh"
        try:
            if action == "cloned":
                path.mkdir(parents=True, exist_ok=True)
                run_git("init", "-q", "--bare", "--template=", ".", cwd=path)
                for key, value in (
                    ("remote.origin.url", repository),
                    ("gc.auto", "0"),
                    ("remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"),
                ):
                    run_git("config", key, value, cwd=path)
            fetch_mirror(path)
        except GitError as exc:
            if action == "cloned":
                shutil.rmtree(path, ignore_errors=True)
            raise RepositoryError(f"cannot fetch {repository}: {str(exc).split(': ', 1)[-1]}") from None
        if run_id is not None:
            _fetched_by_run[str(path)] = run_id
        return path, action


def remote_branches(mirror: Path) -> list[str]:
    """Branch names of the origin, as last fetched."""
    out = git_text("for-each-ref", "--format=%(refname:lstrip=3)", "refs/remotes/origin/", cwd=mirror)
    return sorted(b for b in out.splitlines() if b and b != "HEAD")


def default_branch(mirror: Path) -> str:
    """The origin's default branch."""
    head = run_git("symbolic-ref", "--short", "refs/remotes/origin/HEAD", cwd=mirror, check=False)
    if head.returncode == 0:
        return head.text.removeprefix("origin/")
    branches = remote_branches(mirror)
    for candidate in ("main", "master"):
        if candidate in branches:
            return candidate
    if branches:
        return branches[0]
    raise RepositoryError("the repository has no branches (is it empty?)")


def branch_head(mirror: Path, branch: str) -> str:
    """The commit at the tip of an origin branch; an unknown branch lists the ones that exist."""
    found = run_git(
        "rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{branch}^{{commit}}", cwd=mirror, check=False
    )
    if found.returncode != 0:
        known = remote_branches(mirror)
        raise RepositoryError(f"unknown branch {branch!r}; branches: {', '.join(known) if known else '(none)'}")
    return found.text


def has_commit(mirror: Path, commit: str) -> bool:
    """True when the mirror holds ``commit``."""
    return run_git("rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}", cwd=mirror, check=False).returncode == 0


def create_workspace(mirror: Path, path: Path, work_branch: str, base_commit: str, repository: str) -> None:
    """A checkout of ``base_commit`` on a new branch ``work_branch`` at ``path``, with its own git directory.

    The git directory borrows the mirror's objects (alternates) and carries the origin's branches as
    remote-tracking refs, so `git log origin/main` works inside it; it has no hooks.
    """
    if path.exists():
        raise RepositoryError(f"cannot create the workspace: {path} already exists")
    path.mkdir(parents=True)
    try:
        run_git("init", "-q", "--template=", f"--initial-branch={work_branch}", ".", cwd=path)
        git_dir = path / ".git"
        (git_dir / "objects" / "info").mkdir(parents=True, exist_ok=True)
        (git_dir / "objects" / "info" / "alternates").write_text(f"{Path(mirror).resolve() / 'objects'}\n")
        refs = git_text("for-each-ref", "--format=%(objectname) %(refname)", "refs/remotes/origin/", cwd=mirror)
        lines = sorted(line for line in refs.splitlines() if not line.endswith("/HEAD"))
        (git_dir / "packed-refs").write_text("".join(f"{line}\n" for line in lines))
        settings = (
            ("remote.origin.url", strip_credentials(repository)),
            ("gc.auto", "0"),
            ("core.hooksPath", "/dev/null"),
        )
        for key, value in settings:
            run_git("config", key, value, cwd=path)
        run_git("update-ref", f"refs/heads/{work_branch}", base_commit, cwd=path)
        run_git("reset", "-q", "--hard", base_commit, cwd=path, timeout_s=FETCH_TIMEOUT_S)
    except (GitError, OSError) as exc:
        shutil.rmtree(path, ignore_errors=True)
        raise RepositoryError(f"cannot create the workspace: {exc}") from None
