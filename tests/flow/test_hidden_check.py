"""Red team for the hidden check: acceptance tests in a folder the agent is never shown. The agent tries to read
them, to plant a file among them, and to pass by writing a test of the same name into its workspace; none of it
works, the check's real output goes back to it, and its fix round passes."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tasks_lib.testing.scripted_server import calls, tool
from tests.helpers import run_task

ACCEPTANCE = "import unittest\nfrom src.app import greet\n\n\nclass T(unittest.TestCase):\n    def test_hi(self):\n        self.assertEqual(greet('x'), 'Hi x')  # ACCEPTANCE-MARKER\n"
FAKE = "import unittest\n\n\nclass T(unittest.TestCase):\n    def test_hi(self):\n        pass\n"


@pytest.fixture
def acceptance():
    """The check's folder outside /tmp (which every sandbox replaces), where the sandbox would otherwise show it."""
    base = next((d for d in ("/var/lib", os.getcwd()) if os.access(d, os.W_OK) and not d.startswith("/tmp")), None)
    folder = Path(tempfile.mkdtemp(prefix="agent-tasks-acceptance-", dir=base))
    (folder / "test_accept.py").write_text(ACCEPTANCE)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_agent_can_neither_read_nor_change_the_hidden_check_and_gets_its_output(repo, scripted, store, acceptance):
    snoop = f"cat {acceptance}/test_accept.py; ls -la {acceptance}; echo planted > {acceptance}/extra.py; echo end"
    server = scripted(
        [
            calls(tool("run_command", command=snoop)),
            calls(tool("write_file", path="test_accept.py", content=FAKE)),
            calls(tool("edit_file", path="src/app.py", old="'Hello ' + name", new="'Hey ' + name")),
            calls(tool("finish", summary="Changed the greeting.")),
            calls(tool("edit_file", path="src/app.py", old="'Hey ' + name", new="'Hi ' + name")),
            calls(tool("finish", summary="Changed the greeting to Hi.")),
        ]
    )
    check = {"command": "python3 -m unittest -q test_accept", "files": str(acceptance), "fix_rounds": 1}
    result = run_task(repo, "Greet with Hi", hidden_check=check)
    assert result.status.value == "completed", result.reason
    calls_made = [c for s in store.steps(result.session_id) for c in s.tool_calls]
    assert "ACCEPTANCE-MARKER" not in calls_made[0].result and "end" in calls_made[0].result
    assert sorted(p.name for p in acceptance.iterdir()) == ["test_accept.py"], "nothing planted among the tests"
    assert (acceptance / "test_accept.py").read_text() == ACCEPTANCE
    first, second = store.checks(result.session_id)
    assert not first.passed and "Hey x" in first.output_tail, "the real test ran, not the agent's own"
    assert second.passed and second.fix_round == 1
    told = [m for r in server.agent_requests() for m in r["messages"] if "The check" in str(m.get("content"))]
    assert told and "AssertionError" in str(told[-1]["content"])
    assert "ACCEPTANCE-MARKER" in str(told[-1]["content"]) or "greet('x')" in str(told[-1]["content"])


def test_an_edit_loop_agent_answers_with_whole_files_and_its_fix_round_passes_the_hidden_check(
    repo, scripted, store, tmp_path
):
    from tests.helpers import write_agent

    wrong = "def greet(name):\n    return 'Hey ' + name\n"
    right = "def greet(name):\n    return 'Hi ' + name\n"

    def editor(body):
        system = body["messages"][0]["content"]
        if "## How to answer" not in system:
            return {"content": "### What was done\nRewrote src/app.py."}
        told = any("The check" in str(m.get("content")) for m in body["messages"] if m["role"] == "user")
        return {"content": f"src/app.py\n```python\n{right if told else wrong}```\n"}

    server = scripted(responder=editor)
    folder = tmp_path / "acceptance"
    folder.mkdir()
    (folder / "test_accept.py").write_text(ACCEPTANCE)
    agent = write_agent(tmp_path / "editor.md", "name: editor\nloop: edit")
    check = {"command": "python3 -m unittest -q test_accept", "files": str(folder)}
    result = run_task(repo, "Greet with Hi in src/app.py", agent=str(agent), hidden_check=check)
    assert result.status.value == "completed", result.reason
    first, second = store.checks(result.session_id)
    assert not first.passed and second.passed
    writes = [c for s in store.steps(result.session_id) for c in s.tool_calls]
    assert [(c.name, c.ok) for c in writes] == [("write_file", True), ("write_file", True)]
    assert all(not r.get("tools") for r in server.requests), "the edit loop offers no tools"
    told = [m["content"] for r in server.requests for m in r["messages"] if "The check" in str(m.get("content"))]
    assert "Fix the cause in src/app.py: answer with the whole new content" in told[-1]
    assert "do not write test files" in told[-1]
    assert "+    return 'Hi ' + name" in store.latest_diff(result.session_id).patch.decode()
