"""Notifications without a server: `notify:` entries checked and defaulted, the summary line, and a failing
emit that never breaks a transition.

The automations firing on the Prefect test server are in tests/flow/test_notify.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deployments.notify import notify_targets
from deployments.workflows import WorkflowError, load_global_notify, load_workflows
from tasks_lib.domain.session import SessionStatus as S
from tasks_lib.session.events import summary_line
from tasks_lib.session.lifecycle import move
from tests.conftest import SECRET
from tests.helpers import new_session

# --- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry, expected",
    [
        ({"url": "ftp://hooks.example.com/x"}, "notify.0.url: must start with http:// or https://"),
        ({"url": "https:///x"}, "notify.0.url: needs a host"),
        (
            {"url": "https://hooks.example.com/x", "on": ["finished"]},
            "notify.0.on: unknown event(s) finished; known: awaiting_review, failed",
        ),
        (
            {"url": "https://hooks.example.com/x", "format": "teams"},
            "notify.0.format: Input should be 'generic' or 'slack'",
        ),
        ({"url": "https://hooks.example.com/x", "url_env": "HOOK"}, "notify.0: give exactly one of url or url_env"),
        ({"format": "slack"}, "notify.0: give exactly one of url or url_env"),
        ({"url_env": "not a name"}, "notify.0.url_env: must be the name of an environment variable"),
        ({"url": "https://hooks.example.com/x", "method": "PUT"}, "notify.0.method: Extra inputs are not permitted"),
        ({"url": "https://hooks.example.com/x", "on": []}, "notify.0.on: expected a non-empty list of events"),
    ],
)
def test_config_errors_name_the_field_and_never_the_address(tmp_path: Path, entry, expected):
    """Bad entries fail with the field and the reason, globally and in a workflow; the address is not repeated."""
    import yaml

    for document, where in (
        (({"notify": [entry], "workflows": [{"name": "a"}]}), ""),
        ({"workflows": [{"name": "a", "notify": [entry]}]}, "workflow a: "),
    ):
        path = tmp_path / "workflows.yaml"
        path.write_text(yaml.safe_dump(document))
        with pytest.raises(WorkflowError) as caught:
            load_workflows(path)
        assert f"{path}: {where}{expected}" in str(caught.value)
        assert "hooks.example.com" not in str(caught.value)


def test_config_defaults_and_duplicates(tmp_path: Path):
    """Defaults (generic; awaiting_review, failed, accepted); hyphenated event names; an entry twice in a scope is refused."""
    path = tmp_path / "workflows.yaml"
    path.write_text(
        "notify:\n  - url: https://h.example.com/a\n    on: [awaiting-review, expired]\n"
        "  - url: https://h.example.com/b\nworkflows:\n  - name: a\n    notify: [{url: 'https://h.example.com/a'}]\n"
    )
    first, second = load_global_notify(path)
    assert first.on == ["awaiting_review", "expired"] and first.format == "generic"
    assert second.on == ["awaiting_review", "failed", "accepted"]
    targets = notify_targets([first, second], load_workflows(path))
    assert [t.scope for t in targets] == [None, None, "a"] and len({t.automation_name for t in targets}) == 3
    assert all("h.example.com" not in t.automation_name for t in targets)

    path.write_text(
        "notify:\n  - {url: 'https://h.example.com/a'}\n  - {url: 'https://h.example.com/a', on: [failed]}\n"
        "workflows:\n  - name: a\n"
    )
    with pytest.raises(WorkflowError, match="the global notify list: the same address and format appear twice"):
        load_workflows(path)


def test_summary_line():
    """The first line of text of the summary, without headings and markup; the instructions when there is none."""
    assert (
        summary_line("## Summary\n\n### What was done\n- **Fixed** the `parser`.\n\nMore.", "x") == "Fixed the parser."
    )
    assert summary_line(None, "Fix the parser\nin detail") == "Fix the parser"
    assert len(summary_line("word " * 100)) == 200


def test_a_failing_emit_never_breaks_a_transition(store, monkeypatch, caplog):
    """Emitting is best effort: the status change stands and a warning says the event was lost."""
    import tasks_lib.session.events

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError(f"events endpoint down ({SECRET})")

    monkeypatch.setattr(tasks_lib.session.events, "emit_session_event", broken)
    sid = new_session(store, None)
    move(store, sid, S.failed, "model_error: boom")
    assert store.get_session(sid).status == "failed"
    assert "could not emit its failed event: ConnectionError: events endpoint down (***)" in caplog.text
