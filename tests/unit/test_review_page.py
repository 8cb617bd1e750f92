"""The static review page (`agent-tasks show --html`) and the quick file heads of collapsed files.

The review app under uvicorn, with a browser, is in tests/flow/test_review_page.py.
"""

from __future__ import annotations

import uuid

from tasks_lib.domain.records import DiffResult, FileChange
from tests.helpers import fake_session as _fake_session
from tests.helpers import patch_with as _patch_with


def test_show_html_still_writes_a_static_page(store):
    """`agent-tasks show --html` keeps its self-contained page (render.review_page) after the refactor."""
    from tasks_lib.review.render import review_page, side_by_side
    from tasks_lib.session.data import session_json

    session_id = _fake_session(store, f"static-{uuid.uuid4().hex[:8]}")
    store.save_diff(
        session_id,
        DiffResult(
            base_commit="abc123",
            added=2,
            patch=_patch_with(1, "<b>"),
            files=[FileChange(path="f0.py", kind="added", added=2)],
        ),
    )
    html = review_page(session_json(store, store.get_session(session_id)))
    assert "<td class='ins'>&lt;b&gt;</td>" in html and "<link" not in html
    view = side_by_side(_patch_with(1, "x"))[0]
    assert (view.target, view.kind, [r.kind for r in view.unified]) == ("f0.py", "added", ["hunk", "insert", "insert"])


def test_the_quick_file_heads_of_collapsed_files_agree_with_the_full_views(repo):
    """Files past the first ones are listed from their headers only; names, kinds and counts must match."""
    from tasks_lib.git.diff import capture_workspace_diff
    from tasks_lib.review.render import file_head, file_view, patch_chunks
    from tests.conftest import git

    base = git(repo, "rev-parse", "HEAD")
    (repo / "README.md").write_text("# Demo\n\n-- Hello world.\n++ more\n")
    (repo / "obsolete.txt").unlink()
    git(repo, "mv", "src/app.py", "src/main.py")
    (repo / "src" / "main.py").write_text("def greet(name):\n    return 'Hi ' + name\n\n\nprint(greet('world'))\n")
    (repo / "logo.bin").write_bytes(b"\x00\x01changed")
    (repo / "new.txt").write_text("a\nb\n")
    chunks = patch_chunks(capture_workspace_diff(repo, base).patch)
    views = [file_view(c) for c in chunks]
    assert {(v.path, v.kind) for v in views} >= {
        ("README.md", "modified"),
        ("obsolete.txt", "deleted"),
        ("src/app.py → src/main.py", "renamed"),
        ("new.txt", "added"),
    }
    for chunk, view in zip(chunks, views):
        head = file_head(chunk)
        assert (head.path, head.kind, head.added, head.removed, head.target, head.binary) == (
            view.path,
            view.kind,
            view.added,
            view.removed,
            view.target,
            view.binary,
        )
