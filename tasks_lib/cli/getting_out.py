"""`agent-tasks apply|export`: get a session's change out of its workspace without a review.

A session run with `--no-review` ends `completed` with its change in its workspace only. `apply` commits that change
(the same commit an accept makes, without a Reviewed-by trailer) and puts it on a branch of the session's
repository — its work branch, or a new one — never on its base or default branch: those take a reviewer's accept.
`export` writes the stored diff as a patch that `git apply` takes on the base commit. `getting_out_hint` is the one
line that says so.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tasks_lib.cli.common import CliError, cli_store, err, find_session, out
from tasks_lib.domain.session import SessionStatus
from tasks_lib.domain.words import counted

if TYPE_CHECKING:
    from tasks_lib.config import Settings
    from tasks_lib.domain.session import DeliveryTarget
    from tasks_lib.store import SessionRow, Store

# Sessions that ended without a reviewer's decision, their workspace kept: what `apply` takes.
APPLICABLE = frozenset(
    {
        SessionStatus.completed,
        SessionStatus.stopped,
        SessionStatus.failed,
        SessionStatus.expired,
        SessionStatus.cancelled,
        SessionStatus.crashed,
    }
)
APPLIED_NOTE = "applied, not reviewed"


def getting_out_hint(row: SessionRow) -> str | None:
    """One line saying how to get a completed session's change out of its workspace (`apply` or `export`), or None
    when there is nothing to get out (another status, no change, or already applied)."""
    if row.status != SessionStatus.completed.value or row.delivered_commit or not row.files_changed:
        return None
    short = row.id[:8]
    onto = f" (onto branch {row.work_branch})" if row.work_branch else ""
    return (
        f"the change is in the workspace only: agent-tasks apply {short}{onto} "
        f"or agent-tasks export {short} --patch change.patch"
    )


def apply_refusal(row: SessionRow) -> str | None:
    """Why `apply` cannot take this session, given its status and record, in one line; None when it can."""
    short = row.id[:8]
    status = SessionStatus(row.status)
    if status is SessionStatus.accepted:
        where = f": {row.delivered_commit[:10]} → {row.delivered_to}" if row.delivered_commit else ""
        return f"session {short} was accepted and delivered{where}; there is nothing to apply"
    if status is SessionStatus.rejected:
        return f"session {short} was rejected: its workspace and work branch were discarded; there is nothing to apply"
    if status is SessionStatus.awaiting_review:
        return (
            f"session {short} is awaiting review: decide it with agent-tasks review {short} accept "
            "(it delivers as the run was told), or reject it first"
        )
    if status not in APPLICABLE:
        return f"session {short} is {status.value}: wait until it has ended, then apply it"
    if not (row.base_commit and row.work_branch):
        return f"session {short} ended before it had a workspace; there is nothing to apply"
    if not row.files_changed:
        return f"session {short} changed nothing; there is nothing to apply"
    return None


def protected_branch(row: SessionRow, branch: str, default: str | None) -> str | None:
    """Why ``branch`` may not receive the session's commit (the base or the default branch), in one line; else None.

    Nothing goes onto those without a reviewer's accept.
    """
    if branch == row.work_branch:
        return None
    what = "the session's base branch" if branch == row.branch else "the repository's default branch"
    if branch in (row.branch, default):
        return (
            f"{branch} is {what}, and nothing goes onto it without a reviewer's accept: run the task with review "
            f"(agent-tasks run ... --on-accept merge) and accept it, or apply to a branch of its own and merge that"
        )
    return None


def shown(repository: str) -> str:
    """A repository address as people should see it: no credentials, a file:// URL as its path."""
    from tasks_lib.security.secrets import strip_credentials

    plain = strip_credentials(repository)
    return plain[len("file://") :] if plain.lower().startswith("file://") else plain


def look_command(repository: str, branch: str) -> str:
    """The git command that shows the tip of ``branch`` in ``repository`` (a local path, or a remote to fetch)."""
    from tasks_lib.git.repo import is_local

    where = shown(repository)
    if is_local(repository):
        return f"git -C {shlex.quote(where)} log {shlex.quote(branch)} -1"
    return f"git fetch {shlex.quote(where)} {shlex.quote(branch)} && git log FETCH_HEAD -1"


def branch_command(target: DeliveryTarget, name: str) -> str:
    """The git command that makes branch ``name`` at an applied commit, in its repository (or in a clone of it)."""
    from tasks_lib.git.repo import is_local

    if is_local(target.repository):
        return f"git -C {shlex.quote(shown(target.repository))} branch {name} {target.commit[:10]}"
    return f"git branch {name} {target.commit[:10]} (in a clone of {shown(target.repository)})"


def branch_name(mirror: Path, name: str) -> str:
    """``name`` if git takes it as a branch name; CliError otherwise."""
    from tasks_lib.git.cli import run_git

    checked = run_git("check-ref-format", "--branch", name, cwd=mirror, check=False)
    if name.startswith("-") or checked.returncode != 0 or checked.text != name:
        raise CliError(f"--to {name!r} is not a valid branch name")
    return name


def session_workspace(row: SessionRow, settings: Settings, store: Store) -> tuple[Path, Path, str]:
    """(workspace, mirror, repository) of a session: its own workspace if it is still there, else one rebuilt from
    the base commit and the stored diff in the agent-tasks home. CliError when neither can be had."""
    from tasks_lib.git.cli import GitError, git_text
    from tasks_lib.git.delivery import DeliveryError, ensure_workspace, workspace_mirror
    from tasks_lib.git.repo import RepositoryError, mirror_dir, normalize_repository

    short = row.id[:8]
    places = [Path(p) for p in (row.workspace, str(settings.workspaces_dir / row.id)) if p]
    for path in places:
        if not path.exists():
            continue
        head = git_text("rev-parse", "--abbrev-ref", "HEAD", cwd=path) if (path / ".git").is_dir() else ""
        if head != row.work_branch:
            raise CliError(
                f"the workspace {path} of session {short} is not on its work branch {row.work_branch}; "
                "check that branch out there, or export the change with agent-tasks export"
            )
        mirror = workspace_mirror(path)
        if mirror is None:
            try:
                mirror = mirror_dir(settings.mirrors_dir, normalize_repository(row.repository))
            except RepositoryError as exc:
                raise CliError(str(exc)) from None
        return path, mirror, git_text("config", "remote.origin.url", cwd=mirror)
    diff = store.latest_diff(row.id)
    path = settings.workspaces_dir / row.id
    try:
        repository = normalize_repository(row.repository)
        ensure_workspace(
            repository, settings.mirrors_dir, path, row.work_branch, row.base_commit, diff.patch if diff else b""
        )
    except (RepositoryError, DeliveryError, GitError) as exc:
        raise CliError(f"session {short}'s workspace is gone and cannot be rebuilt: {exc}") from None
    return path, mirror_dir(settings.mirrors_dir, repository), repository


def push_refused(text: str, branch: str, repository: str) -> str:
    """The one line for a push of the session's commit onto ``branch`` that git refused (git's words in ``text``)."""
    if "checked out" in text:
        return (
            f"branch {branch} is checked out in {shown(repository)}, so git will not move it: "
            "check out another branch there, or apply with --to NEW"
        )
    if "non-fast-forward" in text or "fetch first" in text or "[rejected]" in text:
        return (
            f"branch {branch} already exists in {shown(repository)} and the session's commit does not build on it "
            "(not a fast-forward); choose a new branch with --to"
        )
    return f"the commit could not be put on {branch}: {text}"


def apply(
    session_id: str = typer.Argument(..., help="Session id or a unique prefix of it."),
    to: str | None = typer.Option(
        None, "--to", help="Branch to put the commit on (default: the session's work branch); never the base branch."
    ),
) -> None:
    """Commit a session's change (one that was not reviewed) and put it on a branch of its repository."""
    from tasks_lib.config import load_settings
    from tasks_lib.domain.session import DeliveryTarget
    from tasks_lib.git.cli import GitError
    from tasks_lib.git.delivery import DeliveryError, commit_message, commit_workspace, hand_to_mirror, push_branch
    from tasks_lib.git.repo import RepositoryError, default_branch

    store = cli_store(refresh=True)
    row = find_session(store, session_id)
    short = row.id[:8]
    refusal = apply_refusal(row)
    if refusal:
        raise CliError(refusal)
    settings = load_settings()
    branch = (to or "").strip() or row.work_branch
    refused = protected_branch(row, branch, None)
    if refused:
        raise CliError(refused)
    before = (
        DeliveryTarget.model_validate_json(row.delivery_target)
        if row.delivered_commit and row.delivery_target
        else None
    )
    if before is not None and before.branch != branch:
        raise CliError(
            f"session {short} was already applied: {before.commit[:10]} is on branch {before.branch} in "
            f"{shown(before.repository)}; to have it on another branch too: {branch_command(before, 'NAME')}"
        )
    workspace, mirror, repository = session_workspace(row, settings, store)
    branch = branch_name(mirror, branch)
    try:
        default = default_branch(mirror)
    except RepositoryError:
        default = None
    refused = protected_branch(row, branch, default)
    if refused:
        raise CliError(refused)
    summary = store.latest_summary(row.id)
    message = commit_message(row.instructions, summary.markdown if summary else "", row.id, row.agent, None)
    try:
        commit = commit_workspace(workspace, message, row.id)
        hand_to_mirror(workspace, mirror, commit, row.work_branch)
    except (GitError, DeliveryError) as exc:
        raise CliError(f"cannot commit session {short}'s change: {exc}") from None
    try:
        push_branch(mirror, commit, branch)
    except GitError as exc:
        raise CliError(push_refused(str(exc), branch, repository)) from None
    where = f"branch {branch} in {shown(repository)} ({APPLIED_NOTE})"
    target = DeliveryTarget(mode="branch", repository=shown(repository), branch=branch, commit=commit)
    store.update_session(row.id, delivered_commit=commit, delivered_to=where, delivery_target=target.model_dump_json())
    said = "was already applied" if before is not None and before.commit == commit else "applied"
    out.print(
        f"session {short} {said}: commit {commit[:10]} is on branch {branch} in {shown(repository)}; "
        f"look at it with: {look_command(repository, branch)}"
    )


def export(
    session_id: str = typer.Argument(..., help="Session id or a unique prefix of it."),
    patch: str = typer.Option(..., "--patch", help="File to write the patch to ('-': standard output)."),
) -> None:
    """Write a session's change as a patch that `git apply` takes on its base commit."""
    from tasks_lib.git.diff import omitted_files

    store = cli_store()
    row = find_session(store, session_id)
    short = row.id[:8]
    diff = store.latest_diff(row.id)
    if diff is None or not diff.patch:
        raise CliError(f"session {short} has no change to export")
    missing = omitted_files(diff.patch)
    if missing:
        names = ", ".join(f["path"] for f in missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise CliError(
            f"session {short}'s stored diff leaves out {counted(len(missing), 'file')} over the diff limits ({names}), "
            f"so a patch would be incomplete; use agent-tasks apply {short}, which commits the whole workspace"
        )
    base = diff.base_commit[:10]
    changed = f"{counted(len(diff.files), 'file')}, +{diff.added} -{diff.removed}"
    if patch == "-":
        sys.stdout.buffer.write(diff.patch)
        sys.stdout.buffer.flush()
        err.print(
            f"session {short}: wrote the patch ({changed}) to standard output; apply it at {base} with: git apply FILE"
        )
        return
    try:
        Path(patch).write_bytes(diff.patch)
    except OSError as exc:
        raise CliError(f"cannot write {patch}: {exc.strerror or exc}") from None
    out.print(
        f"session {short}: wrote the patch ({changed}) to {patch}; "
        f"apply it at {base} with: git apply {shlex.quote(patch)}"
    )
