"""A file name that is not UTF-8 (any byte string the file system allows): shown escaped in the diff, the store, the
facts and the review page, and delivered byte for byte by accept. And `list_files` answers the same whether a
symlink's target exists on the host or not (no existence oracle for hidden paths)."""

from __future__ import annotations

import os
import subprocess

import httpx

from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import git
from tests.flow.test_review_page import AppServer
from tests.helpers import Background, decide, run_task, wait_for_review

RAW = b"caf\xe9 menu.txt"  # Latin-1, not UTF-8
SHOWN = "caf\\xe9 menu.txt"


def test_a_name_that_is_not_utf8_is_shown_escaped_and_delivered_byte_for_byte(repo, scripted, store):
    scripted(
        [
            calls(tool("run_command", command="printf 'soup\\n' > \"$(printf 'caf\\351 menu.txt')\" && ls")),
            calls(tool("write_file", path="README.md", content="# Demo\n\nMenu added.\n")),
            calls(tool("list_files", path=".")),
            calls(tool("finish", summary="Added the menu.")),
        ]
    )
    run = Background(repo, "Add the menu")
    row = wait_for_review(store, "Add the menu", timeout=180, since=run.started)
    diff = store.latest_diff(row.id)
    assert {f["path"] for f in diff.files} == {SHOWN, "README.md"}
    facts = store.latest_summary(row.id).facts
    assert SHOWN in [f["path"] for f in facts["files"]]
    listed = [c.result for s in store.steps(row.id) for c in s.tool_calls if c.name == "list_files"][0]
    assert SHOWN in listed.splitlines()
    with AppServer(store) as app:
        page = httpx.get(f"{app.base}/sessions/{row.id}", timeout=30)
    assert page.status_code == 200 and SHOWN in page.text
    decide(row, "accept")
    done = run.join(180)
    assert done.status.value == "accepted", done.reason
    tree = subprocess.run(["git", "ls-tree", "-z", "--name-only", done.work_branch], cwd=repo, capture_output=True)
    assert RAW in tree.stdout.split(b"\0")
    clone = repo.parent / "clone"
    git(repo.parent, "clone", "-q", "-b", done.work_branch, str(repo), str(clone))
    assert (clone / os.fsdecode(RAW)).read_bytes() == b"soup\n"


def test_list_files_says_the_same_whether_a_links_target_exists_on_the_host_or_not(repo, scripted, store, tmp_path):
    present = tmp_path / "present-secret"
    present.write_text("x")
    scripted(
        [
            calls(
                tool(
                    "run_command",
                    command=f"ln -s {present} a-link && ln -s {tmp_path / 'absent-secret'} b-link && ls",
                )
            ),
            calls(tool("list_files", path=".")),
            calls(tool("finish", summary="Linked.")),
        ]
    )
    result = run_task(repo, "Link")
    listed = [c.result for s in store.steps(result.session_id) for c in s.tool_calls if c.name == "list_files"][0]
    assert "a-link" in listed.splitlines() and "b-link" in listed.splitlines()
