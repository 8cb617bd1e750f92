"""`network: allow` inside a sandbox: the sandbox has no network of its own (only its loopback), a bridge listens
on 127.0.0.1:3128 in it and passes each connection to the egress proxy's Unix socket, bound into the sandbox as a
file, and the usual proxy variables point every client there."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from tasks_lib.domain.egress import Egress
from tasks_lib.security.egress import EgressPolicy, configured_python_indexes, presets_for
from tasks_lib.security.egress_proxy import EgressProxy
from tasks_lib.security.jail import HIDDEN_DIRS, under

PROXY_PORT = 3128
SOCKET_INSIDE = "/run/agent-tasks-egress.sock"
PROXY_URL = f"http://127.0.0.1:{PROXY_PORT}"
# Binds 127.0.0.1:$2 in the sandbox, returns once it listens (the server goes on in a child), and hands each
# connection to the Unix socket $1.
BRIDGE = """
import os, socket, sys, threading
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[2])))
listener.listen(128)
if os.fork():
    os._exit(0)
def pump(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
while True:
    client, _ = listener.accept()
    upstream = socket.socket(socket.AF_UNIX)
    try:
        upstream.connect(sys.argv[1])
    except OSError:
        client.close()
        continue
    for a, b in ((client, upstream), (upstream, client)):
        threading.Thread(target=pump, args=(a, b), daemon=True).start()
"""
# Starts the bridge, then becomes the command.
START = 'python="$1"; shift; "$python" -I -S -c "$1" "$2" "$3" || exit 125; shift 3; exec "$@"'


def bridge_python() -> str | None:
    """A Python the sandbox can see (the orchestrator's may live in a hidden home)."""
    candidates = [
        shutil.which("python3"),
        "/usr/bin/python3",
        "/usr/local/bin/python3",
        os.path.realpath("/proc/self/exe"),
    ]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            real = os.path.realpath(candidate)
            home = os.environ.get("HOME", "/nonexistent")
            if not under(real, [*HIDDEN_DIRS, home, "/tmp"]):
                return real
    return None


def proxy_variables() -> dict[str, str]:
    """The variables that send a command's clients (curl, pip, npm, git, cargo, go) through the bridge."""
    names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
    values = dict.fromkeys(names, PROXY_URL)
    values.update(NO_PROXY="", no_proxy="", npm_config_proxy=PROXY_URL, npm_config_https_proxy=PROXY_URL)
    values.update(PIP_PROXY=PROXY_URL)
    return values


def bridged(python: str, command: list[str]) -> list[str]:
    """``command`` run after the bridge is listening in the sandbox."""
    return ["/bin/sh", "-c", START, "egress", python, BRIDGE, SOCKET_INSIDE, str(PROXY_PORT), *command]


class EgressGate:
    """The proxies of one session's sandbox: one for the agent's commands, one for its setup (which also allows
    the registries its repository's manifests name), started when first needed."""

    def __init__(self, egress: Egress, workspace: Path):
        self.egress, self.workspace = egress, workspace
        self.folder: Path | None = None  # short, so the socket's path fits a Unix socket's 108 bytes
        self.proxies: dict[str, EgressProxy] = {}

    def effective(self, setup: bool = False) -> Egress:
        """The allow-list of the agent's commands, or of the setup command."""
        return self.egress.over({"presets": presets_for(self.workspace)}) if setup else self.egress

    def variables(self, setup: bool = False) -> dict[str, str]:
        """The variables a command gets with `allow`: the proxy's, and pip's index when the python preset is on."""
        values = proxy_variables()
        if "python" in self.effective(setup).presets:
            indexes = configured_python_indexes()
            if indexes:
                values.update(PIP_INDEX_URL=indexes[0], PIP_EXTRA_INDEX_URL=" ".join(indexes[1:]))
        return values

    def proxy(self, setup: bool = False) -> EgressProxy:
        """The running proxy for the agent's commands, or for the setup command."""
        key = "setup" if setup else "agent"
        if key not in self.proxies:
            egress = self.effective(setup)
            if self.folder is None:
                self.folder = Path(tempfile.mkdtemp(prefix="agent-egress-"))
            socket_path = self.folder / f"{key}.sock"
            self.proxies[key] = EgressProxy(EgressPolicy(egress), socket_path).start()
        return self.proxies[key]

    def stop(self) -> None:
        """Stop the proxies and remove their folder."""
        for proxy in self.proxies.values():
            proxy.stop()
        self.proxies.clear()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
