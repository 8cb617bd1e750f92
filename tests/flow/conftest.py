"""Set-up of the tests that need the Prefect test server or HTTP: the server itself and the scripted model."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

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


@pytest.fixture
def listener():
    """An HTTP server on the host's 127.0.0.1 that counts who reached it (tests of the network rules)."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "7")
            self.end_headers()
            self.wfile.write(b"reached")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/probe"
    probe = f"python3 -c \"import urllib.request; print(urllib.request.urlopen('{url}', timeout=3).read())\""
    yield SimpleNamespace(hits=hits, url=url, port=server.server_port, probe=probe)
    server.shutdown()
