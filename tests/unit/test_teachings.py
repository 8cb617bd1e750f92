"""What reviewers teach stays: the feedback kept per repository and agent (a real SQLite store), the instructions a
proposal session gets (a pure function), and the review page's *Propose rules from feedback* (the app in process;
starting the run itself needs a Prefect server: tests/flow/test_rules_propose.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tasks_lib.config import load_settings
from tasks_lib.domain.people import Person
from tasks_lib.review.teachings import (
    INSTRUCTIONS_CAP,
    NoFeedback,
    conventions_present,
    proposal_instructions,
    recurring_points,
    start_refusal,
    stated_as_rule,
)
from tasks_lib.store import Store
from tasks_lib.store.people import add_person
from tasks_lib.store.teachings import KeptFeedback, kept_feedback, repository_key
from tasks_lib.web import create_app

FIXER = "repository:.claude/agents/fixer.md"


def session_on(store: Store, repository: str, agent: str = "default", source: str | None = None) -> str:
    sid = store.create_session({"repository": repository, "instructions": "Do it", "agent": agent})
    if source:
        store.update_session(sid, agent_spec={"name": agent, "source": source})
    return sid


@pytest.fixture
def kept(tmp_path: Path):
    """A store of the test's own with feedback on two repositories, and decisions that teach nothing."""
    store = Store(f"sqlite:///{tmp_path / 'teach.db'}")
    source = tmp_path / "source"
    source.mkdir()
    first = session_on(store, str(source))
    store.add_review(first, 1, "request_changes", "Always add type hints to new functions.", decided_by="ada")
    store.add_review(first, 2, "accept", "Looks good, thanks", outcome="branch")  # an accept teaches nothing
    second = session_on(store, f"file://{source}/", agent="fixer", source=FIXER)  # the same repository
    store.add_review(second, 1, "retry", "   ", instructions="again")  # no words: nothing kept
    store.add_review(
        second,
        1,
        "reject",
        "",
        comments=[{"path": "calc.py", "line": 2, "body": "Please add type hints here"}],
        auth="local",
    )
    other = session_on(store, "https://user:tok@git.example.com/acme/app.git")
    store.add_review(other, 1, "request_changes", "Never commit the build/ folder.", decided_by="bob")
    return store, source, (first, second, other)


def test_feedback_is_kept_per_repository_and_agent_newest_first(kept):
    store, source, (first, second, other) = kept
    every = kept_feedback(store)
    assert [(i.session_id, i.decision) for i in every] == [
        (other, "request_changes"),
        (second, "reject"),
        (first, "request_changes"),
    ], "change requests, rejections and retries with words or line comments, newest first"
    assert every[0].decided_at > every[1].decided_at > every[2].decided_at
    assert every[0].decided_at.tzinfo is not None

    here = kept_feedback(store, repository=str(source))
    assert [i.session_id for i in here] == [second, first], "a path and its file:// URL are one repository"
    assert kept_feedback(store, repository=f"{source}/") == here
    reject, change = here
    assert (reject.agent, reject.agent_source, reject.feedback, reject.who()) == ("fixer", FIXER, "", "the local user")
    assert reject.comments == [{"path": "calc.py", "line": 2, "body": "Please add type hints here"}]
    assert (change.agent, change.decided_by, change.iteration) == ("default", "ada", 1)
    assert change.feedback == "Always add type hints to new functions."

    assert [i.session_id for i in kept_feedback(store, repository=str(source), agent="FIXER")] == [second]
    assert kept_feedback(store, repository=str(source), agent="nobody") == []
    assert [i.session_id for i in kept_feedback(store, repository="https://git.example.com/acme/app")] == [other]
    assert kept_feedback(store, repository=str(source / "elsewhere")) == []
    assert len(kept_feedback(store, limit=2)) == 2


def test_repository_keys_ignore_credentials_slashes_and_dot_git(tmp_path):
    assert repository_key("https://user:tok@Git.Example.com/acme/app.git") == "https://git.example.com/acme/app"
    assert repository_key("https://git.example.com/acme/app/") == "https://git.example.com/acme/app"
    assert repository_key("git@github.com:acme/app.git") == "github.com:acme/app"
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert repository_key(str(tmp_path / "link")) == repository_key(f"file://{tmp_path / 'real'}/")


def item(session: str, feedback: str = "", comments=None, agent: str = "default", minutes: int = 0, **fields):
    return KeptFeedback(
        session_id=session * 8,
        repository="/srv/app",
        agent=agent,
        iteration=1,
        decision=fields.pop("decision", "request_changes"),
        feedback=feedback,
        comments=comments or [],
        decided_at=datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc) - timedelta(minutes=minutes),
        **fields,
    )


def test_the_instructions_quote_every_item_and_point_at_what_recurs():
    items = [
        item("a", "Please add type hints to new functions.\nAlso rename x.", decided_by="ada"),
        item("b", "", [{"path": "calc.py", "line": 2, "body": "add type hints"}], decision="reject", minutes=5),
        item("c", "Never commit the build/ folder.", agent="fixer", agent_source=FIXER, minutes=9),
    ]
    text = proposal_instructions(items, "/srv/app", agents_md=True)
    assert text.splitlines()[0].startswith("Propose conventions from reviewer feedback: update AGENTS.md")
    assert "(it exists: edit it and keep what it says)" in text
    assert "3 items from 3 sessions" in text and "Change nothing else" in text and "nothing you write lands" in text
    assert "### 1. session aaaaaaaa (agent default, iteration 1): request changes by ada, 2025-03-01 12:00 UTC" in text
    assert "> Please add type hints to new functions.\n> Also rename x." in text
    assert "### 2. session bbbbbbbb (agent default, iteration 1): reject by a reviewer" in text
    assert "Line comments:\n> calc.py:2: add type hints" in text
    assert (
        "### 3. session cccccccc (agent fixer, iteration 1): request changes by a reviewer, 2025-03-01 11:51 UTC"
        in text
    )
    assert "11:51 UTC — stated as a rule\n> Never commit the build/ folder." in text
    assert "Agent fixer comes from this repository (`.claude/agents/fixer.md`)" in text
    said_twice = text.split("## Said in more than one session", 1)[1].split("## The feedback", 1)[0]
    assert said_twice.strip() == '- "Please add type hints to new functions." — sessions aaaaaaaa, bbbbbbbb'

    assert "(there is none yet: create it" in proposal_instructions(items[:1], "/srv/app", agents_md=False)
    unknown = proposal_instructions(items[:1], "/srv/app", other_conventions=["CLAUDE.md"], agent="default")
    assert "(edit it, or create it if there is none)" in unknown and "also has `CLAUDE.md`" in unknown
    assert "on the work of agent default" in unknown
    assert "Said in more than one session" not in unknown and "recur (said in more than one session)" in unknown
    assert "comes from this repository" not in unknown
    with pytest.raises(NoFeedback, match="no reviewer feedback kept for /srv/app yet"):
        proposal_instructions([], "/srv/app")


def test_many_items_stay_within_a_command_line_and_say_how_many_were_left_out():
    items = [item(f"{n % 10}", "x" * 5000 + f" point {n}", minutes=n) for n in range(100)]
    text = proposal_instructions(items, "/srv/app")
    assert len(text) <= INSTRUCTIONS_CAP
    shown = text.count("### ")
    assert 20 <= shown <= 60 and f"({100 - shown} older items left out; `agent-tasks rules list" in text
    assert "[…3509 more characters]" in text, "one item's feedback is clipped"


def test_rules_recurring_points_and_conventions_files():
    assert stated_as_rule("Always run the linter") and stated_as_rule("don't log secrets")
    assert stated_as_rule("In this repo we use pathlib") and not stated_as_rule("Rename x to y")
    same = [item("a", "Use pathlib, not os.path."), item("b", "use pathlib not os.path!"), item("a", "use pathlib")]
    assert [(r.text, r.session_ids) for r in recurring_points(same)] == [
        ("Use pathlib, not os.path.", ("a" * 8, "b" * 8))
    ]
    assert recurring_points([item("a", "Fix the test."), item("b", "Rename the test.")]) == []
    files = {"AGENTS.md": "# x", "CLAUDE.md": "y"}
    assert conventions_present(files.get) == (True, ["CLAUDE.md"])
    assert conventions_present({}.get) == (False, [])


def test_who_may_start_a_proposal_from_the_pages():
    assert start_refusal(None, team=False) is None
    assert "sign in first" in start_refusal(None, team=True)
    for role in ("admin", "reviewer", "requester"):
        assert start_refusal(Person(name="ada", role=role), team=True) is None


def client(app) -> TestClient:
    return TestClient(app, base_url="http://127.0.0.1:8766", follow_redirects=False, client=("10.0.0.5", 5555))


def csrf(page: str) -> str:
    form = page.split('action="/sessions/', 1)[1].split("/propose-rules", 1)
    assert len(form) == 2, "the page has the button"
    return form[1].split('name="csrf" value="', 1)[1].split('"', 1)[0]


def test_the_session_page_offers_the_proposal_where_feedback_is_kept(kept, tmp_path):
    store, source, (first, _, _) = kept
    settings = load_settings({"AGENT_TASKS_HOME": str(tmp_path / "home")})
    quiet = session_on(store, str(tmp_path / "quiet"))
    app = create_app(store, "127.0.0.1", 8766, settings=settings)
    with client(app) as web:
        page = web.get(f"/sessions/{first}").text
        assert "What reviewers teach" in page and "2 feedback items from 2 sessions kept" in page
        assert 'id="propose-rules"' in page and f"agent-tasks rules propose --repo {source}" in page
        assert "What reviewers teach" not in web.get(f"/sessions/{quiet}").text, "no feedback, no button"

        forged = web.post(f"/sessions/{first}/propose-rules", data={"csrf": "0" * 64})
        assert forged.status_code == 403 and "out of date" in forged.text
        elsewhere = web.post(f"/sessions/{quiet}/propose-rules", data={"csrf": csrf(page)})
        assert elsewhere.status_code == 403, "a page's token is good for its own session only"
        token = app.state.guard.token(quiet)
        refused = web.post(f"/sessions/{quiet}/propose-rules", data={"csrf": token})
        assert refused.status_code == 409 and "Not started: no reviewer feedback kept for" in refused.text
        unserved = web.post(f"/sessions/{first}/propose-rules", data={"csrf": csrf(page)})
        assert unserved.status_code == 503, "no Prefect API in unit tests: the page says so and how else to start it"
        assert "Not started: " in unserved.text and "start it from a terminal instead" in unserved.text
        assert f"instead: agent-tasks rules propose --repo {source}" in unserved.text
    assert len(store.list_sessions()) == 4, "nothing was started"


def test_in_team_mode_only_a_person_reaches_the_button(kept, tmp_path):
    store, _, (first, _, _) = kept
    add_person(store, Person(name="rita", role="requester"))
    settings = load_settings({"AGENT_TASKS_HOME": str(tmp_path / "home"), "AGENT_TASKS_TRUSTED_PROXY": "10.0.0.0/8"})
    app = create_app(store, "127.0.0.1", 8766, settings=settings)
    with client(app) as web:
        token = app.state.guard.token(first)
        anonymous = web.post(f"/sessions/{first}/propose-rules", data={"csrf": token})
        assert anonymous.status_code == 403 and anonymous.text.startswith("refused: sign in first")
        page = web.get(f"/sessions/{first}", headers={"X-Forwarded-User": "rita"})
        assert page.status_code == 200 and 'id="propose-rules"' in page.text, "a requester starts tasks"
