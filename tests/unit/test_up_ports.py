"""`agent-tasks up` while its ports are taken (another `up`, most often): one line naming the port and the option
to change it, nothing started, no traceback — instead of a success banner followed by the other stack's answers."""

from __future__ import annotations

import socket
import subprocess
import sys
import time


def test_up_on_a_port_in_use_says_which_and_starts_nothing(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AGENT_TASKS_HOME": str(tmp_path / "home")}
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tasks_lib.cli", "up", "--relay-port", str(taken)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        holder.close()
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: port {taken} on 127.0.0.1 is in use (is `agent-tasks up` already running?); stop what holds it "
        "or choose another with --relay-port"
    ], proc.stderr
    assert "Prefect UI" not in proc.stdout and "Traceback" not in proc.stderr
    assert time.monotonic() - started < 30, "nothing was started and waited for (it takes ~0.4 s)"
