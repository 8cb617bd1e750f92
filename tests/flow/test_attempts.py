"""Best-of-N: attempts at once in their own workspaces, one shared budget, ranked, and any of them accepted.

The tests of the same code that need no Prefect server are in tests/unit/test_attempts.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import git
from tests.helpers import Background, decide, lanes, run_task, wait_for_review, write_agent

FINISH = calls(tool("finish", summary="done"))
RIGHT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"


def test_two_attempts_where_one_passes_the_check_rank_it_first_and_accept_delivers_it(
    repo, scripted, store, tmp_path, prefect_server
):
    agent = write_agent(
        tmp_path / "checked.md", "name: checked\ncheck_command: grep -q 'a + b' calc.py\nfix_until_green: 0"
    )
    scripted(
        responder=lanes(
            [calls(tool("write_file", path="calc.py", content=WRONG)), FINISH],
            [calls(tool("write_file", path="calc.py", content=RIGHT)), FINISH],
        )
    )
    run = Background(repo, "Write add", agent=str(agent), attempts=2)
    row = wait_for_review(store, "Write add", since=run.started)

    found = row.candidates
    assert found["iteration"] == 1 and len(found["ranked"]) == 2
    first, second = found["ranked"]
    assert first["check_passed"] is True and second["check_passed"] is False
    assert found["chosen"] == first["attempt"]
    assert "a + b" in store.latest_diff(row.id).patch.decode()  # the best is what the reviewer sees
    for n in (1, 2):  # each attempt worked in its own workspace; both diffs are kept, the extra workspace is gone
        assert store.latest_diff(row.id, scope=f"attempt-{n}") is not None
    assert not Path(f"{row.workspace}.attempt-2").exists()
    steps = store.steps(row.id)
    assert sorted({s.attempt for s in steps}) == [1, 2] and row.steps_used == len(steps) == 4
    description = httpx.get(
        f"{prefect_server}/flow_runs/{row.flow_run_id}/input/paused-{row.review_key}-description"
    ).json()
    assert "### Attempts, ranked" in description
    assert f"1. #1 attempt {first['attempt']}: check passed" in description and "(in the workspace)" in description
    assert f"2. #2 attempt {second['attempt']}: check failed" in description

    decide(row, "accept")
    run.join()
    done = store.get_session(row.id)
    assert done.status == "accepted"
    assert git(repo, "show", f"{done.work_branch}:calc.py") == RIGHT.strip()


def test_identical_diffs_are_grouped_and_accept_can_take_another_candidate(repo, scripted, store, prefect_server):
    same = [calls(tool("write_file", path="calc.py", content=RIGHT)), FINISH]
    other = [calls(tool("write_file", path="calc.py", content="def add(a, b):\n    return b + a\n")), FINISH]
    scripted(responder=lanes(same, other, same))
    run = Background(repo, "Write add three times", attempts=3)
    row = wait_for_review(store, "Write add three times", since=run.started)
    ranked = row.candidates["ranked"]
    lone = next(c for c in ranked if not c["same_as"])
    assert [len(c["same_as"]) for c in ranked] == [1, 1, 0], "the two identical changes rank above the lone one"
    assert "2 of 3 attempts made this same change" in ranked[0]["why"]
    assert lone["rank"] == 3

    from tasks_lib.review.form import review_payload

    with pytest.raises(ValueError, match="a candidate is chosen only with accept"):
        review_payload("reject", candidate=1)
    review = [sys.executable, "-m", "tasks_lib.cli", "review", row.id[:8], "accept", "--candidate"]
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    missing = subprocess.run([*review, "7"], capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode == 1 and "has no attempt 7: iteration 1 has attempts 1, 2, 3" in missing.stderr
    taken = subprocess.run([*review, str(lone["attempt"])], capture_output=True, text=True, env=env, timeout=120)
    assert taken.returncode == 0, taken.stderr
    run.join()
    done = store.get_session(row.id)
    assert done.status == "accepted" and done.candidates["chosen"] == lone["attempt"]
    assert git(repo, "show", f"{done.work_branch}:calc.py").endswith("return b + a")
    message = git(repo, "log", "-1", "--format=%B", done.work_branch)
    assert f"Attempt {lone['attempt']} of 3" in message


def test_stop_at_first_green_stops_the_other_attempts(repo, scripted, store, tmp_path):
    agent = write_agent(tmp_path / "green.md", "name: green\ncheck_command: test -f ok.txt\nfix_until_green: 0")
    slow = [{**calls(tool("write_file", path=f"slow{i}.txt", content="zzz\n")), "delay": 0.4} for i in range(12)]
    quick = [calls(tool("write_file", path="ok.txt", content="ok\n")), FINISH]
    scripted(responder=lanes(quick, slow))
    result = run_task(repo, "Make it green", agent=str(agent), attempts=2, stop_at_first_green=True)
    row = store.get_session(result.session_id)
    first, second = row.candidates["ranked"]
    assert first["check_passed"] is True and first["end_reason"] == "finished"
    assert second["end_reason"] == "superseded" and "another attempt passed its check first" in second["why"]
    assert second["steps"] < 12, "the slow attempt was stopped, not run to its end"


def test_attempts_share_one_budget(repo, scripted, store, tmp_path):
    agent = write_agent(tmp_path / "small.md", "name: small\nmax_steps: 5")
    busy = [calls(tool("write_file", path=f"f{i}.txt", content=f"{i}\n")) for i in range(20)]
    scripted(responder=lanes(busy, busy, busy))
    result = run_task(repo, "Keep busy", agent=str(agent), attempts=3)
    row = store.get_session(result.session_id)
    assert row.steps_used == len(store.steps(row.id)) == 5, "three attempts together took the session's 5 steps"
    assert all(c["end_reason"] == "max_steps" for c in row.candidates["ranked"] if c["steps"])


def test_the_cli_runs_attempts_and_shows_them_ranked(repo, scripted, prefect_server):
    scripted(
        responder=lanes(
            [calls(tool("write_file", path="a.txt", content="a\n")), FINISH],
            [calls(tool("write_file", path="b.txt", content="b\n")), FINISH],
        )
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tasks_lib.cli",
            "run",
            str(repo),
            "--task",
            "Two ways",
            "--model",
            "openai/scripted-model",
            "--attempts",
            "2",
            "--no-review",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PREFECT_API_URL": prefect_server},
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "attempt 1: step 1/" in proc.stderr and "attempt 2: step 1/" in proc.stderr
    assert "attempts 2, ranked (attempt " in proc.stdout
    assert "#1 attempt " in proc.stdout and "#2 attempt " in proc.stdout and "1 file +1 −0 · 2 steps" in proc.stdout


def test_a_stopped_process_stops_its_attempts_at_their_next_step(repo, scripted, store):
    """SIGTERM while attempts work: the run ends at once (not when every attempt would have finished), crashed."""
    import signal
    import time

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    from flows.agent_task import agent_task
    from tasks_lib.domain.request import TaskRequest
    from tests.polling import wait_until

    busy = [{**calls(tool("write_file", path=f"f{i}.txt", content=f"{i}\n")), "delay": 1.0} for i in range(40)]
    scripted(responder=lanes(busy, busy))
    deployment_id = agent_task.to_deployment(name="attempts-sigterm-test").apply()
    request = TaskRequest(
        repository=str(repo),
        instructions="Stopped while attempting",
        model="openai/scripted-model",
        review=False,
        attempts=2,
    )
    with get_client(sync_client=True) as client:
        run_id = str(
            client.create_flow_run_from_deployment(
                deployment_id, parameters={"request": request.model_dump(mode="json")}
            ).id
        )
    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PREFECT__FLOW_RUN_ID": run_id,
        "AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect.engine"],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def both_working():
            rows = [r for r in store.list_sessions(limit=20) if r.flow_run_id == run_id]
            return rows and {s.attempt for s in store.steps(rows[0].id)} == {1, 2} and rows[0]

        row = wait_until(both_working, 120, "both attempts made a step")
        proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        output = proc.communicate(timeout=25)[0]  # without stopping them, the attempts would go on for ~40 s
        took = time.monotonic() - stopped
    finally:
        if proc.poll() is None:
            proc.kill()
    done = store.get_session(row.id)
    assert done.status == "crashed", (done.status, done.status_reason, output[-2000:])
    assert took < 20 and len(store.steps(row.id)) < 20, (took, len(store.steps(row.id)))


def test_a_run_restarted_mid_attempts_continues_attempt_one_alone(repo, scripted, store):
    from tests.flow.test_session_state import _execute, _flow_run, _reschedule, _sessions_of
    from tests.polling import wait_until

    slow_finish = {**FINISH, "delay": 60}  # the process dies while the model "thinks"
    by_lane = lanes(
        [calls(tool("write_file", path="one.txt", content="1\n")), slow_finish],
        [calls(tool("write_file", path="two.txt", content="2\n")), slow_finish],
    )

    def respond(body):
        if any("has been restarted" in str(m.get("content")) for m in body.get("messages", [])):
            return FINISH
        return by_lane(body)

    scripted(responder=respond)
    run_id = _flow_run(repo, "Two attempts, then a kill", attempts=2)
    first = _execute(run_id, wait=False)
    try:
        sid = wait_until(
            lambda: next(
                (r.id for r in _sessions_of(store, run_id) if {s.attempt for s in store.steps(r.id)} == {1, 2}), None
            ),
            120,
            "both attempts",
        )
    finally:
        first.kill()
        first.wait(30)
    mine = next(s for s in store.steps(sid) if s.attempt == 1).tool_calls[0].arguments["path"]
    _reschedule(run_id)
    second = _execute(run_id)
    assert second.returncode == 0, second.output[-3000:]
    row = store.get_session(sid)
    assert row.status == "completed", row.status_reason
    assert [f["path"] for f in store.latest_diff(sid).files] == [mine], "attempt 1's work, continued alone"
    assert [s.attempt for s in store.steps(sid)][-1] is None, "after the restart one agent works"
