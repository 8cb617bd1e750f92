"""Agents as files, read and checked without a session: lookup order, tool rules, conventions files,
other tools' formats, `agents check` on a file.

Sessions run with agent files, and the `agents` command on a repository (a subprocess that imports
Prefect), are in tests/flow/test_agents.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tasks_lib.agent.catalog import find_agent
from tasks_lib.agent.prompt import CONVENTIONS_CAP, build_system_prompt, initial_messages
from tasks_lib.agent.spec import AgentFileError
from tasks_lib.config import load_settings
from tasks_lib.session.preflight import repository_reader
from tests.conftest import git
from tests.helpers import CLAUDE_READER, commit_file, repo_agent, write_agent


def test_lookup_order_path_repository_continue_user_then_builtin(repo, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("AGENT_TASKS_HOME", str(home))
    settings = load_settings()

    def source(name: str = "helper", **kwargs) -> str:
        return find_agent(name, repository_reader(str(repo), None, settings), **kwargs).source

    assert source("default") == "built-in:default"
    write_agent((home / "agents").mkdir(parents=True) or home / "agents" / "helper.md", "name: mine")
    write_agent(home / "agents" / "default.md", "name: my-default")
    assert source() == str(home / "agents" / "helper.md")
    assert source("default") == str(home / "agents" / "default.md")  # the user's own agents may replace built-ins
    commit_file(repo, ".continue/agents/helper.md", "---\nname: continue-one\n---\nx")
    assert source() == "repository:.continue/agents/helper.md"
    commit_file(repo, ".agent-tasks/agents/helper.md", "---\nname: ours\n---\ny")
    assert source() == "repository:.agent-tasks/agents/helper.md"
    explicit = write_agent(tmp_path / "explicit.md", "name: explicit")
    assert find_agent(str(explicit), repository_reader(str(repo), None, settings)).name == "explicit"
    # A repository may not replace a built-in agent unless the run allows it.
    commit_file(repo, ".agent-tasks/agents/default.md", "---\nname: repo-default\n---\nz")
    with pytest.raises(AgentFileError, match="would replace the built-in agent 'default'"):
        source("default")
    assert source("default", shadow_builtins=True) == "repository:.agent-tasks/agents/default.md"
    # A branch is read as committed on it, and a remote through its mirror.
    git(repo, "checkout", "-q", "dev")
    assert find_agent("helper", repository_reader(str(repo), "dev", settings)).source == str(
        home / "agents" / "helper.md"
    )
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    assert find_agent("helper", repository_reader(f"file://{bare}", "main", settings)).name == "ours"
    with pytest.raises(AgentFileError, match="no such agent"):
        find_agent("nobody", repository_reader(str(repo), None, settings))


@pytest.mark.parametrize(
    "front, expected",
    [
        ("name: x\nmax_turns: 3", "field 'max_turns': unknown field"),
        ("name: x\ntools: Read, Teleport", "field 'tools': unknown tool 'Teleport'"),
        ("name: x\ntools: {write_file: 3}", "field 'tools': write_file: use allow, exclude or a list"),
        ("name: x\nrules: [1, 2]", "field 'rules': Input should be a valid string"),
        ("name: x\non_accept: push", "field 'on_accept': Input should be 'branch', 'merge' or 'pull_request'"),
        ("name: x\nprompt: hi", "field 'prompt': unknown field"),
        ("name: x\nfix_until_green: -1", "field 'fix_until_green': Input should be greater than or equal to 0"),
    ],
)
def test_agents_check_reports_the_field_and_the_problem(tmp_path, front, expected):
    path = write_agent(tmp_path / "a.md", front)
    proc = subprocess.run(
        [sys.executable, "-m", "tasks_lib.cli", "agents", "check", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith(f"error: {path}: {expected}")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_conventions_files_go_into_the_prompt_with_headings_and_a_reported_cap(repo, tmp_path):
    from tasks_lib.agent.catalog import find_agent as find

    (repo / "AGENTS.md").write_text("Use tabs.")
    (repo / ".continue" / "rules").mkdir(parents=True)
    (repo / ".continue" / "rules" / "style.md").write_text(
        "---\nname: style\nalwaysApply: true\n---\nPrefer small functions."
    )
    (repo / "CLAUDE.md").write_text("Explain your plan first.")
    (repo / ".cursorrules").write_text("No globals.")
    (repo / ".github").mkdir()
    (repo / ".github" / "copilot-instructions.md").write_text("Write docstrings.")

    prompt, notes = build_system_prompt(find("default"), repo)
    expected = [
        ("AGENTS.md", "Use tabs."),
        (".continue/rules/style.md", "Prefer small functions."),
        ("CLAUDE.md", "Explain your plan first."),
        (".cursorrules", "No globals."),
        (".github/copilot-instructions.md", "Write docstrings."),
    ]
    positions = [prompt.index(f"## Repository conventions: {heading}\n{body}") for heading, body in expected]
    assert positions == sorted(positions) and notes == []
    assert "alwaysApply" not in prompt and "- Never commit, push or change git branches" in prompt
    assert prompt.rstrip().endswith("Write docstrings."), (
        "the task is the user's message, not part of the system prompt"
    )
    messages = initial_messages(prompt, "Do it")
    assert messages[0]["content"] == prompt and messages[1]["content"].startswith("## Task\nDo it\n")

    (repo / "CLAUDE.md").write_text("C" * (CONVENTIONS_CAP + 5000))
    prompt, notes = build_system_prompt(find("default"), repo)
    assert notes[0].startswith("CLAUDE.md cut at ") and notes[0].endswith(
        f"of {CONVENTIONS_CAP + 5000} characters (conventions cap {CONVENTIONS_CAP})"
    )
    assert notes[1:] == [
        f".cursorrules left out: the conventions cap of {CONVENTIONS_CAP} characters was reached",
        f".github/copilot-instructions.md left out: the conventions cap of {CONVENTIONS_CAP} characters was reached",
    ]
    assert "CLAUDE.md cut here" in prompt and "No globals." not in prompt


# Agents from other tools' files: Claude Code subagents, Copilot custom agents, lookup by `name` field.


def test_an_agent_is_found_by_its_name_field_case_insensitively_as_well_as_by_its_file_stem(repo):
    commit_file(
        repo, ".continue/agents/explainer.md", "---\nname: Explainer\ndescription: Explains code\n---\nExplain."
    )
    commit_file(repo, ".github/agents/planner.agent.md", "---\nname: 'Release Planner'\ndescription: Plans\n---\nPlan.")
    for ref in ("Explainer", "explainer", "EXPLAINER"):
        assert repo_agent(repo, ref).source == "repository:.continue/agents/explainer.md", ref
    planner = repo_agent(repo, "release planner")
    assert planner.source == "repository:.github/agents/planner.agent.md" and planner.name == "Release Planner"
    assert repo_agent(repo, "planner").source == planner.source, "the stem of x.agent.md is x"
    with pytest.raises(AgentFileError, match=r"no such agent .*; did you mean Explainer\?$"):
        repo_agent(repo, "Explainr")


def test_claude_subagent_tools_are_the_only_tools_the_agent_gets(repo):
    from tasks_lib.agent.tools import Toolbox

    commit_file(repo, ".claude/agents/code-reader.md", CLAUDE_READER)
    agent = repo_agent(repo, "code-reader")
    assert agent.file_format == "claude-code" and agent.prompt == "Read the code and explain it."
    assert agent.tool_names == ("read_file", "search", "finish")
    assert agent.read_only_workspace, "no edit, write or shell tools: the sandbox mounts the workspace read-only"
    box = Toolbox(repo, tools=agent.policy)
    assert box.execute("read_file", {"path": "README.md"}).ok
    assert box.execute("search", {"pattern": "greet"}).ok
    for name, args in (
        ("edit_file", {"path": "README.md", "old": "Hello", "new": "Bye"}),
        ("write_file", {"path": "x.txt", "content": "x"}),
        ("run_command", {"command": "touch y"}),
    ):
        outcome = box.execute(name, args)
        assert not outcome.ok and f"there is no tool {name!r}" in outcome.output
    assert (repo / "README.md").read_text() == "# Demo\n\nHello world.\n" and not (repo / "y").exists()


def test_claude_argument_patterns_and_disallowed_tools_hold(tmp_path):
    from tasks_lib.agent.files import read_agent_file
    from tasks_lib.agent.tools import Toolbox

    folder = tmp_path / ".claude" / "agents"
    folder.mkdir(parents=True)
    patterned = read_agent_file(
        write_agent(folder / "p.md", "name: p\ntools: Read, Edit(/src/**), Bash(git log:*), Task")
    )
    assert patterned.policy.allowed == {
        "finish": None,
        "read_file": None,
        "edit_file": ["src/**"],
        "run_command": ["git log:*"],
    }
    assert patterned.policy.check("edit_file", {"path": "src/app.py"}) is None
    assert "not allowed" in patterned.policy.check("edit_file", {"path": "README.md"})
    assert patterned.policy.check("run_command", {"command": "git log --oneline"}) is None
    assert "not allowed" in patterned.policy.check("run_command", {"command": "rm -rf src"})
    assert patterned.file_notes == ["tools: Task — no such tool here (ignored)"]

    # No tools field: every tool, minus the disallowed ones.
    denied = read_agent_file(write_agent(folder / "d.md", "name: d\ndisallowedTools: Bash, Write"))
    assert denied.tool_names == ("list_files", "read_file", "search", "edit_file", "finish")
    box = Toolbox(tmp_path, tools=denied.policy)
    assert "there is no tool 'run_command'" in box.execute("run_command", {"command": "true"}).output
    # A pattern cannot be denied here: the whole tool goes, and the file says so.
    partly = read_agent_file(write_agent(folder / "e.md", "name: e\ntools: Read, Bash\ndisallowedTools: Bash(rm *)"))
    assert partly.tool_names == ("read_file", "finish")
    assert any("Bash(rm *)" in n and "the whole tool is removed" in n for n in partly.file_notes)


def test_a_claude_model_alias_falls_back_to_the_configured_model_with_a_note(repo, monkeypatch):
    from tasks_lib.domain.request import TaskRequest
    from tasks_lib.session.preflight import resolve_model

    monkeypatch.setenv("AGENT_TASKS_MODEL", "openai/configured-model")
    commit_file(repo, ".claude/agents/code-reader.md", CLAUDE_READER)
    commit_file(repo, ".claude/agents/pinned.md", "---\nname: pinned\nmodel: claude-sonnet-4-5-20250929\n---\nx")
    settings = load_settings()
    alias = repo_agent(repo, "code-reader", settings)
    assert alias.model is None
    assert (
        "model: sonnet is a Claude Code alias — uses the configured model (--model or AGENT_TASKS_MODEL)"
        in alias.file_notes
    )
    request = TaskRequest(repository=str(repo), instructions="x", agent="code-reader")
    assert resolve_model(request, alias, settings) == "openai/configured-model"
    pinned = repo_agent(repo, "pinned", settings)
    assert pinned.model == "claude-sonnet-4-5-20250929" and pinned.file_notes == []
    assert resolve_model(request, pinned, settings) == "claude-sonnet-4-5-20250929"


def test_a_copilot_custom_agent_is_read_with_its_tool_aliases(repo):
    commit_file(
        repo,
        ".github/agents/fixer-bot.agent.md",
        """---
name: 'Fixer Bot'
description: 'Fixes small bugs'
tools: ['read', 'search', 'edit/editFiles', 'execute', 'web', 'github/*']
model: Claude Sonnet 4.5 (copilot)
target: github-copilot
handoffs:
  - label: Review
    agent: reviewer
mcp-servers:
  custom: {type: local, command: some-server}
---
Fix the bug the task describes.
""",
    )
    commit_file(repo, ".github/agents/reader.md", "---\nname: reader\ntools: ['read', 'search']\n---\nRead.")
    bot = repo_agent(repo, "Fixer Bot")
    assert bot.file_format == "copilot" and bot.prompt == "Fix the bug the task describes."
    assert bot.tool_names == ("list_files", "read_file", "search", "edit_file", "write_file", "run_command", "finish")
    assert bot.model is None and any("Copilot's picker" in n for n in bot.file_notes)
    assert bot.ignored_fields == ["target", "handoffs", "mcp-servers"]
    assert "tools: web, github/* — no such tool here (ignored)" in bot.file_notes
    reader = repo_agent(repo, "reader")
    assert reader.tool_names == ("list_files", "read_file", "search", "finish") and reader.read_only_workspace
