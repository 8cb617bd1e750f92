"""Agents as files: Continue compatibility, lookup order, tool rules, budgets, checks, usage, long sessions.

The tests of the same code that need no Prefect server are in tests/unit/test_agents.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

from tasks_lib.agent.context import COMPACTED_MARK, estimate_tokens
from tasks_lib.agent.spec import AgentFileError
from tasks_lib.testing.scripted_server import calls, tool
from tests.helpers import (
    CLAUDE_READER,
    Background,
    commit_file,
    decide,
    repo_agent,
    run_task,
    wait_for_review,
    write_agent,
)

FINISH = calls(tool("finish", summary="done"))
CONTINUE_AGENT = """---
name: PR checker
description: Checks changes for missing tests
model: anthropic/claude-sonnet-4-5
tools: Read, Search, Bash(git diff*, git log*)
rules:
  - Every new function needs a test.
  - Keep comments short.
---
Review the current change and report what is missing.
"""


def tool_names(request: dict) -> list[str]:
    return [t["function"]["name"] for t in request.get("tools", [])]


def run_logs(flow_run_id: str) -> list[str]:
    import asyncio

    async def read():
        async with get_client() as client:
            return await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))

    import time

    for _ in range(50):
        messages = [entry.message for entry in asyncio.run(read())]
        if any("session " in m and ("completed" in m or "stopped" in m) for m in messages):
            return messages
        time.sleep(0.2)
    return messages


def test_continue_agent_file_loads_unchanged_and_its_tools_are_enforced(repo, scripted, store):
    commit_file(repo, ".continue/agents/pr-checker.md", CONTINUE_AGENT)
    server = scripted(
        [
            calls(tool("run_command", command="git diff HEAD~1 --stat")),
            calls(tool("run_command", command="rm README.md")),
            calls(tool("run_command", command="git log -1; rm README.md")),
            calls(tool("write_file", path="x.txt", content="x")),
            FINISH,
        ]
    )
    result = run_task(repo, "Check the last change", agent="pr-checker")

    request = server.agent_requests()[0]
    assert tool_names(request) == ["read_file", "search", "run_command", "finish"], "excluded tools must not be offered"
    system = request["messages"][0]["content"]
    assert system.startswith("Review the current change and report what is missing.")
    assert "- Every new function needs a test." in system and "- Keep comments short." in system
    steps = store.steps(result.session_id)
    allowed, denied, chained, excluded = (s.tool_calls[0] for s in steps[:4])
    assert allowed.ok and "pr-checker.md" in allowed.result
    assert (
        denied.denied and "not allowed for 'rm README.md'" in denied.result and "git diff*, git log*" in denied.result
    )
    assert chained.denied and "chaining" in chained.result
    assert not excluded.ok and "there is no tool 'write_file'" in excluded.result
    assert (Path(store.get_session(result.session_id).workspace) / "README.md").exists()
    row = store.get_session(result.session_id)
    assert row.agent == "PR checker" and row.files_changed == 0
    logs = run_logs(row.flow_run_id)
    assert any("run_command refused by the agent's tool rules" in m for m in logs)


def test_repository_agent_with_a_bad_field_names_the_file_and_field(repo, scripted, store):
    commit_file(repo, ".agent-tasks/agents/broken.md", "---\nname: broken\nmax_steps: lots\n---\nx")
    scripted([])
    from tests.helpers import run_failing

    failure = run_failing(repo, "Anything", agent="broken")
    assert failure.reason == (
        "repository:.agent-tasks/agents/broken.md: field 'max_steps': Input should be a valid integer, "
        "unable to parse string as an integer"
    )


def test_agents_check_list_and_show(tmp_path, repo):
    good = tmp_path / "good.md"
    good.write_text(CONTINUE_AGENT)
    check = subprocess.run(
        [sys.executable, "-m", "tasks_lib.cli", "agents", "check", str(good)], capture_output=True, text=True
    )
    assert (
        check.returncode == 0
        and "ok — agent 'PR checker', tools: read_file, search, run_command, finish" in check.stdout
    )
    commit_file(repo, ".continue/agents/pr-checker.md", CONTINUE_AGENT)
    listing = subprocess.run(
        [sys.executable, "-m", "tasks_lib.cli", "agents", "list", "--repo", str(repo)], capture_output=True, text=True
    ).stdout
    assert "pr-checker  repository:.continue/agents/pr-checker.md" in listing
    for builtin in ("default", "editor", "fixer", "reviewer"):
        assert f"built-in:{builtin}" in listing
    shown = subprocess.run(
        [sys.executable, "-m", "tasks_lib.cli", "agents", "show", "reviewer"], capture_output=True, text=True
    ).stdout
    assert "tools         list_files, read_file, search, run_command(git diff*" in shown


def test_reviewer_agent_cannot_write_or_run_writing_commands(repo, scripted, store):
    server = scripted(
        [
            calls(tool("run_command", command="touch hacked.txt")),
            calls(tool("run_command", command="git log --oneline -1")),
            calls(tool("edit_file", path="README.md", old="Hello", new="Bye")),
            calls(tool("finish", summary="LGTM with one nit.")),
        ]
    )
    result = run_task(repo, "Review the latest commit", agent="reviewer")
    assert tool_names(server.agent_requests()[0]) == ["list_files", "read_file", "search", "run_command", "finish"]
    first, second, third = (s.tool_calls[0] for s in store.steps(result.session_id)[:3])
    assert first.denied and second.ok and "initial" in second.result and not third.ok
    assert store.get_session(result.session_id).files_changed == 0


def test_token_budget_stops_the_session_with_the_diff_kept(repo, scripted, store, tmp_path):
    agent = write_agent(tmp_path / "tokens.md", "name: tokens\nmax_tokens: 1500")
    scripted(
        [
            dict(calls(tool("write_file", path="t.txt", content="t\n")), prompt_tokens=1000),
            dict(calls(tool("list_files", path=".")), prompt_tokens=1000),
            calls(tool("list_files", path=".")),
        ]
    )
    result = run_task(repo, "Use tokens", agent=str(agent))
    row = store.get_session(result.session_id)
    assert row.status == "stopped" and row.end_reason == "max_tokens" and row.steps_used == 2
    assert row.files_changed == 1
    assert "token limit reached (2020 of 1500 tokens)" in store.latest_summary(row.id).markdown


def test_cost_cap_on_an_unpriced_model_warns_and_counts_tokens(repo, scripted, store, tmp_path):
    agent = write_agent(tmp_path / "capped.md", "name: capped\nmax_cost_usd: 0.01")
    scripted([FINISH])
    result = run_task(repo, "Cheap work", agent=str(agent))
    row = store.get_session(result.session_id)
    assert row.cost_usd is None and row.prompt_tokens > 0
    assert any("litellm has no price for openai/scripted-model" in m for m in run_logs(row.flow_run_id))
    assert "**Cost:** unknown" in store.latest_summary(row.id).markdown


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


def test_usage_sums_match_what_the_model_server_reported(repo, scripted, store):
    server = scripted(
        [
            dict(
                calls(tool("write_file", path="n.txt", content="n\n")),
                prompt_tokens=120,
                completion_tokens=7,
                cached_tokens=50,
            ),
            dict(calls(tool("read_file", path="README.md")), prompt_tokens=300, completion_tokens=11),
            dict(FINISH, prompt_tokens=450, completion_tokens=13),
        ],
        summaries=[{"content": "### What was done\nx", "prompt_tokens": 900, "completion_tokens": 60}],
    )
    result = run_task(repo, "Count tokens")
    row = store.get_session(result.session_id)
    assert (row.prompt_tokens, row.completion_tokens) == (
        server.usage_sent["prompt_tokens"],
        server.usage_sent["completion_tokens"],
    )
    assert (row.prompt_tokens, row.completion_tokens, row.cached_tokens) == (1770, 91, 50)
    summary = store.latest_summary(row.id)
    facts = summary.facts
    assert (facts["prompt_tokens"], facts["completion_tokens"]) == (1770, 91), "the facts say what the header says"
    assert "1,770 prompt, 91 completion, 50 cached" in summary.markdown
    steps = store.steps(row.id)
    assert [s.prompt_tokens for s in steps] == [120, 300, 450] and steps[0].cached_tokens == 50
    assert all(s.model_latency_s > 0 for s in steps)


def test_a_hosted_model_behind_an_openai_compatible_proxy_is_priced_by_its_own_name(repo, scripted, store):
    import litellm

    server = scripted(
        [
            dict(calls(tool("write_file", path="p.txt", content="p\n")), prompt_tokens=1000, completion_tokens=100),
            dict(FINISH, prompt_tokens=2000, completion_tokens=10),
        ],
        summaries=[{"content": "s", "prompt_tokens": 500, "completion_tokens": 50}],
    )
    result = run_task(repo, "Price me", model="openai/claude-sonnet-4-5")
    row = store.get_session(result.session_id)
    price = litellm.model_cost["claude-sonnet-4-5"]
    sent = server.usage_sent
    assert (sent["prompt_tokens"], sent["completion_tokens"]) == (3500, 160)
    expected = 3500 * price["input_cost_per_token"] + 160 * price["output_cost_per_token"]
    assert row.cost_usd == pytest.approx(expected), "not 'cost unknown'"
    assert store.latest_summary(row.id).facts["cost_usd"] == pytest.approx(expected)


def test_usage_command_sums_by_agent_workflow_and_day(repo, scripted, store, tmp_path):
    other = write_agent(tmp_path / "usage-other.md", "name: usage-other")
    change = dict(calls(tool("write_file", path="u.txt", content="u\n")), prompt_tokens=0, completion_tokens=0)
    scripted(
        [
            change,
            dict(FINISH, prompt_tokens=100, completion_tokens=5),
            change,
            dict(FINISH, prompt_tokens=200, completion_tokens=6),
        ],
        summaries=[{"content": "s", "prompt_tokens": 10, "completion_tokens": 1}] * 2,
    )
    run_task(repo, "Usage one")
    run_task(repo, "Usage two", agent=str(other))

    def usage(by: str) -> list[dict]:
        proc = subprocess.run(
            [sys.executable, "-m", "tasks_lib.cli", "usage", "--by", by, "--json"], capture_output=True, text=True
        )
        return json.loads(proc.stdout)

    by_agent = {g["key"]: g for g in usage("agent")}
    assert by_agent["usage-other"]["sessions"] == 1 and by_agent["usage-other"]["prompt_tokens"] == 210
    assert by_agent["usage-other"]["completion_tokens"] == 7
    all_rows = store.list_sessions(limit=1000)
    assert sum(g["prompt_tokens"] for g in usage("day")) == sum(r.prompt_tokens for r in all_rows)
    assert sum(g["sessions"] for g in usage("workflow")) == len(all_rows)
    assert "(manual)" in {g["key"] for g in usage("workflow")}


def test_a_long_session_shortens_old_tool_outputs_to_stay_in_the_context_window(repo, scripted, store, tmp_path):
    agent = write_agent(tmp_path / "small.md", "name: small\ncontext_window: 6000\nmax_steps: 20\nworkspace: read-only")
    commit_file(repo, "big.txt", "".join(f"line {i:04d} " + "x" * 60 + "\n" for i in range(60)))  # ~4.3k characters
    # Different line ranges each time (the same call with the same result would count as going round in circles).
    script = [calls(tool("read_file", path="big.txt", start_line=i + 1)) for i in range(12)] + [FINISH]
    server = scripted(script)
    result = run_task(repo, "Read a lot", agent=str(agent))

    assert result.status.value == "completed" and store.get_session(result.session_id).steps_used == 13
    sizes = [estimate_tokens(r["messages"]) for r in server.agent_requests()]
    assert max(sizes) <= 4500, sizes  # 75 % of the 6000-token window
    last = server.agent_requests()[-1]["messages"]
    tool_outputs = [m["content"] for m in last if m["role"] == "tool"]
    assert sum(COMPACTED_MARK in c for c in tool_outputs) >= 8
    assert COMPACTED_MARK not in tool_outputs[-1] and "line 0059" in tool_outputs[-1]
    assert sum(s.compacted for s in store.steps(result.session_id)) >= 8


# Agents from other tools' files: Claude Code subagents, Copilot custom agents, lookup by `name` field.
# The `agents` command run as a subprocess on a repository (`--repo`) imports Prefect (about 2 s a call): those
# tests are here rather than in tests/unit/test_agents.py, where the rest of the agent-file tests are.


def agents_cli(*args: str) -> subprocess.CompletedProcess:
    """`agent-tasks agents ARGS` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "tasks_lib.cli", "agents", *args], capture_output=True, text=True)


def test_two_files_answering_to_one_name_in_a_folder_is_an_error_naming_both(repo):
    commit_file(repo, ".claude/agents/helper.md", "---\nname: helper\ndescription: one\n---\nx")
    commit_file(repo, ".claude/agents/other.md", "---\nname: Helper\ndescription: two\n---\ny")
    with pytest.raises(AgentFileError) as raised:
        repo_agent(repo, "helper")
    assert "repository:.claude/agents/helper.md" in str(raised.value)
    assert "repository:.claude/agents/other.md" in str(raised.value)
    assert repo_agent(repo, "other").description == "two", "the stem alone is not ambiguous"
    # Across folders the lookup order decides: .agent-tasks/agents/ before .claude/agents/.
    commit_file(repo, ".agent-tasks/agents/helper.md", "---\nname: helper\ndescription: ours\n---\nz")
    assert repo_agent(repo, "helper").source == "repository:.agent-tasks/agents/helper.md"
    checked = agents_cli("check", "--repo", str(repo))
    assert checked.returncode == 0, checked.stderr
    # A name field may not take a built-in's name through the back door either.
    commit_file(repo, ".claude/agents/mine.md", "---\nname: Reviewer\n---\nw")
    with pytest.raises(
        AgentFileError, match="repository:.claude/agents/mine.md would replace the built-in agent 'reviewer'"
    ):
        repo_agent(repo, "reviewer")


def test_agents_check_names_the_format_the_ignored_fields_and_the_notes(repo, tmp_path):
    commit_file(repo, ".claude/agents/code-reader.md", CLAUDE_READER)
    checked = agents_cli("check", str(repo / ".claude" / "agents" / "code-reader.md"))
    assert checked.returncode == 0, checked.stderr
    lines = checked.stdout.splitlines()
    assert lines[0].endswith("code-reader.md: ok — agent 'code-reader', tools: read_file, search, finish")
    assert lines[1:] == [
        "  format      Claude Code subagent",
        "  ignored     color, permissionMode (no meaning here)",
        "  note        model: sonnet is a Claude Code alias — uses the configured model (--model or AGENT_TASKS_MODEL)",
    ]
    # The same file read as our own format: its foreign fields are errors there.
    ours = agents_cli("check", "--format", "agent-tasks", str(repo / ".claude" / "agents" / "code-reader.md"))
    assert ours.returncode == 1 and "field 'color': unknown field" in ours.stderr
    listing = agents_cli("list", "--repo", str(repo)).stdout
    row = next(line for line in listing.splitlines() if line.startswith("code-reader "))
    assert "repository:.claude/agents/code-reader.md" in row and "Claude Code subagent" in row
    assert "ignored: color, permissionMode" in row and "model: sonnet is a Claude Code alias" in row
    whole = agents_cli("check", "--repo", str(repo))
    assert whole.returncode == 0 and "repository:.claude/agents/code-reader.md: ok" in whole.stdout


@pytest.mark.parametrize(
    "rel, front, expected",
    [
        ("a.md", "name: x\ntols: Read", "field 'tols': unknown field; did you mean tools?"),
        (
            ".agent-tasks/agents/a.md",
            "name: x\nmax_step: 3",
            "field 'max_step': unknown field; did you mean max_steps?",
        ),
        (".claude/agents/a.md", "name: x\ntool: Read", "field 'tool': unknown field; did you mean tools?"),
        (
            ".claude/agents/a.md",
            "name: x\ndisallowedTool: Bash",
            "field 'disallowedTool': unknown field; did you mean disallowedTools?",
        ),
        (
            ".claude/agents/a.md",
            "name: x\ntools: Raed, Grep",
            "field 'tools': unknown Claude Code subagent tool 'Raed'; did you mean Read?",
        ),
        (".claude/agents/a.md", "name: x\nmaxTurns: many", "field 'maxTurns': Input should be a valid integer"),
        (".claude/agents/a.md", "name: x\nsandbox: none", "field 'sandbox': not allowed in a repository's agent file"),
        (".github/agents/a.agent.md", "name: x\nmodle: gpt-4o", "field 'modle': unknown field; did you mean model?"),
        (
            ".github/agents/a.agent.md",
            "name: x\ntools: ['exectue']",
            "field 'tools': unknown GitHub Copilot custom agent tool 'exectue'; did you mean execute?",
        ),
    ],
)
def test_a_misspelled_field_is_an_error_with_did_you_mean(repo, rel, front, expected):
    commit_file(repo, rel, f"---\n{front}\n---\nx")
    if "/" in rel:  # in an agent folder: checked as the repository's file (untrusted)
        proc, source = agents_cli("check", "--repo", str(repo)), f"repository:{rel}"
    else:
        proc, source = agents_cli("check", str(repo / rel)), str(repo / rel)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith(f"error: {source}: {expected}") and len(proc.stderr.splitlines()) == 1


def test_a_claude_subagent_runs_with_its_rules_held(repo, scripted, store):
    commit_file(
        repo,
        ".claude/agents/history.md",
        """---
name: History Checker
description: Reads the history, changes nothing
tools: Read, Grep, Bash(git log:*), WebFetch
model: haiku
---
Report what the last commit changed.
""",
    )
    server = scripted(
        [
            calls(tool("run_command", command="git log --oneline -1")),
            calls(tool("run_command", command="rm README.md")),
            calls(tool("edit_file", path="README.md", old="Hello", new="Bye")),
            FINISH,
        ]
    )
    result = run_task(repo, "What changed last?", agent="history checker")

    request = server.agent_requests()[0]
    assert tool_names(request) == ["read_file", "search", "run_command", "finish"]
    assert request["messages"][0]["content"].startswith("Report what the last commit changed.")
    allowed, denied, excluded = (s.tool_calls[0] for s in store.steps(result.session_id)[:3])
    assert allowed.ok and "add .claude/agents/history.md" in allowed.result
    assert denied.denied and "git log:*" in denied.result
    assert not excluded.ok and "there is no tool 'edit_file'" in excluded.result
    row = store.get_session(result.session_id)
    assert row.agent == "History Checker" and row.files_changed == 0
    assert (Path(row.workspace) / "README.md").read_text() == "# Demo\n\nHello world.\n"
    from tests.helpers import run_logs_and_artifacts

    logs, _ = run_logs_and_artifacts(row.flow_run_id, until="agent file: ")
    assert any(line.startswith("agent file: model: haiku") for line in logs), "the run says how the file was read"
