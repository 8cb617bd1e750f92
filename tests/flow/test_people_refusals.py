"""Decisions the review gate refuses, end to end: a real paused session, the test Prefect server, a store of the
test's own. Each refusal — a reviewer of another group, the requester who started it under independent review, no
person at all (the Prefect API, with no grant or a made-up one), and a member taken out of the group after their
decision was granted — is exactly one audit row saying who tried, through what and why; the session waits on with
nothing recorded and nothing delivered, until someone who may decides.
"""

from __future__ import annotations

import json
from uuid import UUID

from prefect import resume_flow_run

from tasks_lib.domain.people import Decider
from tasks_lib.review.resume import resume_review
from tasks_lib.store.people import issue_grant, refusals, set_started_by
from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import git
from tests.flow import test_people
from tests.flow.test_people import add, cli
from tests.helpers import Background, decide, wait_for_review

FINISH = calls(tool("finish", summary="done"))
own_store = test_people.own_store  # the fixture: a store of the test's own


def test_each_refusal_at_the_gate_is_one_audit_row_and_the_session_waits_on(
    repo, scripted, own_store, prefect_server, monkeypatch
):
    store = own_store
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    root = add("root")
    add("bob", "--group", "team-a", token=root)
    add("carol", "--role", "reviewer", token=root)
    add("rita", "--role", "requester", "--group", "team-a", token=root)
    scripted([calls(tool("write_file", path="gate.txt", content="gate\n")), FINISH])
    run = Background(repo, "Gate refusals", reviewer="team-a", independent_review=True)
    row = wait_for_review(store, "Gate refusals", since=run.started)
    set_started_by(store, row.id, "rita")  # what `agent-tasks run` records in team mode

    def refused_once(current, send, expected: tuple) -> object:
        """Send a decision with ``send``; the session waits again, with exactly one new audit row: ``expected``."""
        before = len(refusals(store, row.id))
        send(current)
        again = wait_for_review(store, "Gate refusals", after_key=current.review_key, since=run.started)
        new = [(r.person, r.auth, r.via, r.action, r.detail) for r in refusals(store, row.id)[before:]]
        assert new == [expected]
        assert again.status == "awaiting_review"
        if expected[0] is None:  # nobody known: the notice says how a decision counts
            assert again.status_reason.startswith("refused: this store has people")
        else:
            assert again.status_reason == f"refused: {expected[4]}"
        assert store.reviews(row.id) == [] and again.delivered_commit is None
        assert git(repo, "branch", "--list", again.work_branch) == ""
        return again

    def granted(person: str, auth: str, decision: str = "accept"):
        """A grant for ``person`` made by hand, as if the CLI's or the page's own check had been got round."""

        def send(current) -> None:
            grant = issue_grant(store, row.id, current.review_key, decision, Decider(person=person, auth=auth))
            resume_review(store, row.id, {"decision": decision, "grant": grant})

        return send

    session = row.id[:8]
    current = refused_once(
        row,
        granted("carol", "token"),
        (
            "carol",
            "token",
            "cli",
            "accept",
            f"carol may not decide on session {session}: only a member of its reviewer group team-a (bob, rita) "
            "or an admin (root) may",
        ),
    )
    current = refused_once(
        current,
        granted("rita", "cookie"),
        (
            "rita",
            "cookie",
            "page",
            "accept",
            "rita started this session and it needs an independent review: someone else from team-a (bob) or an "
            "admin (root) must accept it",
        ),
    )
    current = refused_once(
        current,
        lambda now: decide(now, "accept"),
        (None, None, "prefect-form", "accept", "no person: sent through the Prefect form or API with no grant"),
    )
    current = refused_once(
        current,
        lambda now: resume_flow_run(UUID(now.flow_run_id), run_input={"decision": "reject", "grant": "made-up"}),
        (
            None,
            None,
            "prefect-form",
            "reject",
            "no person: sent through the Prefect form or API with a grant nobody issued for this pause and decision",
        ),
    )

    # bob's decision is granted while he may decide; an admin takes him out of team-a before the run takes it up.
    def bob_leaves_first(now) -> None:
        grant = issue_grant(store, row.id, now.review_key, "accept", Decider(person="bob", auth="token"))
        left = cli("users", "groups", "bob", "--remove", "team-a", token=root)
        assert left.returncode == 0 and left.stdout.strip() == "bob's groups: none", left.stderr
        resume_review(store, row.id, {"decision": "accept", "grant": grant})

    current = refused_once(
        current,
        bob_leaves_first,
        (
            "bob",
            "token",
            "cli",
            "accept",
            f"bob may not decide on session {session}: only a member of its reviewer group team-a (rita) or an "
            "admin (root) may",
        ),
    )

    # The admin accepts; the audit lists the five refusals, marked, between the start and the decision.
    accepted = cli("review", session, "accept", "--timeout", "120", token=root, PREFECT_API_URL=prefect_server)
    assert accepted.returncode == 0, accepted.stderr
    assert run.join().status.value == "accepted"
    events = [e for e in json.loads(cli("audit", "--json").stdout) if e["session_id"] == row.id]
    assert [(e["kind"], e["refused"], e["person"], e["via"]) for e in events] == [
        ("started", False, "rita", None),
        ("refused", True, "carol", "cli"),
        ("refused", True, "rita", "page"),
        ("refused", True, None, "prefect-form"),
        ("refused", True, None, "prefect-form"),
        ("refused", True, "bob", "cli"),
        ("decided", False, "root", None),
    ]
    text = cli("audit").stdout
    assert f"refused accept  {session}  by rita via the review page: rita started this session" in text
    assert f"refused reject  {session}  by unknown via the Prefect form or API: no person" in text
    assert "groups  bob: -team-a  by root (token)" in text
