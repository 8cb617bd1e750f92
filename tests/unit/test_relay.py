"""The webhook relay's author allow-list: which author association decides.

Deliveries through the relay to a real Prefect test server are in tests/flow/test_relay.py.
"""

from __future__ import annotations

from deployments.relay import author_association


def test_the_comment_author_decides_then_the_pull_request_then_the_issue():
    member, outsider = {"author_association": "MEMBER"}, {"author_association": "FIRST_TIMER"}
    assert author_association({"comment": outsider, "issue": member}) == "FIRST_TIMER"
    assert author_association({"comment": {}, "pull_request": member}) == "NONE"  # a comment without one counts as NONE
    assert author_association({"pull_request": member, "issue": outsider}) == "MEMBER"
    assert author_association({"issue": outsider}) == "FIRST_TIMER"
    assert author_association({"check_run": {"name": "tests"}}) == "NONE"
