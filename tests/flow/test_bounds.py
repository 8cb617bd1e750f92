"""Bounds (issue 11, item 7): diffs within limits, bounded file reads, a mirror lock that gives up, one fetch a run.

The tests of the same code that need no Prefect server are in tests/unit/test_bounds.py.
"""

from __future__ import annotations

from pathlib import Path

from tasks_lib.config import load_settings
from tasks_lib.git.repo import update_mirror
from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import git
from tests.helpers import run_task


def counting_origin(tmp_path: Path, repo: Path, monkeypatch) -> tuple[str, Path]:
    """A remote-looking address served from a local bare copy of ``repo``, and the log of every fetch from it.

    Git reaches it through `url.<path>.insteadOf` in the global config the orchestrator keeps for remote
    calls; `remote.origin.uploadpack` is a script that writes a line to the log, then serves the fetch.
    """
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(origin))
    log = tmp_path / "fetches.log"
    serve = tmp_path / "upload-pack.sh"
    serve.write_text(f'#!/bin/sh\necho fetch >> {log}\nexec git-upload-pack "$@"\n')
    serve.chmod(0o755)
    url = f"https://git.example.test/{tmp_path.name}/demo.git"
    config = tmp_path / "gitconfig"
    config.write_text(f'[url "{origin}"]\n\tinsteadOf = {url}\n[remote "origin"]\n\tuploadpack = {serve}\n')
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    return url, log


def test_a_run_fetches_its_mirror_once(repo: Path, tmp_path: Path, monkeypatch, scripted, store):
    url, log = counting_origin(tmp_path, repo, monkeypatch)
    update_mirror(url, load_settings().mirrors_dir)  # the mirror exists from an earlier run
    assert log.read_text().count("fetch") >= 1, "the counting origin counts"
    log.write_text("")
    scripted([calls(tool("write_file", path="notes.txt", content="hi\n")), calls(tool("finish", summary="done"))])

    result = run_task(url, "Write notes")

    assert result.status.value == "completed"
    assert store.latest_diff(result.session_id).files[0]["path"] == "notes.txt"
    assert log.read_text().count("fetch") == 1, "the agent-file lookup and the checkout share one fetch"
