"""Git plumbing for sessions: repository addresses, bare mirrors, branches and worktrees."""

from __future__ import annotations

import fcntl
import hashlib
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import git

REMOTE_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[^/\s]+@[^/\s:]+:)", re.IGNORECASE)
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "GIT_SSH_COMMAND": "ssh -o BatchMode=yes"}


class RepositoryError(ValueError):
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


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``.lock while the block runs (one fetch per mirror at a time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _git_message(exc: git.GitCommandError) -> str:
    text = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else str(exc.stderr or "")
    lines = [ln.strip().removeprefix("stderr: ").strip("'").strip() for ln in text.splitlines() if ln.strip()]
    return "; ".join(ln for ln in lines if ln) or str(exc)


def update_mirror(repository: str, mirrors: Path) -> tuple[git.Repo, str]:
    """Clone the repository into a bare mirror the first time, fetch it afterwards; returns (mirror, action)."""
    path = mirror_dir(mirrors, repository)
    with locked(path):
        if (path / "HEAD").is_file():
            mirror, action = git.Repo(path), "fetched"
        else:
            mirror, action = git.Repo.init(path, bare=True), "cloned"
            with mirror.config_writer() as cfg:
                cfg.set_value('remote "origin"', "url", repository)
                cfg.set_value('remote "origin"', "fetch", "+refs/heads/*:refs/remotes/origin/*")
                cfg.set_value("gc", "auto", "0")
        try:
            with mirror.git.custom_environment(**GIT_ENV):
                mirror.git.fetch("origin", "--prune", "--no-tags")
                mirror.git.remote("set-head", "origin", "--auto")
        except git.GitCommandError as exc:
            if action == "cloned":
                import shutil

                shutil.rmtree(path, ignore_errors=True)
            raise RepositoryError(f"cannot fetch {repository}: {_git_message(exc)}") from None
        return mirror, action


def remote_branches(mirror: git.Repo) -> list[str]:
    """Branch names of the origin, as last fetched."""
    out = mirror.git.for_each_ref("--format=%(refname:lstrip=3)", "refs/remotes/origin/")
    return sorted(b for b in out.splitlines() if b and b != "HEAD")


def default_branch(mirror: git.Repo) -> str:
    """The origin's default branch."""
    try:
        return mirror.git.symbolic_ref("--short", "refs/remotes/origin/HEAD").removeprefix("origin/")
    except git.GitCommandError:
        branches = remote_branches(mirror)
        for candidate in ("main", "master"):
            if candidate in branches:
                return candidate
        if branches:
            return branches[0]
        raise RepositoryError("the repository has no branches (is it empty?)") from None


def branch_head(mirror: git.Repo, branch: str) -> str:
    """The commit at the tip of an origin branch; an unknown branch lists the ones that exist."""
    try:
        return mirror.git.rev_parse("--verify", "--quiet", f"refs/remotes/origin/{branch}^{{commit}}")
    except git.GitCommandError:
        known = remote_branches(mirror)
        raise RepositoryError(
            f"unknown branch {branch!r}; branches: {', '.join(known) if known else '(none)'}"
        ) from None


def add_worktree(mirror: git.Repo, path: Path, work_branch: str, base_commit: str) -> None:
    """Create a worktree at ``path`` on a new branch ``work_branch`` starting at ``base_commit``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(Path(mirror.git_dir)):
        try:
            mirror.git.worktree("add", "-b", work_branch, str(path), base_commit)
        except git.GitCommandError as exc:
            raise RepositoryError(f"cannot create the workspace: {_git_message(exc)}") from None
