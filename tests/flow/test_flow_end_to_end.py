"""The whole flow on real repositories: checkout → agent loop → diff → summary, and what it stores.

The tests of the same code that need no Prefect server are in tests/unit/test_flow_end_to_end.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterId

from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import SECRET, git
from tests.helpers import run_task


def snapshot(repo: Path) -> dict[str, str]:
    """Branches with their commits, HEAD, and the working tree status of a repository."""
    return {
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "head": git(repo, "rev-parse", "HEAD"),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
    }


EDIT_CREATE_DELETE = [
    calls(tool("list_files", path="."), text="Looking around first."),
    calls(tool("read_file", path="src/app.py")),
    calls(tool("edit_file", path="src/app.py", old="'Hello ' + name", new="f'Hello, {name}!'")),
    calls(
        tool("write_file", path="docs/usage.md", content="# Usage\n\nRun app.py.\n"),
        tool("run_command", command="rm obsolete.txt && printf '\\x00\\x09new' > logo.bin && echo key=$OPENAI_API_KEY"),
    ),
    calls(tool("run_command", command="python3 src/app.py")),
    calls(tool("finish", summary="Greeting punctuated, usage doc added, obsolete file removed.")),
]


def test_edit_create_delete_gives_the_right_diff_and_leaves_the_source_untouched(repo, scripted, store, prefect_server):
    before = snapshot(repo)
    server = scripted(EDIT_CREATE_DELETE)

    result = run_task(repo, "Punctuate the greeting, add a usage doc, drop obsolete.txt", reviewer="alice")

    assert result.status.value == "completed", result.reason
    assert snapshot(repo) == before, "the source repository must not change"
    files = {f["path"]: f for f in store.latest_diff(result.session_id).files}
    assert files["src/app.py"]["kind"] == "modified"
    assert (files["src/app.py"]["added"], files["src/app.py"]["removed"]) == (1, 1)
    assert files["docs/usage.md"]["kind"] == "added" and files["docs/usage.md"]["added"] == 3
    assert files["obsolete.txt"]["kind"] == "deleted" and files["obsolete.txt"]["removed"] == 1
    assert files["logo.bin"]["binary"] is True and files["logo.bin"]["kind"] == "modified"
    assert set(files) == {"src/app.py", "docs/usage.md", "obsolete.txt", "logo.bin"}

    row = store.get_session(result.session_id)
    assert row.work_branch.startswith("agent/punctuate-the-greeting")
    assert row.base_commit == before["head"]
    assert row.reviewer == "alice"
    assert (row.lines_added, row.lines_removed, row.files_changed) == (4, 2, 4)
    # The work branch lives in the mirror, at the base commit (the orchestrator does not commit yet).
    workspace = Path(row.workspace)
    assert git(workspace, "rev-parse", "--abbrev-ref", "HEAD") == row.work_branch
    assert (workspace / "src" / "app.py").read_text().startswith("def greet(name):\n    return f'Hello, {name}!'")

    # Every model turn was stored, with its tool calls and results.
    steps = store.steps(result.session_id)
    assert [len(s.tool_calls) for s in steps] == [1, 1, 1, 2, 1, 1]
    assert steps[0].text == "Looking around first."
    assert "Hello, world!" in steps[4].tool_calls[0].result
    assert all(s.prompt_tokens > 0 and s.completion_tokens == 10 for s in steps)
    # The agent's command did not see the API key: the variable was not in its environment.
    assert "key=\n" in steps[3].tool_calls[1].result or steps[3].tool_calls[1].result.rstrip().endswith("key=")

    summary = store.latest_summary(result.session_id)
    assert "### What was done" in summary.markdown
    assert summary.facts["files_changed"] == 4 and summary.facts["commands"][1] == "python3 src/app.py"
    assert summary.facts["end_reason"] == "finished"
    # The summary call was a separate request without tools, after the agent's six.
    assert len(server.agent_requests()) == 6 and len(server.requests) == 7
    assert "Punctuate the greeting" in server.requests[0]["messages"][1]["content"]


def test_stored_patch_reapplies_on_the_base_commit(repo, scripted, store, tmp_path):
    scripted(EDIT_CREATE_DELETE)
    result = run_task(repo, "Change things")
    diff = store.latest_diff(result.session_id)

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "checkout", "-q", diff.base_commit)
    subprocess.run(["git", "apply", "--binary", "--index", "-"], cwd=clone, input=diff.patch, check=True)
    workspace = Path(store.get_session(result.session_id).workspace)
    for path in ("src/app.py", "docs/usage.md", "logo.bin"):
        assert (clone / path).read_bytes() == (workspace / path).read_bytes()
    assert not (clone / "obsolete.txt").exists()


def test_secrets_never_reach_the_store_or_the_prefect_logs(repo, scripted, store, prefect_server):
    scripted(
        [
            calls(tool("run_command", command=f"echo leaked {SECRET}"), text=f"my key is {SECRET}"),
            calls(tool("write_file", path="creds.txt", content=f"token={SECRET}\n")),
            calls(tool("finish", summary=f"stored {SECRET}")),
        ]
    )
    result = run_task(repo, "Handle the key")

    import json

    dumped = json.dumps([s.model_dump(mode="json") for s in store.steps(result.session_id)])
    assert SECRET not in dumped and "***" in dumped
    row = store.get_session(result.session_id)
    assert SECRET not in store.latest_summary(result.session_id).markdown
    assert SECRET not in json.dumps(row.request)

    import asyncio

    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async def logs_and_artifacts():
        async with get_client() as client:
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[row.flow_run_id])))
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[row.flow_run_id]))
            )
            return logs, artifacts

    import time

    for _ in range(50):  # logs reach the API in batches
        logs, artifacts = asyncio.run(logs_and_artifacts())
        run_logs = [entry.message for entry in logs]
        if any("step 3/" in m for m in run_logs):
            break
        time.sleep(0.2)
    assert any("step 1/" in m for m in run_logs) and any("step 3/" in m for m in run_logs)
    assert all(SECRET not in m for m in run_logs)
    assert artifacts and all(SECRET not in str(a.data) for a in artifacts)


def test_prefect_run_is_named_and_has_summary_diff_table_and_progress_artifacts(repo, scripted, store, prefect_server):
    scripted([calls(tool("write_file", path="NEW.md", content="x\n")), calls(tool("finish", summary="ok"))])
    result = run_task(repo, "Add a NEW file please")
    row = store.get_session(result.session_id)

    import asyncio

    async def read():
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[row.flow_run_id]))
            )
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[row.flow_run_id]))
            )
            return runs[0], artifacts

    run, artifacts = asyncio.run(read())
    assert run.name == "default: Add a NEW file please"
    assert run.state.is_completed()
    by_type = {}
    for a in artifacts:
        by_type.setdefault(a.type, []).append(a)
    assert {"markdown", "table", "progress"} <= set(by_type)
    markdown = " ".join(str(a.data) for a in by_type["markdown"])
    assert "NEW.md" in markdown and "### Facts" in markdown
    assert float(by_type["progress"][0].data) == 100 * 2 / 40
    tables = {a.key.rsplit("-", 1)[0]: str(a.data) for a in by_type["table"]}
    assert "NEW.md" in tables["agent-files"]
    assert '"step": "TOTAL"' in tables["agent-usage"] and '"tools": "write_file"' in tables["agent-usage"]


def borrowed_mirror(workspace: Path) -> Path:
    """The mirror whose objects a workspace's own git directory borrows (objects/info/alternates)."""
    objects = (workspace / ".git" / "objects" / "info" / "alternates").read_text().strip()
    return Path(objects).parent


def test_second_run_reuses_the_mirror_and_sees_new_commits(repo, scripted, store):
    scripted([calls(tool("finish", summary="nothing"))])
    first = run_task(repo, "First look")
    mirror_dir = borrowed_mirror(Path(store.get_session(first.session_id).workspace))
    sentinel = mirror_dir / "sentinel-from-test"
    sentinel.write_text("still here")

    (repo / "later.txt").write_text("later\n")
    git(repo, "add", "later.txt")
    git(repo, "commit", "-qm", "later")
    scripted([calls(tool("read_file", path="later.txt")), calls(tool("finish", summary="read it"))])
    second = run_task(repo, "Second look")

    second_ws = Path(store.get_session(second.session_id).workspace)
    assert borrowed_mirror(second_ws) == mirror_dir
    assert sentinel.read_text() == "still here", "the mirror was cloned again"
    assert store.get_session(second.session_id).base_commit == git(repo, "rev-parse", "HEAD")
    assert "later" in store.steps(second.session_id)[0].tool_calls[0].result


def test_run_from_another_branch_and_a_file_url(repo, scripted, store):
    git(repo, "checkout", "-q", "dev")
    (repo / "dev-only.txt").write_text("dev\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "dev work")
    git(repo, "checkout", "-q", "main")
    scripted([calls(tool("read_file", path="dev-only.txt")), calls(tool("finish", summary="ok"))])

    result = run_task(f"file://{repo}", "Read the dev file", branch="dev")

    row = store.get_session(result.session_id)
    assert row.branch == "dev" and row.base_commit == git(repo, "rev-parse", "dev")
    assert store.steps(result.session_id)[0].tool_calls[0].ok


def test_model_answer_without_tool_call_ends_the_loop(repo, scripted, store):
    scripted([calls(tool("write_file", path="a.txt", content="a\n")), {"content": "I am done here."}])
    result = run_task(repo, "Write a")
    row = store.get_session(result.session_id)
    assert row.status == "completed" and row.end_reason == "no_tool_call"
    assert row.files_changed == 1


def test_summary_model_failure_falls_back_to_the_deterministic_summary(repo, scripted, store):
    scripted(
        [calls(tool("write_file", path="a.txt", content="a\n")), calls(tool("finish", summary="Wrote a."))],
        summaries=[{"status": 400, "message": "summary refused"}],
    )
    result = run_task(repo, "Write a")
    summary = store.latest_summary(result.session_id).markdown
    assert result.status.value == "completed"
    assert "Wrote a." in summary and "summary model call was not available" in summary
    assert "**Files changed:** 1 (+1 −0)" in summary


def test_interrupted_run_ends_failed_with_its_diff_kept(repo, scripted, store, prefect_server):
    import os
    import signal
    import sys
    import time

    server = scripted(
        [
            calls(tool("write_file", path="half-done.txt", content="partial\n")),
            dict(calls(tool("list_files", path=".")), delay=60),
        ]
    )
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "OPENAI_API_BASE": server.api_base}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tasks_lib.cli",
            "run",
            str(repo),
            "--task",
            "Long job",
            "--model",
            "openai/scripted-model",
            "--no-review",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while len(server.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(server.requests) == 2, "the run never reached its second step"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Traceback" not in stderr
    row = next(r for r in store.list_sessions(limit=5) if r.instructions == "Long job")
    assert row.status == "failed" and row.status_reason == "interrupted"
    assert row.files_changed == 1 and store.latest_diff(row.id).files[0]["path"] == "half-done.txt"


def test_an_empty_diff_is_summarised_as_nothing_changed_whatever_the_agent_claims(repo, scripted, store):
    server = scripted(
        [
            calls(tool("read_file", path="src/app.py")),
            calls(tool("finish", summary="calc.py: replaced old with new in the add() function")),
            calls(tool("finish", summary="calc.py: replaced old with new in the add() function")),
        ]
    )
    result = run_task(repo, "Fix add() in calc.py")
    summary = store.latest_summary(result.session_id)
    assert "Nothing was changed: the session's diff is empty." in summary.markdown
    assert "which the diff does not bear out" in summary.markdown and "**Files changed:** 0" in summary.markdown
    assert [r for r in server.requests if not r.get("tools")] == [], "no summary call that could invent changes"


def test_a_summary_naming_files_outside_the_diff_is_flagged(repo, scripted, store):
    scripted(
        [calls(tool("edit_file", path="src/app.py", old="'Hello '", new="'Hi '")), calls(tool("finish", summary="ok"))],
        summaries=[{"content": "### What was done\nChanged `src/app.py` and updated docs/usage.md and calc.py."}],
    )
    result = run_task(repo, "Change the greeting")
    summary = store.latest_summary(result.session_id)
    assert summary.facts["summary_files_not_in_diff"] == ["calc.py", "docs/usage.md"]
    assert "**⚠ The summary names files the diff does not touch:** `calc.py`, `docs/usage.md`" in summary.markdown


def test_calls_written_as_text_work_through_the_real_http_path(repo, scripted, store):
    edit = json.dumps(
        {"name": "edit_file", "arguments": {"path": "src/app.py", "old_str": "'Hello '", "new_str": "'Hi '"}}
    )
    server = scripted(
        [
            {"content": f"I will fix it.\n```json\n{edit}\n```"},
            {"content": '<tool_call>\n{"name": "finish", "arguments": {"summary": "greeting"}}\n</tool_call>'},
        ]
    )
    result = run_task(repo, "Change the greeting")
    row = store.get_session(result.session_id)
    assert result.status.value == "completed" and row.end_reason == "finished" and row.files_changed == 1
    steps = store.steps(result.session_id)
    assert all(s.calls_from_text for s in steps) and steps[0].tool_calls[0].ok
    follow_up = server.agent_requests()[1]["messages"]
    assert follow_up[-2] == {"role": "assistant", "content": f"I will fix it.\n```json\n{edit}\n```"}
    assert follow_up[-1]["role"] == "user" and follow_up[-1]["content"].startswith("Results of your tool calls:")


def test_the_flow_takes_its_model_from_the_session_s_model_factory(repo, store, monkeypatch, prefect_server):
    """A flow test can hand in a list model: no HTTP server, and the session works with what the list answers."""
    from tasks_lib.agent.model import ModelReply, ToolCall
    from tasks_lib.session.context import using_models
    from tasks_lib.testing.list_model import ListModel

    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1")  # nothing listens: an HTTP call would fail
    edit = ModelReply(
        tool_calls=[
            ToolCall(
                id="1",
                name="edit_file",
                arguments=json.dumps({"path": "src/app.py", "old": "'Hello ' + name", "new": "'Hi ' + name"}),
            )
        ],
        prompt_tokens=10,
    )
    done = ModelReply(tool_calls=[ToolCall(id="2", name="finish", arguments=json.dumps({"summary": "Said hi."}))])
    model = ListModel([edit, done, "### What was done\nThe greeting says hi now (from the list model)."])
    made: list[tuple[str, str]] = []

    def factory(agent, model_name, settings):
        made.append((agent.name, model_name))
        return model

    with using_models(factory):
        result = run_task(repo, "Say hi instead of hello")

    assert result.status.value == "completed", result.reason
    assert "Hi ' + name" in store.latest_diff(result.session_id).patch.decode()
    assert "from the list model" in result.summary
    assert len(model.asked) == 3 and model.replies == [], "two agent steps and the summary, all from the list"
    assert made and all(m == ("default", "openai/scripted-model") for m in made)


def test_a_body_replaced_by_pass_is_flagged_whatever_the_summary_claims(repo, scripted, store):
    scripted(
        [
            calls(tool("edit_file", path="src/app.py", old="    return 'Hello ' + name", new="    pass")),
            calls(tool("finish", summary="Implemented the greeting with punctuation removed.")),
        ]
    )
    result = run_task(repo, "Remove punctuation from the greeting")
    summary = store.latest_summary(result.session_id)
    assert summary.facts["placeholder_only"] == ["src/app.py"]
    assert "Only placeholders were added to** `src/app.py`" in summary.markdown
