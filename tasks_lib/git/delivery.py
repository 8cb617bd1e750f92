"""What review decisions do to git: commit and deliver (branch, merge, pull request), discard, reset, rebuild."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from tasks_lib.config import load_settings
from tasks_lib.errors import AgentTasksError
from tasks_lib.git.cli import git_text, run_git
from tasks_lib.git.diff import DiffError, omitted_files, size, stage_all
from tasks_lib.git.repo import (
    REMOTE_URL,
    RepositoryError,
    create_workspace,
    fetch_mirror,
    has_commit,
    is_local,
    locked,
    mirror_dir,
    update_mirror,
)

SESSION_TRAILER = "Agent-Session"
GITHUB_REMOTE = re.compile(
    r"^(?:https?://(?:[^@/]+@)?|ssh://git@|git@)(?P<host>[^/:]+)[/:](?P<owner>[^/]+)/(?P<name>[^/]+?)(?:\.git)?/?$"
)


class DeliveryError(AgentTasksError, RuntimeError):
    """A decision that cannot be carried out as asked; the message says why and what to do."""


PUSH_TIMEOUT_S = 600


def _identity() -> list[str]:
    settings = load_settings()
    return ["-c", f"user.name={settings.git_name}", "-c", f"user.email={settings.git_email}"]


def commit_message(instructions: str, summary: str, session_id: str, agent: str, reviewer: str | None) -> str:
    """Title from the task, the summary as body, trailers naming the session, the agent and, as ``Reviewed-by``,
    ``reviewer``: the person who decided when one is known, else the assigned reviewer."""
    first = " ".join(instructions.strip().splitlines()[0].split()) if instructions.strip() else "Agent changes"
    title = first if len(first) <= 72 else first[:69].rstrip() + "..."
    trailers = [f"{SESSION_TRAILER}: {session_id}", f"Agent: {agent}"]
    if reviewer:
        trailers.append(f"Reviewed-by: {reviewer}")
    return f"{title}\n\n{summary.strip()}\n\n" + "\n".join(trailers) + "\n"


def commit_workspace(workspace: str | Path, message: str, session_id: str) -> str:
    """Commit every change in the workspace on its branch; returns the commit. Committing twice adds nothing.

    What is staged is what the diff shows: untracked directories left out by default stay out.
    """
    try:
        stage_all(workspace)
    except DiffError as exc:
        raise DeliveryError(f"cannot stage the changes: {exc}") from None
    staged = run_git("diff", "--cached", "--quiet", cwd=workspace, check=False).returncode != 0
    head_message = git_text("log", "-1", "--format=%B", cwd=workspace)
    if not staged and f"{SESSION_TRAILER}: {session_id}" in head_message:
        return git_text("rev-parse", "HEAD", cwd=workspace)
    run_git(
        *_identity(), "commit", "-q", "--allow-empty", "--no-verify", "-F", "-", cwd=workspace, input=message.encode()
    )
    return git_text("rev-parse", "HEAD", cwd=workspace)


def hand_to_mirror(workspace: str | Path, mirror: str | Path, commit: str, work_branch: str) -> None:
    """Put the session's commit on ``work_branch`` in the mirror, from where it is delivered."""
    run_git(
        "push",
        "-q",
        "--no-verify",
        str(mirror),
        f"+{commit}:refs/heads/{work_branch}",
        cwd=workspace,
        writable=[mirror],
    )


def push_branch(mirror: str | Path, commit: str, branch: str) -> None:
    """Create or update ``branch`` at ``commit`` in the origin (fast-forward only)."""
    run_git(
        "push",
        "-q",
        "--no-verify",
        "origin",
        f"{commit}:refs/heads/{branch}",
        cwd=mirror,
        remote=True,
        timeout_s=PUSH_TIMEOUT_S,
    )


def deliver_branch(mirror: str | Path, repository: str, commit: str, work_branch: str) -> str:
    """Put the work branch in the source repository (local) or push it to its remote."""
    push_branch(mirror, commit, work_branch)
    where = "the remote" if REMOTE_URL.match(repository) else "the source repository"
    return f"branch {work_branch} in {where} ({repository})"


def _checked_out_in(repository: str, branch: str) -> Path | None:
    """The worktree of a local repository that has ``branch`` checked out, if any."""
    if not is_local(repository):
        return None
    path = repository.removeprefix("file://")
    current = None
    for line in git_text("worktree", "list", "--porcelain", cwd=path).splitlines():
        if line.startswith("worktree "):
            current = Path(line.removeprefix("worktree "))
        elif line == f"branch refs/heads/{branch}":
            return current
    return None


def deliver_merge(
    mirror: str | Path, repository: str, base_branch: str, base_commit: str, commit: str, work_branch: str
) -> str:
    """Merge the work into the base branch; refused with the conflicting files if the base moved in a conflicting way.

    Fetches first, whatever the run fetched before: the merge is made on the base branch as it is now
    (the push is also leased on it, so a base that moves meanwhile refuses the push instead of losing work).
    """
    try:
        with locked(Path(mirror)):
            fetch_mirror(Path(mirror))
    except RepositoryError as exc:
        raise DeliveryError(str(exc)) from None
    base_now = git_text("rev-parse", f"refs/remotes/origin/{base_branch}", cwd=mirror)
    if run_git("merge-base", "--is-ancestor", commit, base_now, cwd=mirror, check=False).returncode == 0:
        return f"already merged into {base_branch} ({base_now[:10]})"
    target = commit
    if base_now != base_commit:
        target = _merge_commit(mirror, base_branch, base_now, commit, work_branch)
    checked_out = _checked_out_in(repository, base_branch)
    if checked_out is not None:
        if git_text("status", "--porcelain", "--untracked-files=no", cwd=checked_out):
            raise DeliveryError(
                f"cannot merge: {base_branch} is checked out in {checked_out} with uncommitted changes; "
                "commit or stash them, or accept with on_accept=branch"
            )
        run_git("fetch", "-q", str(mirror), target, cwd=checked_out)
        run_git("merge", "-q", "--ff-only", target, cwd=checked_out)
    else:
        run_git(
            "push",
            "-q",
            "--no-verify",
            f"--force-with-lease=refs/heads/{base_branch}:{base_now}",
            "origin",
            f"{target}:refs/heads/{base_branch}",
            cwd=mirror,
            remote=True,
            timeout_s=PUSH_TIMEOUT_S,
        )
    kind = "fast-forward" if target == commit else f"merge commit {target[:10]}"
    return f"merged into {base_branch} of {repository} ({kind})"


def _merge_commit(mirror: str | Path, base_branch: str, base_now: str, commit: str, work_branch: str) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="agent-merge-"))
    try:
        run_git("worktree", "add", "-q", "--detach", str(tmp / "wt"), base_now, cwd=mirror)
        wt = tmp / "wt"
        merged = run_git(
            *_identity(),
            "merge",
            "--no-ff",
            "--no-edit",
            "-m",
            f"Merge {work_branch} into {base_branch}",
            commit,
            cwd=wt,
            check=False,
        )
        if merged.returncode != 0:
            conflicts = run_git("diff", "--name-only", "--diff-filter=U", cwd=wt, check=False).text.split()
            run_git("merge", "--abort", cwd=wt, check=False)
            files = ", ".join(conflicts) or "(see git output)"
            raise DeliveryError(
                f"merge refused: {base_branch} moved to {base_now[:10]} since the session started and conflicts "
                f"with the agent's changes in {files}; accept as a branch, or retry on the new base"
            )
        return git_text("rev-parse", "HEAD", cwd=wt)
    finally:
        run_git("worktree", "remove", "--force", str(tmp / "wt"), cwd=mirror, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def github_repo(repository: str) -> tuple[str, str, str] | None:
    """(host, owner, name) when the repository address looks like a GitHub-style remote."""
    m = GITHUB_REMOTE.match(repository.strip())
    return (m["host"], m["owner"], m["name"]) if m else None


def deliver_pull_request(
    mirror: str | Path, repository: str, commit: str, work_branch: str, base_branch: str, title: str, body: str
) -> str:
    """Push the work branch, then open a pull request (GITHUB_TOKEN set) or name the compare URL."""
    push_branch(mirror, commit, work_branch)
    gh = github_repo(repository)
    if gh is None or is_local(repository):
        return f"branch {work_branch} pushed to {repository}; not a GitHub remote, so no pull request was opened"
    host, owner, name = gh
    web = f"https://{host}"
    compare = f"{web}/{owner}/{name}/compare/{base_branch}...{work_branch}?expand=1"
    token = os.environ.get("GITHUB_TOKEN")
    if not token:
        return f"branch {work_branch} pushed; open the pull request at {compare} (set GITHUB_TOKEN to open it automatically)"
    import httpx

    api = load_settings().github_api or ("https://api.github.com" if host == "github.com" else f"{web}/api/v3")
    response = httpx.post(
        f"{api}/repos/{owner}/{name}/pulls",
        json={"title": title, "head": work_branch, "base": base_branch, "body": body},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"},
        timeout=30,
    )
    if response.status_code == 201:
        return f"pull request {response.json().get('html_url')}"
    try:
        detail = response.json().get("message", "")
        errors = "; ".join(e.get("message", "") for e in response.json().get("errors", []) if isinstance(e, dict))
    except ValueError:
        detail, errors = response.text[:200], ""
    raise DeliveryError(
        f"branch {work_branch} pushed, but GitHub refused the pull request ({response.status_code} {detail}"
        f"{': ' + errors if errors else ''}); open it at {compare}"
    )


def discard_workspace(mirror: str | Path, workspace: str | Path, work_branch: str) -> None:
    """Remove the workspace and its work branch (reject)."""
    shutil.rmtree(workspace, ignore_errors=True)
    run_git("worktree", "prune", cwd=mirror, check=False)  # workspaces made by earlier versions were worktrees
    run_git("branch", "-D", work_branch, cwd=mirror, check=False)


def reset_workspace(workspace: str | Path, base_commit: str) -> None:
    """Throw away every change in the workspace (retry)."""
    run_git("reset", "-q", "--hard", base_commit, cwd=workspace)
    run_git("clean", "-qfdx", cwd=workspace)


def incomplete_patch(workspace: Path, missing: list[dict]) -> str:
    """Why a workspace cannot be rebuilt from a trimmed patch, naming what it lacks."""
    named = ", ".join(f"{f['path']} ({size(f.get('patch_bytes') or 0)} of patch)" for f in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return (
        f"cannot rebuild the workspace {workspace}: it is gone, and its stored diff was trimmed — "
        f"{len(missing)} file{'s' if len(missing) != 1 else ''} shown as stats only ({named}{more}) are not in it, "
        "so a rebuilt workspace would not hold the reviewed change; start a new run"
    )


def ensure_workspace(
    repository: str, mirrors_dir: Path, workspace: str | Path, work_branch: str, base_commit: str, patch: bytes
) -> str:
    """Make sure the workspace exists with the session's changes; rebuild it from base + patch if it is gone.

    Returns 'existing' or 'rebuilt'. Lets a suspended session continue on any worker. The mirror is
    fetched only when it lacks the base commit. A patch that left files out (over the diff limits)
    cannot rebuild the reviewed change: DeliveryError names them, and nothing is rebuilt.
    """
    path = Path(workspace)
    if (path / ".git").is_dir():
        head = run_git("rev-parse", "--abbrev-ref", "HEAD", cwd=path, check=False)
        if head.returncode == 0 and head.text == work_branch:
            return "existing"
    missing = omitted_files(patch)
    if missing:
        raise DeliveryError(incomplete_patch(path, missing))
    mirror = mirror_dir(mirrors_dir, repository)
    if not ((mirror / "HEAD").is_file() and has_commit(mirror, base_commit)):
        mirror, _ = update_mirror(repository, mirrors_dir)
    if not has_commit(mirror, base_commit):
        raise DeliveryError(
            f"cannot rebuild the workspace: base commit {base_commit[:10]} is no longer in {repository}"
        )
    shutil.rmtree(path, ignore_errors=True)
    run_git("worktree", "prune", cwd=mirror, check=False)  # an earlier version's worktree may have been here
    try:
        create_workspace(mirror, path, work_branch, base_commit, repository)
    except RepositoryError as exc:
        raise DeliveryError(str(exc)) from None
    if patch:
        run_git("apply", "--binary", "-", cwd=path, input=patch)
    return "rebuilt"


def workspace_mirror(workspace: str | Path) -> Path | None:
    """The bare mirror whose objects a session's workspace borrows (named in its alternates file), or None.

    A workspace knows its mirror this way whatever address the session's repository was given as.
    """
    alternates = Path(workspace) / ".git" / "objects" / "info" / "alternates"
    try:
        lines = [line.strip() for line in alternates.read_text().splitlines() if line.strip()]
    except OSError:
        return None
    for line in lines:
        objects = Path(line)
        if objects.name == "objects" and (objects.parent / "HEAD").is_file():
            return objects.parent
    return None
