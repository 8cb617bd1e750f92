"""Line comments as `agent-tasks review` reads them (FILE:LINE=TEXT).

The review gate on real flow runs is in tests/flow/test_review.py.
"""

from __future__ import annotations

import pytest


def test_comment_parsing_takes_the_last_colon_and_the_first_equals():
    from tasks_lib.review.comments import CommentError, parse_comment

    comment = parse_comment("src/a:b.py:12=x = y + 1")
    assert (comment.path, comment.line, comment.body) == ("src/a:b.py", 12, "x = y + 1")
    for bad in ("calc.py:0=x", "calc.py:two=x", ":3=x", "calc.py:3=  "):
        with pytest.raises(CommentError):
            parse_comment(bad)
