"""Per-key concurrency: the key a run gets by default and the name of its limit.

Runs taking turns on a real Prefect server are in tests/flow/test_concurrency.py.
"""

from __future__ import annotations

from tasks_lib.session.concurrency import default_key, limit_name


def test_the_default_key_is_the_repository_and_the_events_number():
    assert (
        default_key("https://github.com/acme/widgets.git", {"event": "github.issue.labeled", "number": 42})
        == "acme/widgets#42"
    )
    assert default_key("git@github.com:acme/widgets.git", {"number": "7"}) == "acme/widgets#7"
    assert default_key("/srv/repo", {"event": "schedule"}) is None and default_key("/srv/repo", None) is None
    assert limit_name("acme/widgets#42") != limit_name("acme/widgets#43")
    assert limit_name("Acme/Widgets#42").startswith("agent-tasks-key-acme-widgets-42-")
