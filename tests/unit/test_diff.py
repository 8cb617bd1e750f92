"""Diff capture on a real worktree: every kind of change, stats, and a patch that re-applies."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tasks_lib.git.diff import capture_workspace_diff
from tests.conftest import git


def test_added_deleted_renamed_modified_and_binary_files(repo: Path, tmp_path: Path):
    base = git(repo, "rev-parse", "HEAD")
    work = tmp_path / "work"
    git(repo, "worktree", "add", "-q", "-b", "work", str(work), base)
    (work / "src" / "app.py").write_text("def greet(name):\n    return 'Hi ' + name\n\n\nprint(greet('you'))\n")
    (work / "obsolete.txt").unlink()
    (work / "README.md").rename(work / "README.rst")  # unchanged content: a pure rename
    (work / "logo.bin").write_bytes(b"\x00\xff\x00 new binary")
    (work / "new dir").mkdir()
    (work / "new dir" / "file with spaces.txt").write_text("one\ntwo\n")
    (work / "pic.dat").write_bytes(b"\x00" * 64)
    (work / ".gitignore").write_text("*.log\n")
    (work / "debug.log").write_text("ignored\n")
    index_before = (Path(git(work, "rev-parse", "--git-dir")) / "index").read_bytes()

    diff = capture_workspace_diff(work, base)

    kinds = {f.path: (f.kind, f.added, f.removed, f.binary) for f in diff.files}
    assert kinds == {
        "src/app.py": ("modified", 2, 2, False),
        "obsolete.txt": ("deleted", 0, 1, False),
        "README.rst": ("renamed", 0, 0, False),
        "logo.bin": ("modified", 0, 0, True),
        "new dir/file with spaces.txt": ("added", 2, 0, False),
        "pic.dat": ("added", 0, 0, True),
        ".gitignore": ("added", 1, 0, False),
    }
    assert next(f for f in diff.files if f.kind == "renamed").old_path == "README.md"
    assert (diff.added, diff.removed) == (5, 3)
    assert diff.diffstat() == "7 files changed, +5 -3"
    # The workspace's own index was not touched.
    assert (Path(git(work, "rev-parse", "--git-dir")) / "index").read_bytes() == index_before

    fresh = tmp_path / "fresh"
    git(repo, "worktree", "add", "-q", "--detach", str(fresh), base)
    subprocess.run(["git", "apply", "--binary", "--index"], cwd=fresh, input=diff.patch, check=True)
    for path in ("src/app.py", "README.rst", "logo.bin", "new dir/file with spaces.txt", "pic.dat"):
        assert (fresh / path).read_bytes() == (work / path).read_bytes()
    assert not (fresh / "README.md").exists() and not (fresh / "obsolete.txt").exists()
    assert not (fresh / "debug.log").exists()


def test_no_change_is_an_empty_diff(repo: Path):
    diff = capture_workspace_diff(repo, git(repo, "rev-parse", "HEAD"))
    assert diff.empty and diff.patch == b"" and diff.diffstat() == "0 files changed, +0 -0"


def test_names_that_are_not_utf8_are_shown_escaped_and_git_quoting_reads_back_to_the_bytes():
    from tasks_lib.git.paths import shown_name, unquote

    assert shown_name(b"caf\xe9.txt") == "caf\\xe9.txt" and shown_name("caf\udce9.txt") == "caf\\xe9.txt"
    assert shown_name("café.txt".encode()) == "café.txt"
    assert unquote('"caf\\351 menu.txt"') == b"caf\xe9 menu.txt"
    assert unquote('"caf\\303\\251.txt"') == "café.txt".encode()
    assert unquote('"tab\\there \\"q\\" back\\\\slash\\nnl"') == b'tab\there "q" back\\slash\nnl'
    assert unquote("plain name.txt") == b"plain name.txt"


def test_a_change_that_adds_only_placeholders_is_named_so_a_summary_is_not_taken_on_trust():
    from tasks_lib.git.placeholders import placeholder_files

    stub = (
        b"diff --git a/punct.py b/punct.py\n--- a/punct.py\n+++ b/punct.py\n@@ -1,2 +1,2 @@\n"
        b" def strip(text):\n-    return text.translate(TABLE)\n+    pass\n"
        b"diff --git a/notes.py b/notes.py\nnew file mode 100644\n--- /dev/null\n+++ b/notes.py\n@@ -0,0 +1,3 @@\n"
        b"+def later():\n+    # TODO write this\n+    raise NotImplementedError\n"
        b"diff --git a/gone.py b/gone.py\ndeleted file mode 100644\n--- a/gone.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-x = 1\n"
    )
    assert placeholder_files(stub) == ["punct.py"]  # notes.py adds a def: real code; gone.py adds nothing
    real = b"diff --git a/p.py b/p.py\n--- a/p.py\n+++ b/p.py\n@@ -1 +1 @@\n-    pass\n+    return text.strip('.')\n"
    assert placeholder_files(real) == []
