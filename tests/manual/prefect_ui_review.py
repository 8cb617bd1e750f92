"""Manual check: a reviewer accepts a session from the Prefect UI's resume form, in a real browser.

Not part of the suite (it needs a Chromium and Playwright, which CI does not install). It starts a
Prefect server with its UI, a scripted model, and `agent-tasks run` (which waits for review), then
drives headless Chromium: open the paused flow run, press Resume, pick `accept` in the form, submit.
It passes when the session ends `accepted` with the work branch in the source repository.

    apt-get install chromium && pip install playwright
    python tests/manual/prefect_ui_review.py [--chromium /usr/bin/chromium] [--shots DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tasks_lib.testing.scripted_server import ScriptedServer, calls, tool  # noqa: E402
from tests.polling import wait_until  # noqa: E402

CLI = [sys.executable, "-m", "tasks_lib.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=d@e.x", "-c", "user.name=D", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--shots", default=None, help="Directory for screenshots of each step.")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="ui-review-"))
    shots = Path(args.shots) if args.shots else tmp / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp / "prefect"),
        "AGENT_TASKS_HOME": str(tmp / "home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "OPENAI_API_KEY": "sk-ui-check",
        "AGENT_TASKS_REVIEW_POLL": "1",
    }
    repo = tmp / "source"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# Demo\n\nHello world.\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")

    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    model = ScriptedServer(
        [
            calls(tool("edit_file", path="README.md", old="Hello world.", new="Hello from the UI check.")),
            calls(tool("finish", summary="Changed the greeting.")),
        ]
    ).__enter__()
    env["OPENAI_API_BASE"] = model.api_base
    run = None
    try:
        import httpx

        wait_until(lambda: _ok(httpx, f"{api}/health"), 120, "the Prefect server")
        run = subprocess.Popen(
            [
                *CLI,
                "run",
                str(repo),
                "--task",
                "Change the greeting",
                "--model",
                "openai/scripted-model",
                "--reviewer",
                "ui-check",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

        def waiting():
            out = subprocess.run(
                [*CLI, "inbox", "--json", "--status", "awaiting_review"], env=env, capture_output=True, text=True
            ).stdout
            return next(iter(json.loads(out or "[]")), None)

        session = wait_until(waiting, 180, "awaiting_review")
        run_url = session["ui_url"]
        print(f"session {session['id'][:8]} waits for review: {run_url}")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(run_url)
            page.get_by_role("button", name="Resume").first.click(timeout=60_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(shots / "1-resume-form.png"), full_page=True)
            dialog = page.get_by_role("dialog")
            text = dialog.inner_text()
            assert "Review session" in text and "ui-check" in text and "README.md" in text, text[:500]
            dialog.get_by_role("button", name="Submit").click()  # no decision yet: the form must refuse
            dialog.get_by_text("'decision' is a required property").wait_for(timeout=10_000)
            dialog.locator(".p-select-button__control").first.focus()  # the Decision field
            page.keyboard.press("ArrowDown")  # opens its list of options
            page.get_by_role("option", name="accept", exact=True).click()
            page.screenshot(path=str(shots / "2-accept-chosen.png"), full_page=True)
            dialog.get_by_role("button", name="Submit").click()
            page.wait_for_timeout(1500)
            page.screenshot(path=str(shots / "3-submitted.png"), full_page=True)
            browser.close()
        stdout, stderr = run.communicate(timeout=180)
        out = subprocess.run([*CLI, "show", session["id"], "--json"], env=env, capture_output=True, text=True).stdout
        data = json.loads(out)
        print(f"session status: {data['status']}: {data['status_reason']}")
        assert data["status"] == "accepted", stderr[-2000:]
        assert git(repo, "show", f"{data['work_branch']}:README.md").endswith("Hello from the UI check.")
        assert git(repo, "show", "main:README.md").endswith("Hello world.")
        print(f"PASS: accepted from the Prefect UI form; screenshots in {shots}")
    finally:
        if run is not None and run.poll() is None:
            run.kill()
        model.__exit__(None, None, None)
        server.terminate()
        server.wait(timeout=30)


def _ok(httpx, url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
