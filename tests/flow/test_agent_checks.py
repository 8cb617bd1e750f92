"""An agent's check command on real flow runs: its result reaches the summary and the review form, a failing check
gives the agent fix rounds when the agent file asks for them, and is reported with its output when it does not.
"""

from __future__ import annotations

from tasks_lib.testing.scripted_server import calls, tool
from tests.helpers import Background, decide, run_task, wait_for_review, write_agent

FINISH = calls(tool("finish", summary="done"))


def test_check_result_reaches_the_summary_and_the_review_form(repo, scripted, store, tmp_path, prefect_server):
    import httpx

    agent = write_agent(tmp_path / "checked.md", "name: checked\ncheck_command: test -f done.txt && echo all good")
    scripted([calls(tool("write_file", path="done.txt", content="yes\n")), FINISH])
    run = Background(repo, "Make it pass", agent=str(agent))
    row = wait_for_review(store, "Make it pass", since=run.started)
    summary = store.latest_summary(row.id).markdown
    assert "**Check:** `test -f done.txt && echo all good` passed in" in summary
    assert store.latest_summary(row.id).facts["check"]["passed"] is True
    description = httpx.get(
        f"{prefect_server}/flow_runs/{row.flow_run_id}/input/paused-{row.review_key}-description"
    ).json()
    assert "**Check:** `test -f done.txt && echo all good` passed in" in description
    decide(row, "reject")
    run.join()
    assert [c.passed for c in store.checks(row.id)] == [True] and "all good" in store.checks(row.id)[0].output_tail


def test_fix_until_green_gives_the_agent_another_round(repo, scripted, store, tmp_path):
    agent = write_agent(
        tmp_path / "fixing.md", "name: fixing\ncheck_command: grep -q fixed status.txt\nfix_until_green: 2"
    )
    server = scripted(
        [
            calls(tool("write_file", path="status.txt", content="broken\n")),
            FINISH,
            calls(tool("write_file", path="status.txt", content="fixed\n")),
            FINISH,
        ]
    )
    result = run_task(repo, "Get it green", agent=str(agent))

    checks = store.checks(result.session_id)
    assert [(c.passed, c.fix_round) for c in checks] == [(False, 0), (True, 1)]
    fix_request = server.agent_requests()[2]["messages"][-1]["content"]
    assert fix_request.startswith("The check `grep -q fixed status.txt` failed (exit 1)")
    assert [s.index for s in store.steps(result.session_id)] == [1, 2, 3, 4]
    summary = store.latest_summary(result.session_id).markdown
    assert "**Check:** `grep -q fixed status.txt` passed in" in summary and "after 1 fix round" in summary
    assert result.status.value == "completed"


def test_failing_check_without_fix_rounds_is_reported_with_its_output(repo, scripted, store, tmp_path):
    agent = write_agent(tmp_path / "strict.md", "name: strict\ncheck_command: echo 'assert 1 == 2' && exit 3")
    server = scripted([calls(tool("write_file", path="try.txt", content="x\n")), FINISH])
    result = run_task(repo, "Try", agent=str(agent))
    summary = store.latest_summary(result.session_id).markdown
    assert "**Check:** `echo 'assert 1 == 2' && exit 3` failed (exit 3)" in summary and "assert 1 == 2" in summary
    assert len(server.agent_requests()) == 2, "no fix round without fix_until_green"
