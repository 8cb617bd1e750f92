"""The sandbox settings of an agent file, read and checked.

The red-team runs through the flow are in tests/flow/test_sandbox.py.
"""

from __future__ import annotations

import pytest

from tests.helpers import write_agent


def test_agent_file_sandbox_settings_are_read_and_checked(tmp_path):
    from tasks_lib.agent.files import read_agent_file
    from tasks_lib.agent.spec import AgentFileError

    agent = read_agent_file(
        write_agent(
            tmp_path / "a.md",
            "name: a\nnetwork: on\nenv: [NPM_TOKEN, CI]\nsandbox: bwrap\nsetup_command: npm ci\nworkspace: read-only",
        )
    )
    assert agent.network == "on" and agent.env == ["NPM_TOKEN", "CI"] and agent.read_only_workspace
    assert "edit_file" not in agent.tool_names and "write_file" not in agent.tool_names
    limited = read_agent_file(write_agent(tmp_path / "b.md", "name: b\ntools: Read, Bash(npm run lint)"))
    shell = read_agent_file(write_agent(tmp_path / "c.md", "name: c\ntools: Read, Bash"))
    assert limited.read_only_workspace and not shell.read_only_workspace
    with pytest.raises(AgentFileError, match="field 'env'"):
        read_agent_file(write_agent(tmp_path / "d.md", "name: d\nenv: [not a name]"))
    with pytest.raises(AgentFileError, match="field 'sandbox'"):
        read_agent_file(write_agent(tmp_path / "e.md", "name: e\nsandbox: podman"))
