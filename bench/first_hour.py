"""A new user's first hour, timed: the README's commands on a fresh home, each step's wall time and what the
terminal showed, for the walk-through the first-hour issue asks for.

Steps: `doctor`; `up` (with `--local-model` when the embedded model is prepared on this machine, else with a scripted
OpenAI-compatible server as the model) until its banner; a run with a missing provider key (how long until the one
line); `run` of a small bug fix until it waits for review (each spinner line seen); `review ID accept`; the commit
on the work branch. Every command runs on a pseudo-terminal, as a person sees it; the transcripts go to ``--out``.

    python bench/first_hour.py [--out /tmp/agent-tasks-first-hour] [--scripted]

Ports 4200, 8765, 8766 (and 8089 for the model) must be free: stop any `agent-tasks up` first.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "tasks_lib.cli"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
TASK = "add() in calc.py returns a - b but must return a + b. Fix calc.py."


def terminal(
    args: list[str], env: dict[str, str], until: str | None = None, answer: str | None = None, timeout: float = 900
) -> tuple[float, float | None, str, subprocess.Popen]:
    """Run the CLI on a pseudo-terminal: (seconds, seconds until ``until`` showed or None, text shown, process).

    With ``answer``, that is typed once ``until`` shows and the command runs on to its end; without, the command is
    left running as soon as ``until`` shows (a server), or run to its end when there is no ``until``.
    """
    import pty

    leader, follower = pty.openpty()
    started = time.monotonic()
    proc = subprocess.Popen([*CLI, *args], stdin=follower, stdout=follower, stderr=follower, env=env, cwd=ROOT)
    os.close(follower)
    seen, shown_at = b"", None
    while time.monotonic() - started < timeout:
        ready, _, _ = select.select([leader], [], [], 1)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the command ended
                break
            if not chunk:
                break
            seen += chunk
            if until and shown_at is None and until in ANSI.sub("", seen.decode(errors="replace")):
                shown_at = time.monotonic() - started
                if answer is None:
                    return shown_at, shown_at, ANSI.sub("", seen.decode(errors="replace")), proc
                os.write(leader, answer.encode())
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(leader)
    return time.monotonic() - started, shown_at, ANSI.sub("", seen.decode(errors="replace")), proc


def demo_repo(base: Path) -> Path:
    """A repository with the bug the task names."""
    repo = base / "demo"
    repo.mkdir()
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (repo / "test_calc.py").write_text("from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "init"]):
        subprocess.run(
            ["git", "-c", "user.name=demo", "-c", "user.email=demo@example.com", *args], cwd=repo, check=True
        )
    return repo


def last_line(text: str) -> str:
    """The last line a command showed, cut for the table."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip()[:110] if lines else ""


def main() -> None:
    """Walk the first hour and print one line per step with its seconds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/agent-tasks-first-hour")
    parser.add_argument("--scripted", action="store_true", help="use a scripted model even if the local one exists")
    options = parser.parse_args()
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="first-hour-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "AGENT_TASKS_"))}
    env.update(
        AGENT_TASKS_HOME=str(base / "home"),
        PREFECT_HOME=str(base / "prefect"),
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        COLUMNS="120",
    )
    env.pop("ANTHROPIC_API_KEY", None)
    sys.path.insert(0, str(ROOT))
    from tasks_lib.ops.local_model import status

    local = status()["weights"] and status()["server"] and not options.scripted
    server = None
    if not local:
        from tasks_lib.testing.scripted_server import ScriptedServer, calls, tool

        fix = "def add(a, b):\n    return a + b\n"
        server = ScriptedServer(
            [calls(tool("write_file", path="calc.py", content=fix)), calls(tool("finish", summary="Fixed add."))]
        ).__enter__()
        env.update(AGENT_TASKS_MODEL="openai/scripted-model", OPENAI_API_BASE=server.api_base, OPENAI_API_KEY="sk-x")
    repo = demo_repo(base)
    rows: list[tuple[str, float, str]] = []

    def keep(name: str, seconds: float, text: str, note: str = "") -> None:
        (out / f"{len(rows) + 1:02d}-{name}.txt").write_text(text)
        rows.append((name, seconds, note))
        print(f"{name:<28} {seconds:6.1f} s  {note}", flush=True)

    seconds, _, text, _ = terminal(["doctor"], env)
    keep("doctor", seconds, text, last_line(text))
    seconds, _, text, up = terminal(["up", "--local-model"] if local else ["up"], env, until="Ctrl-C to stop.")
    keep("up (until its banner)", seconds, text, "with the local model" if local else "with a scripted model")
    try:
        missing = {**env, "AGENT_TASKS_MODEL": ""}
        seconds, _, text, _ = terminal(
            ["run", str(repo), "--task", TASK, "--model", "anthropic/claude-sonnet-4-5"], missing
        )
        keep("run with a missing key", seconds, text, last_line(text))
        seconds, waited, text, _ = terminal(["run", str(repo), "--task", TASK], env, until="decide:", answer="a\n")
        spinners = sorted(set(re.findall(r"[\u2800-\u28ff] ([^…\n]+)…", text)))
        keep("run until it waits for review", waited or seconds, text, "spinner said: " + "; ".join(spinners))
        keep("accept at the prompt", seconds - (waited or seconds), text, last_line(text))
        branches = subprocess.run(["git", "branch", "--list", "agent/*"], cwd=repo, capture_output=True, text=True)
        keep("the work branch", 0.0, branches.stdout, branches.stdout.strip())
    finally:
        up.send_signal(2)
        up.wait(timeout=90)
        if server is not None:
            server.__exit__(None, None, None)
        shutil.rmtree(base, ignore_errors=True)
    print(f"transcripts in {out}")


if __name__ == "__main__":
    main()
