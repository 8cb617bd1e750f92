"""What review decisions do to git: commit and deliver (branch, merge, pull request), discard, reset, rebuild."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tasks_lib.gitrepo import GIT_ENV, REMOTE_URL, is_local, locked, update_mirror

SESSION_TRAILER = "Agent-Session"
GITHUB_REMOTE = re.compile(r"^(?:https?://(?:[^@/]+@)?|ssh://git@|git@)(?P<host>[^/:]+)[/:](?P<owner>[^/]+)/(?P<name>[^/]+?)(?:\.git)?/?$")


class DeliveryError(RuntimeError):
    """A decision that cannot be carried out as asked; the message says why and what to do."""


def git(cwd: str | Path, *args: str, input: bytes | None = None, check: bool = True) -> str:
    """Run git in ``cwd`` without prompts; DeliveryError with git's message on failure."""
    proc = subprocess.run(
        ["git", *args], cwd=cwd, input=input, capture_output=True, timeout=600, env={**os.environ, **GIT_ENV}
    )
    if check and proc.returncode != 0:
        message = "; ".join(ln.strip() for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip())
        raise DeliveryError(f"git {args[0]} failed: {message or 'exit code ' + str(proc.returncode)}")
    return proc.stdout.decode(errors="replace").strip()


def _identity() -> list[str]:
    name = os.environ.get("AGENT_TASKS_GIT_NAME", "agent-tasks")
    email = os.environ.get("AGENT_TASKS_GIT_EMAIL", "agent-tasks@localhost")
    return ["-c", f"user.name={name}", "-c", f"user.email={email}"]


def commit_message(instructions: str, summary: str, session_id: str, agent: str, reviewer: str | None) -> str:
    """Title from the task, the summary as body, trailers naming the session."""
    first = " ".join(instructions.strip().splitlines()[0].split()) if instructions.strip() else "Agent changes"
    title = first if len(first) <= 72 else first[:69].rstrip() + "..."
    trailers = [f"{SESSION_TRAILER}: {session_id}", f"Agent: {agent}"]
    if reviewer:
        trailers.append(f"Reviewed-by: {reviewer}")
    return f"{title}\n\n{summary.strip()}\n\n" + "\n".join(trailers) + "\n"


def commit_workspace(workspace: str | Path, message: str, session_id: str) -> str:
    """Commit every change in the workspace on its branch; returns the commit. Committing twice adds nothing."""
    git(workspace, "add", "-A", ".")
    staged = subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=workspace).returncode != 0
    head_message = git(workspace, "log", "-1", "--format=%B")
    if not staged and f"{SESSION_TRAILER}: {session_id}" in head_message:
        return git(workspace, "rev-parse", "HEAD")
    git(workspace, *_identity(), "commit", "-q", "--allow-empty", "--no-verify", "-F", "-", input=message.encode())
    return git(workspace, "rev-parse", "HEAD")


def push_branch(mirror: str | Path, commit: str, branch: str) -> None:
    """Create or update ``branch`` at ``commit`` in the origin (fast-forward only)."""
    git(mirror, "push", "-q", "origin", f"{commit}:refs/heads/{branch}")


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
    for line in git(path, "worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            current = Path(line.removeprefix("worktree "))
        elif line == f"branch refs/heads/{branch}":
            return current
    return None


def deliver_merge(mirror: str | Path, repository: str, base_branch: str, base_commit: str, commit: str, work_branch: str) -> str:
    """Merge the work into the base branch; refused with the conflicting files if the base moved in a conflicting way."""
    with locked(Path(mirror)):
        git(mirror, "fetch", "-q", "origin", "--prune", "--no-tags")
    base_now = git(mirror, "rev-parse", f"refs/remotes/origin/{base_branch}")
    if subprocess.run(["git", "merge-base", "--is-ancestor", commit, base_now], cwd=mirror).returncode == 0:
        return f"already merged into {base_branch} ({base_now[:10]})"
    target = commit
    if base_now != base_commit:
        target = _merge_commit(mirror, base_branch, base_now, commit, work_branch)
    checked_out = _checked_out_in(repository, base_branch)
    if checked_out is not None:
        if git(checked_out, "status", "--porcelain", "--untracked-files=no"):
            raise DeliveryError(
                f"cannot merge: {base_branch} is checked out in {checked_out} with uncommitted changes; "
                "commit or stash them, or accept with on_accept=branch"
            )
        git(checked_out, "fetch", "-q", str(mirror), target)
        git(checked_out, "merge", "-q", "--ff-only", target)
    else:
        git(mirror, "push", "-q", f"--force-with-lease=refs/heads/{base_branch}:{base_now}", "origin", f"{target}:refs/heads/{base_branch}")
    kind = "fast-forward" if target == commit else f"merge commit {target[:10]}"
    return f"merged into {base_branch} of {repository} ({kind})"


def _merge_commit(mirror: str | Path, base_branch: str, base_now: str, commit: str, work_branch: str) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="agent-merge-"))
    try:
        git(mirror, "worktree", "add", "-q", "--detach", str(tmp / "wt"), base_now)
        wt = tmp / "wt"
        proc = subprocess.run(
            ["git", *_identity(), "merge", "--no-ff", "--no-edit", "-m", f"Merge {work_branch} into {base_branch}", commit],
            cwd=wt, capture_output=True,
        )
        if proc.returncode != 0:
            conflicts = git(wt, "diff", "--name-only", "--diff-filter=U", check=False).split()
            git(wt, "merge", "--abort", check=False)
            files = ", ".join(conflicts) or "(see git output)"
            raise DeliveryError(
                f"merge refused: {base_branch} moved to {base_now[:10]} since the session started and conflicts "
                f"with the agent's changes in {files}; accept as a branch, or retry on the new base"
            )
        return git(wt, "rev-parse", "HEAD")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "wt")], cwd=mirror, capture_output=True)
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

    api = os.environ.get("AGENT_TASKS_GITHUB_API") or ("https://api.github.com" if host == "github.com" else f"{web}/api/v3")
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
    subprocess.run(["git", "worktree", "remove", "--force", str(workspace)], cwd=mirror, capture_output=True)
    shutil.rmtree(workspace, ignore_errors=True)
    git(mirror, "worktree", "prune", check=False)
    git(mirror, "branch", "-D", work_branch, check=False)


def reset_workspace(workspace: str | Path, base_commit: str) -> None:
    """Throw away every change in the workspace (retry)."""
    git(workspace, "reset", "-q", "--hard", base_commit)
    git(workspace, "clean", "-qfdx")


def ensure_workspace(
    repository: str, mirrors_dir: Path, workspace: str | Path, work_branch: str, base_commit: str, patch: bytes
) -> str:
    """Make sure the workspace exists with the session's changes; rebuild it from base + patch if it is gone.

    Returns 'existing' or 'rebuilt'. Lets a suspended session continue on any worker.
    """
    path = Path(workspace)
    if (path / ".git").exists() and git(path, "rev-parse", "--abbrev-ref", "HEAD", check=False) == work_branch:
        return "existing"
    mirror, _ = update_mirror(repository, mirrors_dir)
    mirror_dir = mirror.git_dir
    shutil.rmtree(path, ignore_errors=True)
    with locked(Path(mirror_dir)):
        git(mirror_dir, "worktree", "prune")
        if git(mirror_dir, "rev-parse", "--verify", "--quiet", f"refs/heads/{work_branch}", check=False):
            git(mirror_dir, "worktree", "add", "-q", "-f", str(path), work_branch)
        else:
            if not git(mirror_dir, "rev-parse", "--verify", "--quiet", f"{base_commit}^{{commit}}", check=False):
                raise DeliveryError(f"cannot rebuild the workspace: base commit {base_commit[:10]} is no longer in {repository}")
            git(mirror_dir, "worktree", "add", "-q", "-b", work_branch, str(path), base_commit)
    git(path, "reset", "-q", "--hard", base_commit)
    if patch:
        git(path, "apply", "--binary", "-", input=patch)
    return "rebuilt"
