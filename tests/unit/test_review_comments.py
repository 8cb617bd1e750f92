"""Line comments must name a line the diff shows: the one check (`check_comments`) the review page and
`agent-tasks review --comment` share, and what it says when a line is not there."""

from __future__ import annotations

import uuid

import pytest

from tasks_lib.review.comments import CommentError, check_comments, comment_problems, commentable_lines, line_ranges
from tasks_lib.review.form import LineComment
from tests.conftest import git
from tests.helpers import fake_session

TWENTY = "".join(f"line {n}\n" for n in range(1, 21))
SIXTY = "".join(f"value_{n} = {n}\n" for n in range(1, 61))


@pytest.fixture
def change(repo):
    """A real captured diff: src/x.py added (20 lines), src/long.py changed at lines 5 and 50 of 60, obsolete.txt
    deleted (1 line), logo.bin changed (binary)."""
    from tasks_lib.git.diff import capture_workspace_diff

    (repo / "src" / "long.py").write_text(SIXTY)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "long")
    base = git(repo, "rev-parse", "HEAD")
    (repo / "src" / "x.py").write_text(TWENTY)
    (repo / "src" / "long.py").write_text(SIXTY.replace("value_5 = 5", "value_5 = 55").replace("value_50 =", "v50 ="))
    (repo / "obsolete.txt").unlink()
    (repo / "logo.bin").write_bytes(b"\x00\x01changed")
    return capture_workspace_diff(repo, base)


def comment(path: str, line: int) -> LineComment:
    return LineComment(path=path, line=line, body="look here")


def test_a_line_outside_a_file_s_diff_is_refused_in_one_clear_line(change):
    files = [f.path for f in change.files]
    assert comment_problems([comment("src/x.py", 999)], files, change.patch) == [
        "line 999 is not in src/x.py's diff (it shows lines 1–20)"
    ]
    assert comment_problems([comment("src/x.py", 20), comment("src/x.py", 1)], files, change.patch) == []
    # without the patch only the file is checked (as the resume form's schema can)
    assert comment_problems([comment("src/x.py", 999)], files) == []


def test_the_lines_a_comment_can_name_are_those_the_diff_view_shows(change):
    shown = commentable_lines(change.patch, {"src/x.py", "src/long.py", "obsolete.txt", "logo.bin", "nope.py"})
    assert shown["src/x.py"] == set(range(1, 21))
    assert shown["src/long.py"] == set(range(2, 9)) | set(range(47, 54)), "new-side lines of both hunks"
    assert shown["obsolete.txt"] == {1}, "a deleted file: the old side's lines"
    assert shown["logo.bin"] == set(), "a binary file shows no lines"
    assert "nope.py" not in shown
    files = [f.path for f in change.files]
    problems = comment_problems(
        [comment("src/long.py", 30), comment("obsolete.txt", 1), comment("logo.bin", 1)], files, change.patch
    )
    assert problems == [
        "line 30 is not in src/long.py's diff (it shows lines 2–8, 47–53)",
        "line 1 is not in logo.bin's diff (it shows no lines)",
    ]


def test_a_file_shown_as_stats_only_is_not_checked_line_by_line():
    # a file over the diff limits is in the change but not in the patch: its lines cannot be known
    assert comment_problems([comment("huge.py", 5000)], ["huge.py"], b"") == []


def test_line_ranges_read_naturally():
    assert line_ranges({7}) == "line 7"
    assert line_ranges({3, 9}) == "lines 3, 9"
    assert line_ranges(set(range(1, 21))) == "lines 1–20"
    assert line_ranges(set(range(0, 100, 2)), most=2) == "lines 0, 2, …"
    assert line_ranges(set()) == "no lines"


def test_check_comments_refuses_and_the_cli_path_sends_nothing(store, change):
    """`agent-tasks review ID request-changes --comment src/x.py:999=...`: refused before anything is resumed."""
    from tasks_lib.cli.common import CliError
    from tasks_lib.cli.review import resume

    session_id = fake_session(store, f"comments-{uuid.uuid4().hex[:8]}")
    store.save_diff(session_id, change)
    with pytest.raises(CommentError, match=r"^line 999 is not in src/x\.py's diff \(it shows lines 1–20\)$"):
        check_comments(store, session_id[:8], [comment("src/x.py", 999)])
    check_comments(store, session_id, [comment("src/x.py", 20), comment("obsolete.txt", 1)])  # all shown: fine

    with pytest.raises(CliError) as refused:
        resume(session_id, "request_changes", "fix it", "", ["src/x.py:999=off the end"])
    assert str(refused.value) == "line 999 is not in src/x.py's diff (it shows lines 1–20)"
    now = store.get_session(session_id)
    assert (now.status, store.reviews(session_id)) == ("awaiting_review", [])
