"""Limits end a session gracefully with its diff kept; model errors are retried or fail clearly."""

from __future__ import annotations

from tasks_lib.testing.scripted_server import calls, tool
from tests.helpers import run_failing, run_task, write_agent

EDIT = calls(tool("write_file", path="notes.txt", content="work in progress\n"))
LOOK = calls(tool("list_files", path="."))


def test_step_limit_stops_the_session_and_keeps_the_diff(repo, scripted, store, tmp_path):
    agent = write_agent(tmp_path / "short.md", "name: short\nmax_steps: 2")
    server = scripted([EDIT, LOOK, LOOK, LOOK])

    result = run_task(repo, "Work forever", agent=str(agent))

    row = store.get_session(result.session_id)
    assert row.status == "stopped" and row.end_reason == "max_steps"
    assert "step limit reached (2 steps)" in row.status_reason
    assert row.files_changed == 1 and store.latest_diff(result.session_id).files[0]["path"] == "notes.txt"
    assert len(server.agent_requests()) == 2
    assert "step limit reached" in store.latest_summary(result.session_id).markdown


def test_wall_time_limit_stops_the_session(repo, scripted, store, tmp_path):
    agent = write_agent(tmp_path / "quick.md", "name: quick\ntimeout_minutes: 0.01")  # 0.6 s
    scripted([EDIT, calls(tool("run_command", command="sleep 1")), LOOK, LOOK])
    result = run_task(repo, "Slow work", agent=str(agent))
    row = store.get_session(result.session_id)
    assert row.status == "stopped" and row.end_reason == "wall_time"
    assert row.steps_used == 2 and row.files_changed == 1


def test_cost_limit_stops_the_session_when_the_price_is_known(repo, scripted, store, tmp_path):
    agent = write_agent(tmp_path / "cheap.md", "name: cheap\nmax_cost_usd: 0.001")
    # litellm prices gpt-4o at $2.50 per million prompt tokens: 1000 tokens cost $0.0025 > $0.001.
    scripted([dict(EDIT, prompt_tokens=1000), LOOK, LOOK])
    result = run_task(repo, "Spend", agent=str(agent), model="openai/gpt-4o")
    row = store.get_session(result.session_id)
    assert row.status == "stopped" and row.end_reason == "max_cost"
    assert row.steps_used == 1 and row.cost_usd > 0.001 and row.files_changed == 1


def test_transient_model_errors_are_retried(repo, scripted, store):
    server = scripted([{"status": 429}, {"status": 503}, EDIT, {"status": 500}, calls(tool("finish", summary="ok"))])
    result = run_task(repo, "Write notes")
    steps = store.steps(result.session_id)
    assert result.status.value == "completed"
    assert [s.retries for s in steps] == [2, 1]
    assert len(server.agent_requests()) == 5


def test_permanent_model_error_fails_with_the_providers_message_and_keeps_the_diff(repo, scripted, store):
    server = scripted([EDIT, {"status": 401, "message": "Incorrect API key provided"}, LOOK])
    failure = run_failing(repo, "Write notes")
    row = store.get_session(failure.session_id)
    assert row.status == "failed" and row.end_reason == "model_error"
    assert "AuthenticationError" in row.status_reason and "Incorrect API key provided" in row.status_reason
    assert row.finished_at is not None
    assert row.files_changed == 1, "the work done before the error is kept"
    assert len(server.agent_requests()) == 2, "an auth error is not retried"
    assert store.latest_summary(failure.session_id) is not None


def test_a_missing_key_reported_as_a_server_error_is_not_retried_and_reads_in_one_short_line(repo, scripted, store):
    advice = " ".join(["Please pass an `api_key` or set the OPENAI_API_KEY environment variable."] * 8)
    server = scripted([{"status": 500, "message": f"Missing credentials. {advice}"}] * 3)
    failure = run_failing(repo, "Anything")
    assert len(server.agent_requests()) == 1, "a missing key is not a transient error"
    assert "Missing credentials." in failure.reason and "gave up after" not in failure.reason
    assert len(failure.reason) < 400 and failure.reason.count("Please pass") <= 3, failure.reason


def test_unknown_model_at_the_provider_fails_clearly(repo, scripted, store):
    scripted([{"status": 404, "message": "The model `nope` does not exist"}])
    failure = run_failing(repo, "Anything", model="openai/nope")
    row = store.get_session(failure.session_id)
    assert row.status == "failed" and "NotFoundError" in row.status_reason and "does not exist" in row.status_reason


def test_transient_errors_that_never_stop_fail_after_the_retries(repo, scripted, store, monkeypatch):
    monkeypatch.setenv("AGENT_TASKS_MODEL_MAX_RETRIES", "2")
    server = scripted([{"status": 503}] * 5)
    failure = run_failing(repo, "Anything")
    assert "gave up after 3 attempts" in failure.reason
    assert len(server.agent_requests()) == 3


def test_dropped_connection_mid_run_fails_the_session_with_the_diff_kept(repo, scripted, store, monkeypatch):
    monkeypatch.setenv("AGENT_TASKS_MODEL_MAX_RETRIES", "1")
    import os

    def switch_after_first(event, data):
        if event == "step":  # after the first agent step
            os.environ["OPENAI_API_BASE"] = "http://127.0.0.1:9/v1"  # nothing listens there

    server = scripted([EDIT, LOOK])
    from tasks_lib import progress

    progress.subscribe(switch_after_first)
    try:
        failure = run_failing(repo, "Write notes")
    finally:
        progress.unsubscribe(switch_after_first)
    row = store.get_session(failure.session_id)
    assert row.status == "failed" and "Connection" in row.status_reason
    assert row.files_changed == 1 and len(server.agent_requests()) == 1


def test_bad_request_data_ends_the_session_as_failed_with_a_reason(store, prefect_server):
    from flows.agent_task import SessionFailed, agent_task

    try:
        agent_task({"repository": "/somewhere", "instructions": "   "})
    except SessionFailed as exc:
        row = store.get_session(exc.session_id)
    else:
        raise AssertionError("empty instructions were accepted")
    assert row.status == "failed" and row.status_reason == "instructions: must not be empty"


def test_unknown_branch_fails_the_session_listing_branches(repo, scripted, store):
    scripted([])
    failure = run_failing(repo, "Anything", branch="feature-x")
    assert failure.reason == "unknown branch 'feature-x'; branches: dev, main"
    assert store.get_session(failure.session_id).status == "failed"


def test_missing_model_configuration_stops_before_checkout(repo, store, monkeypatch):
    from flows.agent_task import SessionFailed, agent_task
    from tasks_lib.domain.request import TaskRequest

    try:
        agent_task(TaskRequest(repository=str(repo), instructions="x"))
    except SessionFailed as exc:
        row = store.get_session(exc.session_id)
    assert row.status == "failed" and "AGENT_TASKS_MODEL" in row.status_reason
    assert row.workspace is None and row.base_commit is None


def test_model_precedence_cli_then_agent_file_then_environment(repo, scripted, store, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENT_TASKS_MODEL", "openai/from-env")
    agent = write_agent(tmp_path / "m.md", "name: m\nmodel: openai/from-file")
    # Each agent finishes without changing anything: reminded once, it finishes again.
    server = scripted([calls(tool("finish", summary=s)) for s in "aabbcc"])
    run_task(repo, "one", model=None)
    run_task(repo, "two", model=None, agent=str(agent))
    run_task(repo, "three", model="openai/from-cli", agent=str(agent))
    assert [r["model"] for r in server.agent_requests()] == ["from-env"] * 2 + ["from-file"] * 2 + ["from-cli"] * 2


def test_an_agent_can_cap_each_reply(repo, scripted, store, tmp_path):
    agent = write_agent(tmp_path / "brief.md", "name: brief\nmax_reply_tokens: 512")
    server = scripted([calls(tool("write_file", path="b.txt", content="b\n")), calls(tool("finish", summary="b"))])
    run_task(repo, "Be brief", agent=str(agent))
    assert [r.get("max_tokens") for r in server.agent_requests()] == [512, 512]
