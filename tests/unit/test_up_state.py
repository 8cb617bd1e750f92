"""`agent-tasks up` announces its Prefect API and review pages in `<home>/up.json` while it runs: the commands of that
home read them there instead of guessing, a file left by a dead `up` counts as none, and `up` withdraws only its
own announcement."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tasks_lib.ops.up_state import STATE_FILE, read_up_state, remove_up_state, write_up_state


def dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def prefect_health() -> Iterator[str]:
    """A stand-in for `up`'s Prefect server: answers 200 on /api/health; yields its API address."""

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/api/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()


def test_the_state_file_is_written_whole_and_read_back(tmp_path):
    home = tmp_path / "home"
    written = write_up_state(home, "http://127.0.0.1:4300/api/", "http://127.0.0.1:8800/")
    assert [p.name for p in home.iterdir()] == [STATE_FILE], "no part file is left behind"
    data = json.loads((home / STATE_FILE).read_text())
    assert set(data) == {"prefect_api", "review_pages", "pid", "started_at"}
    assert data["prefect_api"] == "http://127.0.0.1:4300/api" and data["review_pages"] == "http://127.0.0.1:8800"
    assert read_up_state(home) == written
    assert written.started_at.endswith("+00:00")


def test_no_file_or_an_unreadable_one_is_no_up(tmp_path):
    assert read_up_state(tmp_path) is None
    (tmp_path / STATE_FILE).write_text("{not json")
    assert read_up_state(tmp_path) is None
    (tmp_path / STATE_FILE).write_text(json.dumps({"pid": 1}))
    assert read_up_state(tmp_path) is None


def test_a_file_whose_process_is_gone_counts_as_none_and_is_left_as_it_is(tmp_path):
    write_up_state(tmp_path, "http://127.0.0.1:4300/api", "http://127.0.0.1:8800", pid=dead_pid())
    assert read_up_state(tmp_path) is None
    assert (tmp_path / STATE_FILE).exists(), "reading changes nothing"


def test_up_withdraws_only_its_own_announcement(tmp_path):
    write_up_state(tmp_path, "http://127.0.0.1:4300/api", "http://127.0.0.1:8800", pid=dead_pid())
    assert not remove_up_state(tmp_path) and (tmp_path / STATE_FILE).exists(), "another up's file stays"
    write_up_state(tmp_path, "http://127.0.0.1:4300/api", "http://127.0.0.1:8800")
    assert remove_up_state(tmp_path) and not (tmp_path / STATE_FILE).exists()
    assert not remove_up_state(tmp_path), "nothing to remove"


def test_the_stack_announces_its_addresses_and_withdraws_them_when_it_stops(tmp_path, monkeypatch):
    from tasks_lib.ops.stack import Stack

    home = tmp_path / "home"
    monkeypatch.setenv("AGENT_TASKS_HOME", str(home))
    monkeypatch.setenv("AGENT_TASKS_DB_URL", f"sqlite:///{tmp_path / 'stack.db'}")
    monkeypatch.delenv("AGENT_TASKS_REVIEW_URL", raising=False)
    stack = Stack("127.0.0.1", 4300, 4301, 8800)
    stack.announce()
    state = read_up_state(home)
    assert state is not None
    assert (state.prefect_api, state.review_pages) == ("http://127.0.0.1:4300/api", "http://127.0.0.1:8800")
    stack.stop()
    assert not (home / STATE_FILE).exists()


def test_commands_find_the_announced_prefect_api_and_fall_back_without_it(tmp_path, prefect_health):
    from tasks_lib.ops.prefect_api import find_local_api

    home = tmp_path / "home"
    nowhere = "http://127.0.0.1:9/api"  # the guess without a file: nothing answers there
    write_up_state(home, prefect_health, "http://127.0.0.1:8800")
    environ = {"AGENT_TASKS_HOME": str(home), "AGENT_TASKS_LOCAL_API": nowhere}
    assert find_local_api(environ) == prefect_health and environ["PREFECT_API_URL"] == prefect_health

    write_up_state(home, prefect_health, "http://127.0.0.1:8800", pid=dead_pid())
    stale = {"AGENT_TASKS_HOME": str(home), "AGENT_TASKS_LOCAL_API": nowhere}
    assert find_local_api(stale) is None and "PREFECT_API_URL" not in stale, "a dead up's address is not used"
    guessed = {"AGENT_TASKS_HOME": str(home), "AGENT_TASKS_LOCAL_API": prefect_health}
    assert find_local_api(guessed) == prefect_health, "without a live file, today's address is tried"


def test_review_links_go_to_the_announced_pages_unless_the_review_url_is_set(tmp_path, monkeypatch):
    from tasks_lib.cli.background import review_pages_link

    home = tmp_path / "home"
    monkeypatch.setenv("AGENT_TASKS_HOME", str(home))
    monkeypatch.delenv("AGENT_TASKS_REVIEW_URL", raising=False)
    write_up_state(home, "http://127.0.0.1:4300/api", "http://127.0.0.1:8800")
    assert review_pages_link("abc") == "http://127.0.0.1:8800/sessions/abc"
    monkeypatch.setenv("AGENT_TASKS_REVIEW_URL", "https://review.example.com/")
    assert review_pages_link("abc") == "https://review.example.com/sessions/abc"
