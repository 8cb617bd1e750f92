"""`agent-tasks up` in team mode puts its Prefect API behind an auth string kept in the home (0600); the stack's own
processes get it, and commands on this machine that find `up`'s API find its auth string the same way."""

from __future__ import annotations

import stat

from tasks_lib.domain.people import Person
from tasks_lib.ops.prefect_api import AUTH_FILE, adopt_auth, api_auth_string, find_local_api
from tasks_lib.ops.stack import Stack
from tasks_lib.store import Store
from tasks_lib.store.people import add_person


def test_the_auth_string_is_made_once_kept_private_and_adopted_only_for_the_local_api(tmp_path):
    home = tmp_path / "home"
    made = api_auth_string(home)
    assert made.startswith("agent-tasks:") and api_auth_string(home) == made
    assert stat.S_IMODE((home / AUTH_FILE).stat().st_mode) == 0o600
    environ = {"AGENT_TASKS_HOME": str(home), "PREFECT_API_URL": "http://127.0.0.1:4200/api"}
    assert find_local_api(environ) == "http://127.0.0.1:4200/api"
    assert environ["PREFECT_API_AUTH_STRING"] == made
    elsewhere = {"AGENT_TASKS_HOME": str(home), "PREFECT_API_URL": "https://prefect.example.com/api"}
    find_local_api(elsewhere)
    assert "PREFECT_API_AUTH_STRING" not in elsewhere, "another server's API never gets this one's password"
    own = {"PREFECT_API_AUTH_STRING": "mine:pw"}
    assert not adopt_auth(own, home) and own["PREFECT_API_AUTH_STRING"] == "mine:pw"


def test_up_guards_its_prefect_api_only_in_team_mode(tmp_path, monkeypatch):
    home = tmp_path / "home"
    url = f"sqlite:///{tmp_path / 'stack.db'}"
    monkeypatch.setenv("AGENT_TASKS_HOME", str(home))
    monkeypatch.setenv("AGENT_TASKS_DB_URL", url)
    monkeypatch.delenv("PREFECT_API_AUTH_STRING", raising=False)
    monkeypatch.delenv("PREFECT_SERVER_API_AUTH_STRING", raising=False)
    solo = Stack("127.0.0.1", 4200, 4201)
    assert "PREFECT_SERVER_API_AUTH_STRING" not in solo.env and not (home / AUTH_FILE).exists()
    add_person(Store(url), Person(name="root", role="admin"))
    team = Stack("127.0.0.1", 4200, 4201)
    kept = (home / AUTH_FILE).read_text().strip()
    assert team.env["PREFECT_SERVER_API_AUTH_STRING"] == team.env["PREFECT_API_AUTH_STRING"] == kept
