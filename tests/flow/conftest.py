"""Set-up of the tests that need the Prefect test server or HTTP: the server itself and the scripted model."""

from __future__ import annotations

import pytest

from tasks_lib.testing.scripted_server import ScriptedServer


@pytest.fixture(scope="session", autouse=True)
def prefect_server():
    """One Prefect test server for the whole run; started before any test thread exists."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture
def scripted(monkeypatch):
    """Start a scripted model server; litellm reaches it through OPENAI_API_BASE."""
    servers: list[ScriptedServer] = []

    def start(script=None, summaries=None, responder=None) -> ScriptedServer:
        server = ScriptedServer(script, summaries, responder).__enter__()
        servers.append(server)
        monkeypatch.setenv("OPENAI_API_BASE", server.api_base)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)
