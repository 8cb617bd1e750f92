"""Agents as files: Continue compatibility, lookup order, tool rules, and other tools' agent files (Claude Code
subagents, Copilot custom agents).

Budgets and context are tested in test_agent_budgets.py, checks in test_agent_checks.py, usage and cost in
test_usage.py. The tests of the same code that need no Prefect server are in tests/unit/test_agents.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tasks_lib.agent.spec import AgentFileError
from tasks_lib.testing.scripted_server import calls, tool
from tests.flow.flow_logs import run_logs
from tests.helpers import CLAUDE_READER, commit_file, repo_agent, run_task

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
