"""Red team for `network: allow`: through the real egress proxy and a real bubblewrap sandbox, a package download
from the configured index works (pip, in the setup command and in the agent's), while a denied host, an unlisted
port, the cloud metadata address, a name that resolves to 127.0.0.1, a raw TCP connection and a UDP packet all get
nowhere — the servers behind them see nothing — and each refusal is reported to the model and in the facts."""

from __future__ import annotations

import socket
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tasks_lib.domain.egress import Egress
from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import git
from tests.helpers import run_logs_and_artifacts, run_task

PIP = "python3 -m pip download demo-pkg --no-deps --no-cache-dir --disable-pip-version-check -d /tmp/dl -q"


class Recording(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.hits.append(self.path)
        super().do_GET()


def serve(folder: Path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Recording, directory=str(folder)))
    server.hits = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def index(tmp_path, monkeypatch):
    """A package index on 127.0.0.1 with one real wheel, configured as this worker's pip index."""
    root = tmp_path / "index"
    (root / "simple" / "demo-pkg").mkdir(parents=True)
    wheel = root / "files" / "demo_pkg-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("demo_pkg/__init__.py", "VALUE = 1\n")
        z.writestr("demo_pkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\n")
        z.writestr(
            "demo_pkg-1.0.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        z.writestr("demo_pkg-1.0.dist-info/RECORD", "")
    (root / "simple" / "demo-pkg" / "index.html").write_text(
        f'<html><body><a href="../../files/{wheel.name}">{wheel.name}</a></body></html>'
    )
    server = serve(root)
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.server_port}/simple")
    yield server
    server.shutdown()


@pytest.fixture
def bystander(tmp_path):
    """A server on the host that no command may reach."""
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "data.txt").write_text("internal\n")
    server = serve(tmp_path / "secret")
    yield server
    server.shutdown()


def test_allow_reaches_the_configured_index_and_nothing_else(index, bystander, tmp_path):
    from tasks_lib.environments.bwrap import BwrapEnvironment

    other = bystander.server_port
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.5)
    (tmp_path / "ws").mkdir()
    guarded = serve(tmp_path / "index")  # listed and denied: deny wins
    egress = Egress(
        presets=["python"],
        allow=[f"localhost:{other}", f"127.0.0.1:{guarded.server_port}"],
        deny=[f"127.0.0.1:{guarded.server_port}"],
    )
    env = BwrapEnvironment(tmp_path / "ws", tmp_path / "scratch", network="allow", egress=egress)

    def run(command: str):
        return env.execute(command, timeout_s=60)

    download = run(PIP)
    assert download.exit_code == 0, download.render()
    assert (tmp_path / "scratch" / "dl" / "demo_pkg-1.0-py3-none-any.whl").exists()
    assert "/simple/demo-pkg/" in index.hits

    attempts = {
        "denied": f"curl -sS -m 5 http://127.0.0.1:{guarded.server_port}/simple/",
        "name to loopback": f"curl -sS -m 5 http://localhost:{other}/data.txt",
        "metadata": "curl -sS -m 5 http://169.254.169.254/latest/meta-data/",
        "unlisted port": f"curl -sS -m 5 https://127.0.0.1:{index.server_port + 1}/",
    }
    reasons = {}
    for name, command in attempts.items():
        result = run(command)
        assert "internal" not in result.output, name
        (reasons[name],) = result.blocked
        assert f"[network blocked: {result.blocked[0]}]" in result.render()
    assert reasons["denied"].endswith(": denied")
    assert (
        reasons["name to loopback"]
        == f"GET localhost:{other}: resolves to 127.0.0.1, a private, loopback or link-local address that is not listed"
    )
    assert reasons["metadata"].endswith("not in the allow-list")
    assert reasons["unlisted port"].startswith("CONNECT 127.0.0.1:")

    raw_tcp = run(f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {other}), timeout=3)\"")
    assert raw_tcp.exit_code != 0 and "Connection refused" in raw_tcp.output  # the sandbox's own loopback
    outward = run("python3 -c \"import socket; socket.create_connection(('10.0.0.1', 80), timeout=3)\"")
    assert "Network is unreachable" in outward.output
    run(
        f"python3 -c \"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('127.0.0.1', {udp.getsockname()[1]}))\""
    )
    dns = run(
        "python3 -c \"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('8.8.8.8', 53))\""
    )
    assert "Network is unreachable" in dns.output
    with pytest.raises(TimeoutError):
        udp.recvfrom(10)
    assert bystander.hits == [] and guarded.hits == []
    guarded.shutdown()
    env.egress.stop()


def test_setup_reaches_its_registries_by_default_and_the_agents_refusals_reach_the_facts(
    index, bystander, repo, scripted, store
):
    (repo / "requirements.txt").write_text("demo-pkg\n")
    git(repo, "add", "requirements.txt")
    git(repo, "commit", "-qm", "requirements")
    other = bystander.server_port
    scripted(
        [
            calls(tool("run_command", command="ls /tmp/dl")),
            calls(tool("run_command", command=f"curl -sS -m 5 http://127.0.0.1:{other}/data.txt; echo done")),
            calls(tool("finish", summary="Looked around.")),
        ]
    )
    setup = f"{PIP} && curl -sS -m 5 http://127.0.0.1:{other}/data.txt; true"  # the index yes, the bystander no
    result = run_task(repo, "Look around", setup_command=setup, network="allow", egress={"allow": ["pypi.org"]})
    assert result.status.value == "completed", result.reason
    listed, fetched = [
        c.result for s in store.steps(result.session_id) for c in s.tool_calls if c.name == "run_command"
    ]
    assert "demo_pkg-1.0-py3-none-any.whl" in listed  # the setup downloaded it: python preset from requirements.txt
    assert "internal" not in fetched and f"[network blocked: GET 127.0.0.1:{other}: not in the allow-list]" in fetched
    facts = store.latest_summary(result.session_id).facts
    assert facts["network_blocked"] == [f"GET 127.0.0.1:{other}: not in the allow-list"]
    assert "Network requests blocked" in store.latest_summary(result.session_id).markdown
    assert "network allow: allowed pypi.org" in facts["sandbox"]
    logs, _ = run_logs_and_artifacts(store.get_session(result.session_id).flow_run_id, until="completed")
    assert any(f"network blocked: GET 127.0.0.1:{other}: not in the allow-list" in m for m in logs), logs
    assert bystander.hits == []
