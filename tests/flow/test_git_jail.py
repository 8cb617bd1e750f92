"""Red team: the agent turns a registered submodule's empty folder, and a nested repository of its own, into git
repositories whose config names a clean filter, a textconv driver, an external diff and a pager that write a marker
on the host with the orchestrator's environment. Through finish, diff capture, the review, accept and a second
session, the orchestrator's own git never runs them: no marker, and the key is nowhere."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx

from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import SECRET, git
from tests.flow.test_review_page import AppServer
from tests.helpers import Background, decide, run_task, wait_for_review

FINISH = calls(tool("finish", summary="Made the folders repositories and changed their files."))


def trap(folder: str, marker: Path) -> str:
    """A shell command that makes ``folder`` a repository whose config runs a marker script, with a dirty file. The
    script writes the environment of every process above it — unconfined, the orchestrator's, model key and all."""
    script = (
        "p=$$\n"
        'while [ "$p" -gt 1 ]; do\n'
        f"  tr '\\0' '\\n' < /proc/$p/environ >> {marker} 2>/dev/null\n"
        "  p=$(awk '/^PPid:/{print $2}' /proc/$p/status)\n"
        "done\n"
        f"echo ran >> {marker}\n"
        "cat\n"
    )
    config = (
        '[filter "evil"]\n\tclean = sh hit.sh\n\tsmudge = cat\n[diff "evil"]\n\ttextconv = sh hit.sh\n'
        "[diff]\n\texternal = sh hit.sh\n[core]\n\tpager = sh hit.sh\n"
    )
    return (
        f"mkdir -p {folder} && cd {folder} && git init -q -b main && echo one > data.txt && git add data.txt && "
        "git -c user.email=a@b -c user.name=a commit -qm inner && "
        f"cat > hit.sh <<'SCRIPT'\n{script}SCRIPT\n"
        f"cat >> .git/config <<'EOF'\n{config}EOF\n"
        "echo '* filter=evil diff=evil' > .gitattributes && echo two > data.txt"
    )


def test_a_submodule_or_nested_repository_the_agent_rigs_never_runs_a_command_as_the_orchestrator(
    repo, scripted, store, tmp_path
):
    library = tmp_path / "library"
    library.mkdir()
    git(library, "init", "-q", "-b", "main")
    (library / "lib.txt").write_text("lib\n")
    git(library, "add", "lib.txt")
    git(library, "commit", "-qm", "lib")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(library), "sub")
    git(repo, "commit", "-qm", "register a submodule")
    marker = tmp_path / "outside" / "marker"
    marker.parent.mkdir()
    register = "printf '[submodule \"nested\"]\\n\\tpath = nested\\n\\turl = ./nested\\n' >> .gitmodules"
    scripted(
        [
            calls(tool("run_command", command=trap("sub", marker))),  # the registered submodule's empty folder
            calls(tool("run_command", command=f"{trap('nested', marker)} && cd .. && {register}")),
            FINISH,
            calls(tool("finish", summary="Nothing to do.")),
        ]
    )

    run = Background(repo, "Rig the submodules")
    row = wait_for_review(store, "Rig the submodules", timeout=180, since=run.started)
    paths = {f["path"] for f in store.latest_diff(row.id).files}
    assert {"sub", "nested", ".gitmodules"} <= paths, paths
    with AppServer(store) as app:  # the review page, its side-by-side view included
        for view in ("", "?view=split"):
            assert httpx.get(f"{app.base}/sessions/{row.id}{view}", timeout=30).status_code == 200
    decide(row, "accept")
    done = run.join(180)
    assert done.status.value == "accepted", done.reason
    assert git(repo, "ls-tree", done.work_branch, "nested").split()[1] == "commit"

    again = run_task(repo, "Second look", branch=done.work_branch)
    assert again.status.value == "completed", again.reason

    assert not marker.exists(), marker.read_text()[:2000]
    for session_id in (row.id, again.session_id):  # earlier tests' sessions may hold the key in their own work
        session = store.get_session(session_id)
        kept = [json.dumps(session.request), session.status_reason, store.latest_summary(session_id).markdown]
        kept += [step.model_dump_json() for step in store.steps(session_id)]
        kept += [diff.patch.decode(errors="replace") for diff in [store.latest_diff(session_id)] if diff]
        assert not any(SECRET in text for text in kept), f"the key is in session {session_id}'s records"
        found = subprocess.run(["grep", "-rl", SECRET, session.workspace], capture_output=True, text=True)
        assert found.stdout == "", f"the key is in a workspace: {found.stdout}"
